// The device/broker scenarios of ivshmem-v2-notes.md (g.1-g.10, g.12, g.13),
// each with a real broker and real `ivshm peer` processes.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, describe, test } from 'node:test';
import { Broker, type BrokerOptions } from '../../src/ivshmem/broker.js';
import { connect } from '../../src/ivshmem/device.js';
import { IVSHM_REG_DOORBELL, IVSHM_REG_ID, IVSHM_REG_INT_CONTROL, IVSHM_REG_MAX_PEERS, IVSHM_REG_STATE } from '../../src/ivshmem/endpoint-base.js';
import { ConfigError, RefusedError } from '../../src/errors.js';
import { PeerProc, stopAllPeers, tmpSocket } from '../helpers/peer-proc.js';
import { sleep, until } from '../helpers/wait.js';

const brokers: Broker[] = [];
async function startBroker(o: Partial<BrokerOptions> & { peers: number }): Promise<Broker> {
  const b = new Broker({ socket: tmpSocket('broker'), outputSize: '8K', ...o });
  await b.start();
  brokers.push(b);
  return b;
}
after(async () => {
  await stopAllPeers();
  for (const b of brokers) await b.stop();
});

/** Peers a CLI peer knows of, from its event lines. */
function knownPeers(p: PeerProc): Set<number> {
  const set = new Set<number>();
  for (const e of p.events) {
    if (e.event === 'joined') for (const k of e.peers as number[]) set.add(k);
    if (e.event === 'peer-joined') set.add(e.peer as number);
    if (e.event === 'peer-gone') set.delete(e.peer as number);
  }
  return set;
}
const allKnowEachOther = (ps: PeerProc[]) => until(() => ps.every((p) => knownPeers(p).size === ps.length), 'all peers know each other');

const isInterrupt = (vector: number, from?: number) => (e: Record<string, unknown>) =>
  e.event === 'interrupt' && e.vector === vector && (from === undefined || e.from === from);

