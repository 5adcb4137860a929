// The hostile peer in its own process on a real broker link: its mutations
// race the victim for real (TOCTOU is not simulated here), and the victim's
// view of the peer section is a PROT_READ mapping of exactly its size, so an
// out-of-bounds read or a write would kill this process.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { after, test } from 'node:test';
import { Broker } from '../../src/ivshmem/broker.js';
import { connect } from '../../src/ivshmem/device.js';
import { openNet } from '../../src/net/endpoint.js';
import { checkFrame } from '../fixtures/net-util.js';
import { until } from '../helpers/wait.js';

const PEER = new URL('../fixtures/net-hostile-peer.js', import.meta.url).pathname;
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('hostile peer process: victim never throws, counts violations, recovers, then receives legit frames intact', { timeout: 120000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ivshm-hostile-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const socket = path.join(dir, 'h.sock');
  const broker = new Broker({ socket, peers: 2, outputSize: 0x4000, vectors: 2, protocol: 1, name: 'hostile' });
  await broker.start();
  cleanups.push(() => broker.stop());
  const dev = await connect({ socket, id: 0 });
  cleanups.push(() => dev.close());
  const victim = openNet(dev, { mtu: 1500 });
  const uncaught: unknown[] = [];
  const trap = (e: unknown) => uncaught.push(e);
  process.on('uncaughtException', trap);
  cleanups.push(() => void process.off('uncaughtException', trap));
  const badLengths: number[] = [];
  const finals: number[] = [];
  let violationEvents = 0;
  victim.on('violation', () => violationEvents++);
  victim.on('frame', (f) => {
    if (f.byteLength < 14 || f.byteLength > 1518) badLengths.push(f.byteLength);
    // Legit frames of the final phase carry stream id 9 and a content hash.
    if (f.byteLength >= 16 && f.readUInt32LE(4) === 9) {
      try {
        finals.push(checkFrame(f));
      } catch {
        finals.push(-1); // a forged frame that happens to say stream 9: checked below only in the final phase
      }
    }
  });
  victim.up();

  const child = spawn(process.execPath, [PEER, '--socket', socket, '--seconds', '4', '--seed', '4242', '--final', '200'], { stdio: ['pipe', 'pipe', 'inherit'] });
  cleanups.push(() => void (child.exitCode === null && child.kill('SIGKILL')));
  const done = await new Promise<Record<string, unknown>>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      const m = JSON.parse(l) as Record<string, unknown>;
      if (m.event === 'done') resolve(m);
      if (m.event === 'error') reject(new Error(String(m.message)));
    });
    child.on('exit', (code) => reject(new Error(`hostile peer exited with ${code}`)));
  });
  // Let the victim take the last legit frames.
  await until(() => finals.filter((s) => s >= 0).length >= 200, 'the 200 legit frames of the final phase', {
    state: () => ({ finals: finals.length, last: finals.slice(-10), badLengths, uncaught: uncaught.map(String) }),
  });
  child.stdin!.write('quit\n');

  const c = victim.counters();
  t.diagnostic(`hostile peer process: ${String(done.mutations)} mutations in ${String(done.bursts)} bursts; victim counted ${c.violationsTotal} violations ${JSON.stringify(c.violations)}, ${c.handshakes} handshakes`);
  console.log(`hostile peer process: ${String(done.mutations)} mutations tried`);
  assert.deepEqual(uncaught, []);
  assert.deepEqual(badLengths, []);
  assert.equal(violationEvents, c.violationsTotal);
  assert.equal(Object.values(c.violations).reduce((a, b) => a + b, 0), c.violationsTotal);
  assert.ok(c.violationsTotal > 0, 'the mutations were noticed');
  assert.equal(done.recovered, true, 'final handshake');
  // After the last handshake the legit frames arrive all, in order, intact.
  const legit = finals.filter((s) => s >= 0);
  const tail = legit.slice(legit.lastIndexOf(0));
  assert.deepEqual(tail, Array.from({ length: 200 }, (_, i) => i));
});
