// Counters reported by cells are untrusted input: garbage, unknown tokens,
// links the cell is not on, negative or huge numbers and floods are ignored
// or bounded, never a crash (DESIGN.md "Security model").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { checkSystemText } from '../../src/system/check.js';
import { controlSocket, reportSocket } from '../../src/system/runtime-dir.js';
import { Supervisor } from '../../src/system/supervisor.js';

const SYSTEM = `
name: report-test
cells:
  - { name: a, command: "true", autostart: false }
  - { name: b, command: "true", autostart: false }
  - { name: c, command: "true", autostart: false }
links:
  - { name: reptest-ab, kind: raw, outputSize: 4K, members: [{ cell: a }, { cell: b }] }
  - { name: reptest-bc, kind: raw, outputSize: 4K, members: [{ cell: b }, { cell: c }] }
`;

function ask(socket: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const s = net.createConnection(socket, () => s.write(`${line}\n`));
    s.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\n')) {
        s.end();
        resolve(buf.slice(0, buf.indexOf('\n')));
      }
    });
    s.on('error', reject);
  });
}

function send(socket: string, data: string): Promise<void> {
  return new Promise((resolve) => {
    const s = net.createConnection(socket, () => s.end(data));
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
}

test('report socket: hostile counter reports are ignored or bounded', { timeout: 30_000 }, async () => {
  const r = checkSystemText(SYSTEM, path.join(os.tmpdir(), 'report.yaml'), { shmFree: null });
  assert.deepEqual(r.problems, []);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ivshm-report-'));
  const sup = new Supervisor(r.system!, { dir: path.join(dir, 'sys'), log: () => {} });
  await sup.start();
  try {
    const env = sup.cells.get('a')!.spec.env;
    const token = env.IVSHM_REPORT_TOKEN!;
    assert.deepEqual(Object.keys(JSON.parse(env.IVSHM_LINKS!) as object), ['reptest-ab']);
    const sock = reportSocket(sup.dir);
    await send(sock, 'not json\n{"token": 5}\n[]\nnull\n');
    await send(sock, `${JSON.stringify({ token: 'forged', links: { 'reptest-ab': { messages: 99 } } })}\n`);
    // a is not on reptest-bc: that part is dropped; bad numbers count as 0.
    await send(sock, `${JSON.stringify({ token, links: { 'reptest-ab': { messages: 7, bytes: -5, frames: 1e300, doorbells: 'x' }, 'reptest-bc': { messages: 1000 } } })}\n`);
    // A line longer than 64 KiB closes the connection without effect.
    await send(sock, `${JSON.stringify({ token, links: { 'reptest-ab': { messages: 1 } }, pad: 'x'.repeat(70_000) })}\n`);
    await new Promise((r) => setTimeout(r, 100));
    // The control socket answers bad requests with an error, one per line.
    for (const [line, error] of [
      ['null', /^bad request/],
      ['{"op":"format-disk"}', /^unknown request "format-disk"/],
      ['{"op":"cell-stop","cell":{}}', /^no cell named ""; the cells are a, b, c/],
    ] as const) {
      const reply = JSON.parse(await ask(controlSocket(sup.dir), line)) as { ok: boolean; error: string };
      assert.equal(reply.ok, false);
      assert.match(reply.error, error);
    }
    const st = sup.status();
    assert.deepEqual(st.links.find((l) => l.name === 'reptest-ab')!.totals, { frames: 0, messages: 7, bytes: 0, doorbells: 0 });
    assert.deepEqual(st.links.find((l) => l.name === 'reptest-bc')!.totals, { frames: 0, messages: 0, bytes: 0, doorbells: 0 });
  } finally {
    await sup.stop();
    assert.equal(fs.existsSync(sup.dir), false);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
