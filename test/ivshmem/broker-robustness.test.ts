// Issue 2 rule 6: the broker survives any peer (garbage, unknown messages,
// messages cut short, smuggled fds, floods of connections and requests),
// throws that peer out with a logged reason and keeps serving the others.
// The broker runs as its own `ivshm broker` process so a crash would show.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import readline from 'node:readline';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { Broker } from '../../src/ivshmem/broker.js';
import { encodeHello, encodeMapped, encodeSetState, MSG } from '../../src/ivshmem/control-protocol.js';
import { connect } from '../../src/ivshmem/device.js';
import { closeFd, eventfdCreate, receiveMessage, sendMessage, unixConnect } from '../../src/sys/index.js';
import { CLI, PeerProc, stopAllPeers, tmpSocket } from '../helpers/peer-proc.js';
import { sleep, until } from '../helpers/wait.js';

const socket = tmpSocket('robust');
const logs: string[] = [];
const broker = spawn(process.execPath, [CLI, 'broker', '--socket', socket, '--peers', '4', '--output-size', '4K', '--vectors', '2', '--name', 'robust'], {
  stdio: ['ignore', 'pipe', 'pipe'],
});
readline.createInterface({ input: broker.stdout! }).on('line', (l) => logs.push(l));
broker.stderr!.on('data', (d: Buffer) => logs.push(`stderr: ${d}`));
const alive = () => broker.exitCode === null && broker.signalCode === null;

/** Open a raw control connection (no HELLO yet). */
const raw = () => unixConnect(socket, 'seqpacket');

/** The next message on `fd` (its fds closed). */
async function nextMessage(fd: number, what: string): Promise<Buffer> {
  let got: Buffer | null = null;
  await until(() => {
    const r = receiveMessage(fd);
    if (r.kind !== 'message') return false;
    for (const f of r.fds) closeFd(f);
    got = r.data;
    return true;
  }, what);
  return got!;
}

/** Wait until the broker has closed `fd` (EOF), reading away anything it sent first. */
async function waitClosed(fd: number, what: string): Promise<void> {
  await until(() => {
    for (;;) {
      const r = receiveMessage(fd);
      if (r.kind === 'again') return false;
      for (const f of r.kind === 'message' ? r.fds : []) closeFd(f);
      if (r.kind === 'eof' || r.kind === 'error') return true;
    }
  }, what);
  closeFd(fd);
}

