// The control socket (docs/supervisor.md, "Control socket"): requests are
// checked before anything acts, each gets one reply line, bad ones get an
// error naming what was wrong; the typed client maps failures to errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, ProtocolError, TimeoutError } from '../../src/errors.js';
import { controlRequest } from '../../src/system/control-client.js';
import { parseControlRequest } from '../../src/system/control-protocol.js';
import { controlSocket } from '../../src/system/runtime-dir.js';
import { askRaw, startSupervisor } from './helpers.js';

test('parseControlRequest: the operations and nothing else', () => {
  assert.deepEqual(parseControlRequest('{"op":"status","extra":1}'), { op: 'status' });
  assert.deepEqual(parseControlRequest('{"op":"cell-restart","cell":"a"}'), { op: 'cell-restart', cell: 'a' });
  assert.deepEqual(parseControlRequest('{"op":"shutdown"}'), { op: 'shutdown' });
  for (const [line, msg] of [
    ['nope', /^bad request: not JSON/],
    ['null', /^bad request: send a JSON object/],
    ['["status"]', /^bad request: send a JSON object/],
    ['{"op":"format-disk"}', /^unknown request "format-disk"/],
    ['{"op":"__proto__"}', /^unknown request "__proto__"/],
    ['{}', /^unknown request undefined/],
    ['{"op":"cell-stop"}', /^bad request: cell-stop needs "cell"/],
    ['{"op":"cell-start","cell":{}}', /^bad request: cell-start needs "cell"/],
  ] as const) {
    assert.throws(() => parseControlRequest(line), (e: unknown) => e instanceof ProtocolError && msg.test(e.message), line);
  }
});

test('control socket: bad requests get an error reply, good ones their result, pipelined ones each a reply', { timeout: 30_000 }, async () => {
  const { sup, done } = await startSupervisor('control-test', 'ctltest');
  try {
    const sock = controlSocket(sup.dir);
    assert.equal(fs.statSync(sock).mode & 0o777, 0o600, 'only the supervisor user may connect');
    for (const [line, error] of [
      ['null', /^bad request/],
      ['{"op":"format-disk"}', /^unknown request "format-disk"/],
      ['{"op":"cell-stop","cell":{}}', /^bad request: cell-stop needs "cell"/],
      ['{"op":"cell-stop","cell":"nosuch"}', /^no cell named "nosuch"; the cells are a, b, c/],
    ] as const) {
      const reply = JSON.parse(await askRaw(sock, line)) as { ok: boolean; error: string };
      assert.equal(reply.ok, false);
      assert.match(reply.error, error);
    }
    const st = await controlRequest(sock, { op: 'status' });
    assert.deepEqual(st.cells.map((c) => c.name), ['a', 'b', 'c']);
    assert.equal(st.cells[0]!.state, 'stopped');
    const after = await controlRequest(sock, { op: 'cell-start', cell: 'a' });
    assert.notEqual(after.cells[0]!.state, 'stopped', 'cell-start answers with the status after starting');
    await assert.rejects(controlRequest(sock, { op: 'cell-stop', cell: 'zz' }), (e: unknown) => e instanceof ConfigError && /no cell named "zz"/.test(e.message));

    // Three requests in one write: three replies.
    const replies = await new Promise<string[]>((resolve, reject) => {
      const lines: string[] = [];
      let buf = '';
      const s = net.createConnection(sock, () => s.write('{"op":"status"}\n{"op":"bogus"}\n{"op":"status"}\n'));
      s.on('data', (d) => {
        buf += d.toString();
        const parts = buf.split('\n');
        buf = parts.pop()!;
        lines.push(...parts);
        if (lines.length === 3) {
          s.end();
          resolve(lines);
        }
      });
      s.on('error', reject);
    });
    assert.deepEqual(replies.map((l) => (JSON.parse(l) as { ok: boolean }).ok).sort(), [false, true, true]);
  } finally {
    await done();
  }
});

test('control client: no supervisor, a silent one, a garbled one', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ivshm-ctl-'));
  const servers: net.Server[] = [];
  const serve = (name: string, onConn: (s: net.Socket) => void): Promise<string> =>
    new Promise((resolve) => {
      const p = path.join(dir, name);
      // Each server reads what comes, so it sees the client go.
      const srv = net.createServer((s) => (s.resume(), onConn(s)));
      servers.push(srv);
      srv.listen(p, () => resolve(p));
    });
  try {
    await assert.rejects(controlRequest(path.join(dir, 'none.sock'), { op: 'status' }), (e: unknown) => e instanceof ConfigError && /is not running/.test(e.message));
    const silent = await serve('silent.sock', () => {});
    await assert.rejects(controlRequest(silent, { op: 'status' }, 300), (e: unknown) => e instanceof TimeoutError);
    const garbled = await serve('garbled.sock', (s) => s.end('{{{\n'));
    await assert.rejects(controlRequest(garbled, { op: 'status' }), (e: unknown) => e instanceof ProtocolError && /unreadable/.test(e.message));
    const hangup = await serve('hangup.sock', (s) => s.end());
    await assert.rejects(controlRequest(hangup, { op: 'status' }), (e: unknown) => e instanceof ProtocolError && /without answering/.test(e.message));
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
