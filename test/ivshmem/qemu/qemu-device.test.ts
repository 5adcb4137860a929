// Interop with the real QEMU `ivshmem-doorbell` device (QEMU 7.2 on Debian),
// run under qtest on stdio with no guest and no KVM (qemu-ivshmem-notes.md
// §5): `ivshm qemu-server` serves it next to ivshm peers (our client in this
// process and the `ivshm peer --qemu` command), and the test plays the guest
// driver by reading and writing the device's BARs.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { connectQemu, type QemuEndpoint } from '../../../src/ivshmem/qemu/client.js';
import { killAllQemu, qemuUnavailable, QtestMachine } from '../../fixtures/qemu-qtest.js';
import { PeerProc, stopAllPeers, tmpSocket } from '../../helpers/peer-proc.js';
import { until } from '../../helpers/wait.js';

const VECTORS = 2;
const unavailable = qemuUnavailable();
if (unavailable) console.log(`# skipping QEMU interop tests: ${unavailable}`);

type Irq = { vector: number; from: number; count: number };

describe('real QEMU ivshmem-doorbell devices on ivshm qemu-server', { skip: unavailable ?? false, timeout: 120000 }, () => {
  const socket = tmpSocket('qemu-dev');
  let server: PeerProc;
  let ours: QemuEndpoint;
  let q1: QtestMachine;
  let q1Id = -1;
  const joined: number[] = [];
  const gone: { peer: number; reason: string }[] = [];
  const serverLog = () => server.events.map((e) => String(e.message ?? e.line ?? ''));

  before(async () => {
    server = await PeerProc.start(socket, { args: ['qemu-server', '--socket', socket, '--size', '1M', '--vectors', String(VECTORS), '--json'], wait: false });
    // The socket file appears at bind(), before listen(): wait for the log line.
    await server.waitFor((e) => /^listening on /.test(String(e.message)), 'qemu-server listening', 20000);
    ours = await connectQemu({ socket, vectors: VECTORS });
    ours.on('peer-joined', (e) => joined.push(e.peer));
    ours.on('peer-gone', (e) => gone.push(e));
    q1 = QtestMachine.start(socket, VECTORS);
  });

  after(async () => {
    killAllQemu();
    ours?.close();
    await stopAllPeers();
    assert.equal(fs.existsSync(socket), false, 'qemu-server removed its socket');
  });

  it('QEMU reads its own ID from IVPosition, and our peer sees that ID join', { timeout: 60000 }, async () => {
    const { vendor, device } = await q1.setupDevice();
    assert.equal(vendor, 0x1af4);
    assert.equal(device, 0x1110);
    q1Id = await q1.ivPosition();
    assert.equal(q1Id, 1, 'our peer took ID 0, QEMU the next one');
    assert.equal(ours.id, 0);
    await until(() => joined.includes(q1Id), 'peer-joined for QEMU');
    assert.deepEqual(ours.peers(), [0, 1]);
    assert.ok(serverLog().some((m) => /^peer 1 connected \(pid \d+/.test(m)), serverLog().join('\n'));
  });

  it("a doorbell written to QEMU's BAR0 reaches our peer on the right vector", { timeout: 60000 }, async () => {
    const events: Irq[] = [];
    ours.on('interrupt', (e) => events.push(e));
    for (const v of [1, 0, 1]) {
      const n = events.length;
      await retry(() => q1.doorbell(ours.id, v), () => events.length > n, `interrupt on vector ${v} from QEMU`);
      assert.deepEqual(new Set(events.slice(n).map((e) => e.vector)), new Set([v]), 'only the rung vector fired');
    }
    assert.ok(ours.counters.interrupts[0]! >= 1 && ours.counters.interrupts[1]! >= 2, `counters ${JSON.stringify(ours.counters.interrupts)}`);
  });

  it("our peer's ring shows as a pending bit in QEMU's MSI-X PBA", { timeout: 60000 }, async () => {
    assert.equal((await q1.pendingBits()) & 3, 0, 'nothing pending before');
    assert.equal(ours.ring(q1Id, 1), true);
    await until(async () => ((await q1.pendingBits()) & 3) === 2, 'PBA bit 1', QEMU_POLL);
    assert.equal(ours.ring(q1Id, 0), true);
    await until(async () => ((await q1.pendingBits()) & 3) === 3, 'PBA bit 0', QEMU_POLL);
    assert.equal(ours.ring(q1Id, VECTORS), false, 'QEMU has no vector 2');
  });

  it('bytes written by each side are read by the other through BAR2', { timeout: 60000 }, async () => {
    ours.rw.write('NODE->QEMU', 0x100);
    assert.equal((await q1.readShared(0x100, 10)).toString(), 'NODE->QEMU');
    await q1.writeShared(0x200, Buffer.from('QEMU->NODE'));
    assert.equal(ours.readOutput(q1Id, 0x200, 10).toString(), 'QEMU->NODE');
    // The last byte of the region, to check QEMU maps all of it.
    ours.rw[ours.rw.length - 1] = 0x5a;
    assert.deepEqual(await q1.readShared(ours.rw.length - 1, 1), Buffer.from([0x5a]));
  });

  it('two QEMU devices ring each other and share BAR2 through the server', { timeout: 60000 }, async () => {
    const q2 = QtestMachine.start(socket, VECTORS);
    try {
      await q2.setupDevice();
      const q2Id = await q2.ivPosition();
      assert.equal(q2Id, 2);
      await until(() => joined.includes(q2Id), 'peer-joined for QEMU 2');
      // QEMU 1 learns QEMU 2's eventfds asynchronously: ring until it lands.
      await until(async () => {
        await q1.doorbell(q2Id, 1);
        return ((await q2.pendingBits()) & 3) === 2;
      }, 'QEMU 2 PBA bit 1 after QEMU 1 rang it', QEMU_POLL);
      await q2.writeShared(0x400, Buffer.from('q2'));
      assert.equal((await q1.readShared(0x400, 2)).toString(), 'q2');
      // QEMU 2 leaves: our peer and QEMU 1 are told.
      await q2.stop();
      await until(() => gone.some((g) => g.peer === q2Id), 'peer-gone for QEMU 2');
      await until(() => serverLog().some((m) => m === `peer ${q2Id} left: EOF`), 'server logs QEMU 2 leaving');
      // A doorbell to the departed ID is ignored (§3), and QEMU 1 keeps working.
      await q1.doorbell(q2Id, 0);
      let rung = false;
      ours.once('interrupt', () => (rung = true));
      await retry(() => q1.doorbell(ours.id, 0), () => rung, 'interrupt from QEMU 1 after QEMU 2 left');
    } finally {
      q2.kill();
    }
  });

  it('`ivshm peer --qemu` talks to QEMU; when it quits, the others see it gone', { timeout: 60000 }, async () => {
    const cli = await PeerProc.start(socket, { args: ['peer', '--qemu', '--socket', socket, '--json'] });
    const cliId = cli.id;
    assert.equal(cliId, 3);
    await until(() => joined.includes(cliId), 'our peer sees the CLI peer');
    await cli.run('write 0x300 from the cli');
    assert.equal((await q1.readShared(0x300, 12)).toString(), 'from the cli');
    await q1.writeShared(0x340, Buffer.from('to the cli'));
    const r = await cli.run(`read ${q1Id} 0x340 10`);
    assert.equal(r.text, 'to the cli');
    await retry(
      () => q1.doorbell(cliId, 1),
      () => cli.events.some((e) => e.event === 'interrupt' && e.vector === 1),
      'interrupt from QEMU at the CLI peer',
    );
    await until(async () => ((await q1.pendingBits()) & 3) === 3, 'PBA still set', QEMU_POLL);
    const ring = await cli.run(`ring ${q1Id} 1`);
    assert.equal(ring.delivered, true);
    cli.cmd('quit');
    await cli.exited;
    await until(() => gone.some((g) => g.peer === cliId), 'peer-gone for the CLI peer');
    // QEMU processed the disconnect without complaint and still answers.
    await q1.doorbell(cliId, 1);
    assert.equal(await q1.ivPosition(), q1Id);
    assert.doesNotMatch(q1.stderr.join(''), /invalid peer|Too many eventfd|error/i, 'QEMU reported no protocol error');
  });

  it('when QEMU quits, our peer sees it gone and the server logs it', { timeout: 60000 }, async () => {
    await q1.stop();
    await until(() => gone.some((g) => g.peer === q1Id), 'peer-gone for QEMU 1');
    await until(() => serverLog().some((m) => m === `peer ${q1Id} left: EOF`), 'server logs QEMU 1 leaving');
    assert.deepEqual(ours.peers(), [0]);
    assert.equal(ours.ring(q1Id, 0), false);
  });
});

/** Polling a QEMU register: a qtest round trip per probe; TCG is slow. */
const QEMU_POLL = { timeoutMs: 20000, intervalMs: 10 };

/**
 * QEMU reads the vectors of peers that joined after its realize
 * asynchronously, so a doorbell right after a join may be dropped (§3): ring
 * again every 500 ms until `seen`.
 */
async function retry(ring: () => Promise<void>, seen: () => boolean, what: string): Promise<void> {
  await ring();
  let rang = Date.now();
  await until(
    async () => {
      if (seen()) return true;
      if (Date.now() - rang >= 500) {
        rang = Date.now();
        await ring();
      }
      return false;
    },
    what,
    QEMU_POLL,
  );
}
