// Issue 2 rule 2 and scenario g.11: a peer never gets a writable mapping of
// the State Table or of another peer's output section by any route, and
// cannot resize a section another peer maps. Each attempt runs in a child
// process that keeps every fd the broker gave it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, describe, test } from 'node:test';
import { Broker } from '../../src/ivshmem/broker.js';
import { connect, type Device } from '../../src/ivshmem/device.js';
import { FIXTURES, tmpSocket } from '../helpers/peer-proc.js';
import { until } from '../helpers/wait.js';

const RAW = FIXTURES + 'raw-peer.js';

async function runRaw(args: string[]): Promise<{ code: number | null; signal: string | null; lines: Record<string, unknown>[] }> {
  const child = spawn(process.execPath, [RAW, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (err += d));
  const watchdog = setTimeout(() => child.kill('SIGKILL'), 20000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(watchdog);
  const lines = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  if (signal === 'SIGKILL') throw new Error(`watchdog killed raw peer; stderr: ${err}`);
  return { code, signal, lines };
}

describe('isolation enforced by the kernel', { timeout: 60000 }, () => {
  const broker = new Broker({ socket: tmpSocket('iso'), peers: 3, outputSize: '16K', rwSize: '4K', vectors: 1, name: 'iso' });
  let victim: Device;
  after(async () => {
    victim?.close();
    await broker.stop();
  });

  test('setup: a victim with data in its output section and a state', async () => {
    await broker.start();
    victim = await connect({ socket: broker.socketPath, id: 0 });
    victim.output.write('SECRET', 0);
    victim.setState(5);
    await until(() => broker.status().peers[0]?.state === 5, 'state stored');
  });

  test('g.11 every route to write the State Table or another output section fails', async () => {
    const r = await runRaw([broker.socketPath, 'attack', '1', '0']);
    assert.equal(r.code, 0);
    const res = r.lines.find((l) => l.event === 'result') as Record<string, Record<string, string>>;
    for (const what of ['state', 'peer'] as const) {
      const a = res[what]!;
      // The fd is read-only: no shared writable mapping, no upgrade of the read-only one, no write().
      assert.equal(a.mapWritable, 'EACCES', `${what}: mmap(PROT_WRITE) of the read-only fd`);
      assert.equal(a.mprotectWritable, 'EACCES', `${what}: mprotect to writable`);
      assert.equal(a.writeThroughFd, 'EBADF', `${what}: write() on the read-only fd`);
      // Reopening through /proc/self/fd opens a memfd read-write whatever the
      // fd's own mode (its inode allows it): that route must be tried, and the
      // seals must refuse every write through it.
      assert.equal(a.reopenReadWrite, 'ok', `${what}: the /proc/self/fd route was not exercised (${a.reopenReadWrite})`);
      assert.equal(a.reopenedMapWritable, 'EPERM', `${what}: writable mmap of the reopened fd`);
      assert.equal(a.reopenedWrite, 'EPERM', `${what}: write() on the reopened fd`);
      assert.equal(a.truncate, 'EPERM', `${what}: shrink`);
      assert.equal(a.grow, 'EPERM', `${what}: grow`);
      assert.equal(a.resealReopened, 'EPERM', `${what}: F_SEAL_SEAL refuses new seals`);
    }
    assert.equal(victim.output.toString('utf8', 0, 6), 'SECRET');
    assert.equal(victim.peerState(0), 5);
  });

  test('a write into the read-only State Table is SIGSEGV for the writer only', async () => {
    const r = await runRaw([broker.socketPath, 'segv-state', '1']);
    assert.equal(r.signal, 'SIGSEGV');
    assert.ok(r.lines.some((l) => l.event === 'about-to-write'));
    assert.ok(!r.lines.some((l) => l.event === 'wrote'));
    await until(() => broker.status().peers.length === 1, 'crashed peer removed');
    assert.deepEqual(victim.stateTable(), [5, 0, 0]);
  });

  test("a write into another peer's output section is SIGSEGV for the writer only", async () => {
    const r = await runRaw([broker.socketPath, 'segv-peer', '1', '0']);
    assert.equal(r.signal, 'SIGSEGV');
    assert.ok(!r.lines.some((l) => l.event === 'wrote'));
    assert.equal(victim.output.toString('utf8', 0, 6), 'SECRET');
  });

  test('a peer cannot shrink, grow or re-seal a section under a reader (no SIGBUS)', async () => {
    const child = spawn(process.execPath, [RAW, broker.socketPath, 'truncate', '2'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d));
      await until(() => out.includes('"result"'), 'truncate attempts', 20000);
      const res = JSON.parse(out.split('\n')[0]!) as Record<string, string>;
      assert.equal(res.shrinkOwn, 'EPERM');
      assert.equal(res.growOwn, 'EPERM');
      assert.equal(res.shrinkRw, 'EPERM');
      assert.equal(res.growRw, 'EPERM');
      assert.equal(res.resealOwn, 'EPERM', 'F_SEAL_SEAL on the own output section');
      assert.equal(res.resealRw, 'EPERM', 'F_SEAL_SEAL on the R/W section');
      assert.equal(res.newWritableOwnMapping, 'EPERM', 'F_SEAL_FUTURE_WRITE after the owner mapped');
      await until(() => victim.peers().includes(2), 'victim sees peer 2');
      // The reader touches every page of the section, including the last one.
      const tail = victim.readOutput(2, 16 * 1024 - 8, 8);
      assert.equal(tail.length, 8);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });
});