describe('broker robustness against hostile peers', { timeout: 120000 }, () => {
  let good: PeerProc;
  before(async () => {
    await until(() => logs.some((l) => l.includes('listening')), 'broker listening');
    good = await PeerProc.start(socket, { id: 0 });
  });
  after(async () => {
    await stopAllPeers();
    if (alive()) {
      broker.kill('SIGTERM');
      await once(broker, 'exit');
    }
  });

  test('random bytes are a protocol violation that drops only that connection', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 300 }), async (bytes) => {
        const fd = raw();
        sendMessage(fd, bytes);
        await waitClosed(fd, 'garbage connection closed');
      }),
      { numRuns: 40, seed: 42 },
    );
    assert.ok(alive());
    await until(() => logs.some((l) => /dropped connection .*protocol violation/.test(l)), 'log line for a dropped connection');
  });

  test('unknown type, message cut short, bad length, smuggled fds', async () => {
    const cases: [string, Buffer, number[]][] = [
      ['unknown type', Buffer.from([0x77, 0, 0, 0, 0, 0, 0, 0]), []],
      ['cut short', Buffer.from([MSG.HELLO, 0, 0]), []],
      ['length lies', Buffer.concat([Buffer.from([MSG.HELLO, 0, 0, 0, 200, 0, 0, 0]), Buffer.alloc(4)]), []],
      ['hello with fds', encodeHello({ version: 1, id: -1, token: '' }), [eventfdCreate()]],
      ['state before hello', encodeSetState(1), []],
      ['empty packet', Buffer.alloc(0), []],
    ];
    for (const [what, msg, fds] of cases) {
      const fd = raw();
      sendMessage(fd, msg, fds);
      for (const f of fds) closeFd(f);
      await waitClosed(fd, `broker drops "${what}"`);
    }
    // An empty packet on SOCK_SEQPACKET reads as EOF: dropped silently, which is fine.
    assert.ok(alive());
    // The broker's log lines arrive through its stdout, after the socket closed.
    for (const text of ['unknown message type 0x77', 'carried 1 file descriptor', 'expected HELLO']) {
      await until(() => logs.some((l) => l.includes(text)), `log line "${text}"`);
    }
  });

  test('a peer thrown out while joining or after joining: reason logged, the others told', async () => {
    // While joining: garbage instead of MAPPED.
    let fd = raw();
    sendMessage(fd, encodeHello({ version: 1, id: 3, token: '' }));
    await nextMessage(fd, 'INIT');
    sendMessage(fd, Buffer.from('not a message'));
    await waitClosed(fd, 'dropped while mapping');
    await until(() => logs.some((l) => /dropped peer 3 .*protocol violation/.test(l)), 'log line for peer 3');
    // After joining: a complete join, then an unknown message.
    fd = raw();
    sendMessage(fd, encodeHello({ version: 1, id: 3, token: '' }));
    await nextMessage(fd, 'INIT');
    sendMessage(fd, encodeMapped());
    await good.waitFor((e) => e.event === 'peer-joined' && e.peer === 3, 'peer 3 joined');
    sendMessage(fd, Buffer.from([0x42, 0, 0, 0, 0, 0, 0, 0]));
    await good.waitFor((e) => e.event === 'peer-gone' && e.peer === 3 && /protocol violation/.test(String(e.reason)), 'peer 3 thrown out');
    await waitClosed(fd, 'thrown-out peer closed');
    await until(() => logs.some((l) => /peer 3 thrown out for a protocol violation: unknown message type 0x42/.test(l)), `log line in ${logs.slice(-4).join(' / ')}`);
    assert.ok(alive());
  });

  test('a peer that never says HELLO or never confirms its mapping is timed out', async () => {
    const b = new Broker({ socket: tmpSocket('timeouts'), peers: 2, outputSize: '4K', helloTimeoutMs: 100, mapTimeoutMs: 100 });
    const seen: string[] = [];
    b.on('log', (l) => seen.push(l.message));
    await b.start();
    try {
      const silent = unixConnect(b.socketPath, 'seqpacket');
      const unmapped = unixConnect(b.socketPath, 'seqpacket');
      sendMessage(unmapped, encodeHello({ version: 1, id: -1, token: '' }));
      await waitClosed(silent, 'silent connection closed');
      await waitClosed(unmapped, 'unconfirmed peer closed');
      assert.ok(seen.some((m) => m.includes('sent no HELLO in time')));
      assert.ok(seen.some((m) => m.includes('did not confirm its mapping in time')));
      // The ID is free again.
      const d = await connect({ socket: b.socketPath, id: 0 });
      d.close();
    } finally {
      await b.stop();
    }
  });

  test('a client of another protocol version is refused with a reason', async () => {
    const fd = raw();
    sendMessage(fd, encodeHello({ version: 99, id: -1, token: '' }));
    const m = await nextMessage(fd, 'REFUSED');
    assert.match(m.toString('utf8', 12), /version 99 is not supported/);
    await waitClosed(fd, 'refused connection closed');
  });

  test('a flood of connections and of requests does not stop service to others', async () => {
    const fds: number[] = [];
    for (let i = 0; i < 200; i++) fds.push(raw());
    await sleep(200);
    assert.ok(alive());
    for (const fd of fds) closeFd(fd);
    // A joined peer flooding STATE requests: the others keep being served.
    const flooder = await PeerProc.start(socket, { id: 2 });
    for (let i = 0; i < 2000; i++) flooder.cmd(`state ${i % 7}`);
    const p1 = await PeerProc.start(socket, { id: 1 });
    assert.equal((await p1.run('ring 0 1')).delivered, true);
    await good.waitFor((e) => e.event === 'interrupt' && e.from === 1, 'doorbell from peer 1 during the flood');
    await flooder.stop();
    await p1.stop();
    assert.ok(alive());
  });

  test('broker logs joins and leaves, and on SIGTERM removes its socket and exits 0', async () => {
    assert.ok(logs.some((l) => l.includes('peer 0 joined')));
    await until(() => logs.some((l) => /peer 1 left/.test(l)), 'leave logged');
    broker.kill('SIGTERM');
    await once(broker, 'exit');
    assert.equal(broker.exitCode, 0);
    assert.ok(!fs.existsSync(socket), 'socket removed');
    await until(() => logs.some((l) => l.includes('stopped')), 'stop logged');
  });
});