describe('ivshmem v2 broker and peers', { timeout: 180000 }, () => {
  test('g.1 identity: ID, MAX_PEERS, page-rounded section sizes', async () => {
    const b = await startBroker({ peers: 3, vectors: 4, outputSize: 5000, rwSize: 1, protocol: 0x4001, name: 'ident' });
    const p = await PeerProc.start(b.socketPath, { id: 2 });
    const j = p.events[0]!;
    assert.equal(j.id, 2);
    assert.equal(j.maxPeers, 3);
    assert.equal(j.vectors, 4);
    assert.equal(j.protocol, 0x4001);
    assert.deepEqual(j.sizes, { state: 4096, rw: 4096, output: 8192 });
    assert.equal(j.link, 'ident');
    await p.stop();
  });

  test('g.2 register region: unbacked offsets read 0 and ignore writes, DOORBELL reads 0', async () => {
    const b = await startBroker({ peers: 2, vectors: 2 });
    const d = await connect({ socket: b.socketPath, id: 1 });
    try {
      assert.equal(d.readRegister(IVSHM_REG_ID), 1);
      assert.equal(d.readRegister(IVSHM_REG_MAX_PEERS), 2);
      assert.equal(d.readRegister(IVSHM_REG_DOORBELL), 0);
      d.writeRegister(IVSHM_REG_ID, 7); // read-only: ignored
      d.writeRegister(0x40, 0xffffffff); // unbacked: ignored
      assert.equal(d.readRegister(IVSHM_REG_ID), 1);
      assert.equal(d.readRegister(0x40), 0);
      assert.equal(d.readRegister(0xffc), 0);
      d.writeRegister(IVSHM_REG_INT_CONTROL, 0);
      assert.equal(d.readRegister(IVSHM_REG_INT_CONTROL), 0);
      d.writeRegister(IVSHM_REG_STATE, 5);
      assert.equal(d.readRegister(IVSHM_REG_STATE), 5);
      assert.throws(() => d.readRegister(2), /aligned 32-bit/);
      assert.throws(() => d.readRegister(0x1000), /aligned 32-bit/);
    } finally {
      d.close();
    }
  });

  test('g.3 doorbells: vector out of range and absent target dropped, self delivered', async () => {
    const b = await startBroker({ peers: 3, vectors: 2 });
    const p0 = await PeerProc.start(b.socketPath, { id: 0 });
    const p1 = await PeerProc.start(b.socketPath, { id: 1 });
    await p0.waitFor((e) => e.event === 'peer-joined' && e.peer === 1, 'peer 1 joined');
    assert.equal((await p0.run('ring 1 2')).delivered, false, 'vector 2 of 2 must be dropped');
    assert.equal((await p0.run('ring 2 0')).delivered, false, 'peer 2 is absent');
    assert.equal((await p0.run('ring 9 0')).delivered, false, 'peer 9 does not exist');
    assert.equal((await p0.run('ring 0 1')).delivered, true, 'self doorbell');
    await p0.waitFor(isInterrupt(1, 0), 'self interrupt on vector 1');
    assert.equal((await p0.run('ring 1 1')).delivered, true);
    await p1.waitFor(isInterrupt(1, 0), 'interrupt at peer 1 from peer 0 on vector 1');
    // From a sender other than peer 0 too: a doorbell to an absent peer must
    // not land on some other peer (peer 0 is the one a fall-through would hit).
    await p0.waitFor((e) => e.event === 'peer-joined' && e.peer === 1, 'peer 1 joined');
    assert.equal((await p1.run('ring 2 0')).delivered, false, 'peer 2 is absent (from peer 1)');
    assert.equal((await p1.run('ring 9 0')).delivered, false, 'peer 9 does not exist (from peer 1)');
    // Then one real doorbell 1 -> 0 on the same vector (the same eventfd): once it
    // is seen, anything misdirected before it has been counted too.
    assert.equal((await p1.run('ring 0 0')).delivered, true);
    await p0.waitFor(isInterrupt(0, 1), 'interrupt at peer 0 from peer 1 on vector 0');
    const fromOne = p0.events.filter(isInterrupt(0, 1)).reduce((n, e) => n + (e.count as number), 0);
    assert.equal(fromOne, 1, 'peer 0 got only the one doorbell addressed to it');
    await sleep(100);
    assert.equal(p1.count((e) => e.event === 'interrupt'), 1, 'the dropped doorbells must not arrive');
  });

  test('g.4 INT_CONTROL 0 suppresses delivery and re-enabling does not replay', async () => {
    const b = await startBroker({ peers: 2, vectors: 1 });
    const p0 = await PeerProc.start(b.socketPath, { id: 0 });
    const p1 = await PeerProc.start(b.socketPath, { id: 1 });
    await p1.run('intctl 0');
    await p0.waitFor((e) => e.event === 'peer-joined', 'peer 1 joined');
    for (let i = 0; i < 3; i++) await p0.run('ring 1 0');
    await sleep(200);
    await p1.run('intctl 1');
    await sleep(200);
    assert.equal(p1.count((e) => e.event === 'interrupt'), 0);
    const dump = await p1.run('dump');
    assert.ok(((dump.counters as { suppressed: number }).suppressed) >= 1);
    await p0.run('ring 1 0');
    await p1.waitFor(isInterrupt(0, 0), 'interrupt after re-enabling');
  });

  test('g.5 one-shot: one delivery clears INT_CONTROL until re-armed', async () => {
    const b = await startBroker({ peers: 2, vectors: 1 });
    const p0 = await PeerProc.start(b.socketPath, { id: 0 });
    const p1 = await PeerProc.start(b.socketPath, { id: 1 });
    await p1.run('oneshot 1');
    await p0.waitFor((e) => e.event === 'peer-joined', 'peer 1 joined');
    await p0.run('ring 1 0');
    await p1.waitFor(isInterrupt(0), 'first interrupt');
    assert.equal((await p1.run('dump')).intControl, 0, 'INT_CONTROL reads 0 after a one-shot delivery');
    await p0.run('ring 1 0');
    await sleep(200);
    assert.equal(p1.count((e) => e.event === 'interrupt'), 1, 'second doorbell not delivered before re-arming');
    await p1.run('intctl 1');
    await p0.run('ring 1 0');
    await until(() => p1.count((e) => e.event === 'interrupt') === 2, 'delivery after re-arming');
  });

  test('g.6 STATE: others get vector 0 on change, the writer does not; same value raises nothing', async () => {
    const b = await startBroker({ peers: 3, vectors: 2 });
    const p = await Promise.all([0, 1, 2].map((id) => PeerProc.start(b.socketPath, { id })));
    const [p0, p1, p2] = p as [PeerProc, PeerProc, PeerProc];
    await allKnowEachOther(p);
    await p1.run('state 5');
    for (const q of [p0, p2]) {
      await q.waitFor((e) => e.event === 'state' && e.peer === 1 && e.value === 5, 'state change of peer 1');
      await q.waitFor(isInterrupt(0, -1), 'vector 0 interrupt');
    }
    await p1.run('state 5');
    await sleep(200);
    for (const q of [p0, p2]) assert.equal(q.count(isInterrupt(0, -1)), 1, 'same value must not interrupt');
    assert.equal(p1.count(isInterrupt(0, -1)), 0, 'the writer is not interrupted');
    assert.deepEqual((await p2.run('dump')).stateTable, [0, 5, 0]);
  });

  test('g.7 peer exit and SIGKILL: entry becomes 0, others get vector 0 and peer-gone', async () => {
    const b = await startBroker({ peers: 3, vectors: 1 });
    const p0 = await PeerProc.start(b.socketPath, { id: 0 });
    const p1 = await PeerProc.start(b.socketPath, { id: 1 });
    const p2 = await PeerProc.start(b.socketPath, { id: 2 });
    await p1.run('state 9');
    await p0.waitFor((e) => e.event === 'state' && e.peer === 1 && e.value === 9, 'state 9');
    p1.child.kill('SIGKILL');
    await p0.waitFor((e) => e.event === 'peer-gone' && e.peer === 1, 'peer-gone after SIGKILL');
    await p0.waitFor((e) => e.event === 'state' && e.peer === 1 && e.value === 0, 'state 0 after SIGKILL');
    assert.deepEqual((await p0.run('dump')).stateTable, [0, 0, 0]);
    // A peer whose state was 0 leaves without a state interrupt, but with peer-gone.
    const before = p0.count(isInterrupt(0, -1));
    p2.cmd('quit');
    await p0.waitFor((e) => e.event === 'peer-gone' && e.peer === 2, 'peer-gone after quit');
    await sleep(100);
    assert.equal(p0.count(isInterrupt(0, -1)), before);
  });

  test('g.8, g.9 first peer sees a zero table; duplicate and out-of-range IDs refused; link re-created after the last peer', async () => {
    const b = await startBroker({ peers: 2, vectors: 1 });
    const d0 = await connect({ socket: b.socketPath, id: 0 });
    d0.setState(0xdeadbeef);
    await assert.rejects(connect({ socket: b.socketPath, id: 0 }), (e: unknown) => e instanceof RefusedError && /already taken/.test(e.message));
    await assert.rejects(connect({ socket: b.socketPath, id: 2 }), (e: unknown) => e instanceof RefusedError && /out of range 0\.\.1/.test(e.message));
    const d1 = await connect({ socket: b.socketPath });
    assert.equal(d1.id, 1);
    await until(() => d1.peerState(0) === 0xdeadbeef, 'state of peer 0 visible');
    d1.setState(3);
    d0.close();
    d1.close();
    await until(() => b.status().peers.length === 0, 'link empty');
    const fresh = await connect({ socket: b.socketPath, id: 1 });
    assert.deepEqual(fresh.stateTable(), [0, 0], 'a new link starts from a zeroed State Table');
    fresh.close();
  });

  test('g.10 max peers: every pair can ring, the N+1-th peer is refused', async () => {
    const N = 4;
    const b = await startBroker({ peers: N, vectors: 2 });
    const ps = [];
    for (let i = 0; i < N; i++) ps.push(await PeerProc.start(b.socketPath));
    assert.deepEqual(ps.map((p) => p.id), [0, 1, 2, 3]);
    await assert.rejects(connect({ socket: b.socketPath }), (e: unknown) => e instanceof RefusedError && /full/.test(e.message));
    await allKnowEachOther(ps);
    for (const a of ps) for (const t of ps) assert.equal((await a.run(`ring ${t.id} 1`)).delivered, true);
    for (const t of ps) for (const a of ps) await t.waitFor(isInterrupt(1, a.id), `peer ${t.id} rung by ${a.id}`);
  });

  test('g.12 ordering: data written before a doorbell is visible when the interrupt is seen', async () => {
    const b = await startBroker({ peers: 2, vectors: 1 });
    const w = await connect({ socket: b.socketPath, id: 0 });
    const r = await PeerProc.start(b.socketPath, { id: 1 });
    try {
      for (let i = 1; i <= 50; i++) {
        w.output.writeUInt32LE(i, 0);
        const from = r.events.length;
        assert.equal(w.ring(1, 0), true);
        await r.waitFor(isInterrupt(0, 0), `interrupt ${i}`, 10000, from);
        const read = await r.run('read 0 0 4');
        assert.equal(Buffer.from(read.hex as string, 'hex').readUInt32LE(0), i);
      }
    } finally {
      w.close();
    }
  });

  test('g.13 vector fan-in: coalesced doorbells lose no event (counts add up)', async () => {
    const b = await startBroker({ peers: 2, vectors: 4 });
    const s = await connect({ socket: b.socketPath, id: 0 });
    const r = await connect({ socket: b.socketPath, id: 1 });
    try {
      const got = [0, 0, 0, 0];
      r.on('interrupt', (e) => (got[e.vector]! += e.count));
      await until(() => s.peers().includes(1), 'peer 1 visible');
      const sent = [0, 0, 0, 0];
      for (let i = 0; i < 4000; i++) {
        const v = (i * 7) % 4;
        assert.equal(s.ring(1, v), true);
        sent[v]!++;
        if (i % 500 === 0) await sleep(1);
      }
      await until(() => got.every((g, v) => g === sent[v]), `all ${4000} doorbells counted (got ${got})`);
    } finally {
      s.close();
      r.close();
    }
  });

  test('library API: peer-joined, peer-gone and close events; restarted peer gets a zeroed output section', async () => {
    const b = await startBroker({ peers: 2, vectors: 1 });
    const d0 = await connect({ socket: b.socketPath, id: 0 });
    const events: string[] = [];
    d0.on('peer-joined', (e) => events.push(`joined ${e.peer}`));
    d0.on('peer-gone', (e) => events.push(`gone ${e.peer}`));
    let d1 = await connect({ socket: b.socketPath, id: 1 });
    d1.output.write('stale', 0);
    await until(() => d0.readOutput(1, 0, 5).toString() === 'stale', 'write visible');
    d1.close();
    d1 = await connect({ socket: b.socketPath, id: 1 });
    assert.equal(d1.output.readUInt32LE(0), 0, 'fresh output section after a restart');
    await until(() => events.length === 3, 'join/gone/join events');
    assert.deepEqual(events, ['joined 1', 'gone 1', 'joined 1']);
    assert.equal(d0.readOutput(1, 0, 5).toString('hex'), '0000000000');
    const closed = new Promise((resolve) => d1.once('close', resolve));
    await b.stop();
    assert.deepEqual(await closed, { reason: 'the broker closed the link' });
    d0.close();
  });

  test('sections are memfds named ivshm:LINK:state|rw|outK, visible in /proc/PID/maps', async () => {
    const b = await startBroker({ peers: 2, vectors: 1, rwSize: '4K', name: 'named' });
    const p0 = await PeerProc.start(b.socketPath, { id: 0 });
    const p1 = await PeerProc.start(b.socketPath, { id: 1 });
    await allKnowEachOther([p0, p1]);
    const maps = fs.readFileSync(`/proc/${p0.child.pid}/maps`, 'utf8');
    for (const name of ['state', 'rw', 'out0', 'out1']) assert.match(maps, new RegExp(`memfd:ivshm:named:${name} `), name);
    // Read-only sections are mapped without write permission, the own output section with it.
    const perms = (name: string) => maps.split('\n').find((l) => l.includes(`memfd:ivshm:named:${name} `))!.split(/\s+/)[1];
    assert.equal(perms('state'), 'r--s');
    assert.equal(perms('out1'), 'r--s');
    assert.equal(perms('out0'), 'rw-s');
    assert.equal(perms('rw'), 'rw-s');
    const fds = fs.readdirSync('/proc/self/fd').map((f) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${f}`);
      } catch {
        return '';
      }
    });
    assert.ok(fds.some((l) => l.startsWith('/memfd:ivshm:named:out1')), 'the broker holds the sections');
  });

  test('a peer whose stdin ends stays on the link without spinning', async () => {
    const b = await startBroker({ peers: 2, vectors: 1 });
    const p0 = await PeerProc.start(b.socketPath, { id: 0 });
    p0.child.stdin!.end();
    const cpu = () => {
      const f = fs.readFileSync(`/proc/${p0.child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks
    };
    const before = cpu();
    await sleep(1000);
    // A busy loop would burn about 100 ticks per second; an idle peer next to nothing.
    assert.ok(cpu() - before < 30, `peer used ${cpu() - before} ticks of CPU in 1 s after stdin EOF`);
    const d1 = await connect({ socket: b.socketPath, id: 1 });
    d1.ring(0, 0);
    await p0.waitFor(isInterrupt(0, 1), 'interrupt after stdin EOF');
    d1.close();
  });

  test('inside a cell, connect() with no argument joins the given link with its ID and token', async () => {
    const b = await startBroker({ peers: 2, vectors: 1, tokens: { 1: 'secret-1', 0: 'secret-0' }, name: 'cell' });
    const saved = process.env.IVSHM_LINKS;
    process.env.IVSHM_LINKS = JSON.stringify({ cell: { socket: b.socketPath, id: 1, token: 'secret-1', kind: 'raw', protocol: 0 } });
    try {
      const d = await connect();
      assert.equal(d.id, 1);
      d.close();
      const d2 = await connect('cell');
      d2.close();
      await assert.rejects(connect('other'), (e: unknown) => e instanceof ConfigError && /no link named "other"/.test(e.message));
      // Knowing the socket is not enough: a wrong token or another ID is refused.
      await assert.rejects(connect({ socket: b.socketPath, id: 0, token: 'guess' }), (e: unknown) => e instanceof RefusedError && /not allowed/.test(e.message));
      await assert.rejects(connect({ socket: b.socketPath }), (e: unknown) => e instanceof RefusedError && /not allowed/.test(e.message));
      delete process.env.IVSHM_LINKS;
      await assert.rejects(connect(), (e: unknown) => e instanceof ConfigError && /IVSHM_LINKS is not set/.test(e.message));
    } finally {
      if (saved === undefined) delete process.env.IVSHM_LINKS;
      else process.env.IVSHM_LINKS = saved;
    }
  });
});
