// Channel semantics on the in-process link (the same code runs cross-process
// in cross-process.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Channel, type PeerDownEvent, type PeerUpEvent } from '../../src/channel/index.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { link, listenerErrors, payload, sha, tick } from './helpers.js';
import { until } from '../helpers/wait.js';
import type { WaitMode } from '../../src/ivshmem/wait.js';

for (const mode of ['event', 'poll', 'hybrid'] as WaitMode[]) {
  test(`${mode}: both directions under load keep order, lose nothing, duplicate nothing`, { timeout: 30000 }, async () => {
    const l = link(2, '64K');
    const a = new Channel(l.join(0), { mode });
    const b = new Channel(l.join(1), { mode });
    await Promise.all([a.ready(), b.ready()]);
    const N = 3000;
    const expect = (s: number) => Array.from({ length: N }, (_, i) => sha(payload(s, i)));
    const got: Record<string, string[]> = { a: [], b: [] };
    const seqs: Record<string, number[]> = { a: [], b: [] };
    a.on('message', (m) => {
      got.a!.push(sha(m.data));
      seqs.a!.push(m.seq);
    });
    b.on('message', (m) => {
      got.b!.push(sha(m.data));
      seqs.b!.push(m.seq);
    });
    const sendAll = async (ch: Channel, s: number) => {
      for (let i = 0; i < N; i++) await ch.send(payload(s, i));
    };
    await Promise.all([sendAll(a, 1), sendAll(b, 2)]);
    await Promise.all([a.flush(), b.flush()]);
    assert.deepEqual(got.b, expect(1));
    assert.deepEqual(got.a, expect(2));
    assert.deepEqual(seqs.b, Array.from({ length: N }, (_, i) => i + 1));
    assert.equal(a.counters.violations + b.counters.violations, 0);
    a.close();
    b.close();
  });
}

test('event mode suppresses doorbells on a busy stream', { timeout: 20000 }, async () => {
  const l = link(2, '1M');
  const a = new Channel(l.join(0));
  const b = new Channel(l.join(1));
  await Promise.all([a.ready(), b.ready()]);
  let n = 0;
  b.on('message', () => n++);
  for (let i = 0; i < 5000; i++) a.trySend(Buffer.alloc(64)) || (await a.send(Buffer.alloc(64)));
  await until(() => n === 5000, 'all messages');
  // One doorbell per sleep of the reader at most; here a batch of sends before any delivery.
  assert.ok(a.counters.doorbellsRung < 100, `rang ${a.counters.doorbellsRung} times for 5000 messages`);
  a.close();
  b.close();
});

test('poll() delivers synchronously and moves queued sends without an event-loop turn', { timeout: 20000 }, async () => {
  const l = link(2, '16K'); // 8 KiB ring: 2 messages of 3000 bytes fit, the third waits
  const a = new Channel(l.join(0));
  const b = new Channel(l.join(1));
  await Promise.all([a.ready(), b.ready()]);
  await tick(5); // let both pumps go to sleep
  const seen: number[] = [];
  b.on('message', (m) => seen.push(m.data.readUInt32LE(4)));
  assert.equal(b.poll(), 0, 'nothing published yet');
  const msg = (i: number) => {
    const m = Buffer.alloc(3000, i);
    m.writeUInt32LE(i, 4);
    return m;
  };
  const sent = [0, 1, 2].map((i) => a.send(msg(i)));
  // No await between the sends and poll(): everything below is synchronous.
  assert.equal(b.poll(), 2, 'the two messages that fit');
  assert.deepEqual(seen, [0, 1]);
  assert.equal(b.poll(), 0, 'the third is still queued on the sender');
  a.poll(); // sees the freed space and moves the queued send into the ring
  assert.equal(b.poll(), 1);
  assert.deepEqual(seen, [0, 1, 2]);
  assert.deepEqual(await Promise.all(sent), [1, 2, 3]);
  a.close();
  assert.equal(a.poll(), 0, 'a closed channel does nothing');
  b.close();
});

test('back-pressure: a stopped receiver makes send wait, then it resumes', { timeout: 20000 }, async () => {
  const l = link(2, '16K'); // 8 KiB ring
  const a = new Channel(l.join(0));
  const b = new Channel(l.join(1));
  await Promise.all([a.ready(), b.ready()]);
  b.pause();
  const got: number[] = [];
  b.on('message', (m) => got.push(m.data.readUInt32LE(0)));
  let settled = 0;
  const sends: Promise<number>[] = [];
  for (let i = 0; i < 200; i++) {
    const buf = Buffer.alloc(100);
    buf.writeUInt32LE(i, 0);
    sends.push(a.send(buf).then((s) => (settled++, s)));
  }
  await tick(50);
  assert.ok(settled < 200, 'some sends must wait while the receiver is stopped');
  assert.ok(settled > 0, 'the ring takes some');
  assert.equal(got.length, 0);
  const waitingAt = settled;
  b.resume();
  const seqs = await Promise.all(sends);
  assert.deepEqual(seqs, Array.from({ length: 200 }, (_, i) => i + 1));
  await a.flush();
  assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => i));
  assert.ok(waitingAt < 200);
  a.close();
  b.close();
});

test('async iterator receives in order and applies back-pressure through highWaterMark', { timeout: 20000 }, async () => {
  const l = link(2, '64K');
  const a = new Channel(l.join(0));
  const b = new Channel(l.join(1), { highWaterMark: 4 });
  await Promise.all([a.ready(), b.ready()]);
  const sending = (async () => {
    for (let i = 0; i < 500; i++) await a.send(payload(7, i, 500));
  })();
  let i = 0;
  for await (const m of b) {
    assert.equal(sha(m.data), sha(payload(7, i, 500)));
    if (++i === 500) break;
  }
  await sending;
  a.close();
  b.close();
});

test('loan: write in place, commit; messages wrap correctly; abort releases', { timeout: 20000 }, async () => {
  const l = link(2, '16K');
  const a = new Channel(l.join(0));
  const b = new Channel(l.join(1));
  await Promise.all([a.ready(), b.ready()]);
  const got: string[] = [];
  b.on('message', (m) => got.push(sha(m.data)));
  const want: string[] = [];
  const aborted = await a.loan(100);
  aborted.abort();
  for (let i = 0; i < 300; i++) {
    const p = payload(3, i, 2000);
    const loan = await a.loan(p.length + 10);
    p.copy(loan.buffer);
    await loan.commit(p.length);
    want.push(sha(p));
  }
  await a.flush();
  assert.deepEqual(got, want);
  a.close();
  b.close();
});

test('request/response with correlation IDs, concurrent and out of order', { timeout: 20000 }, async () => {
  const l = link(2, '64K');
  const a = new Channel(l.join(0));
  const b = new Channel(l.join(1));
  await Promise.all([a.ready(), b.ready()]);
  const held: Array<() => void> = [];
  const failures = listenerErrors(b);
  b.on('message', (m) => {
    assert.ok(m.isRequest);
    if (m.data.length < 4) return; // the request that times out
    const n = m.data.readUInt32LE(0);
    const answer = () => void m.respond(Buffer.from(`answer ${n}`));
    // Answer odd requests late, so responses arrive out of order.
    if (n % 2) held.push(answer);
    else answer();
  });
  const reqs = Array.from({ length: 50 }, (_, n) => {
    const q = Buffer.alloc(4);
    q.writeUInt32LE(n);
    return a.request(q);
  });
  await until(() => held.length === 25, 'odd requests');
  for (const h of held.reverse()) h();
  const res = await Promise.all(reqs);
  res.forEach((r, n) => assert.equal(r.data.toString(), `answer ${n}`));
  await assert.rejects(a.request(Buffer.from('x'), { timeoutMs: 20 }).then(() => {}), /no response/);
  assert.deepEqual(failures, []);
  a.close();
  b.close();
});

test('oversized messages and bad options are refused with a clear error', { timeout: 5000 }, async () => {
  const l = link(2, '16K');
  const ep = l.join(0);
  const a = new Channel(ep);
  await assert.rejects(a.send(Buffer.alloc(a.maxMessageSize + 1)), (e) => e instanceof InvalidArgumentError && /larger outputSize/.test(e.message));
  assert.throws(() => a.trySend(Buffer.alloc(a.maxMessageSize + 1)), InvalidArgumentError);
  a.close();
  const bad = new (await import('../../src/ivshmem/local-link.js')).LocalLink({ peers: 2, outputSize: '16K', protocol: 1 });
  assert.throws(() => new Channel(bad.join(0)), /user range/);
  assert.throws(() => new Channel(l.join(1), { mode: 'spin' as WaitMode }), /wait mode/);
});

test('peer restart mid-stream: gap reported by sequence numbers, stream continues, nothing twice', { timeout: 30000 }, async () => {
  const l = link(2, '16K');
  const a = new Channel(l.join(0));
  let ep1 = l.join(1);
  let b = new Channel(ep1);
  await Promise.all([a.ready(), b.ready()]);
  const downs: PeerDownEvent[] = [];
  const ups: PeerUpEvent[] = [];
  a.on('peer-down', (e) => downs.push(e));
  a.on('peer-up', (e) => ups.push(e));
  const received = new Map<number, string>();
  const failures = listenerErrors(b);
  const onMsg = (m: { seq: number; data: Buffer }) => {
    assert.ok(!received.has(m.seq), `seq ${m.seq} delivered twice`);
    received.set(m.seq, sha(m.data));
  };
  b.on('message', onMsg);
  const sent = new Map<number, string>();
  // Fill: 100 delivered, then the receiver stops and 50 more pile up in the ring.
  for (let i = 0; i < 100; i++) sent.set(await a.send(payload(1, i, 200)), sha(payload(1, i, 200)));
  await a.flush();
  b.pause();
  for (let i = 100; i < 150; i++) sent.set(await a.send(payload(1, i, 200)), sha(payload(1, i, 200)));
  // The receiver process "dies" and restarts with a fresh section.
  ep1.close();
  await until(() => downs.length === 1, 'peer-down');
  assert.deepEqual(downs[0]!.unconfirmed, { from: 101, to: 150 });
  ep1 = l.join(1);
  b = new Channel(ep1);
  b.on('error', (e) => failures.push(e));
  const firstUp = new Promise<PeerUpEvent>((r) => b.once('peer-up', r));
  b.on('message', onMsg);
  // Sends while the peer is away wait, then go to the new incarnation.
  const later: Promise<number>[] = [];
  for (let i = 150; i < 200; i++) later.push(a.send(payload(1, i, 200)));
  const up = await firstUp;
  assert.equal(up.firstSeq, 151, 'the new receiver learns where the stream resumes');
  (await Promise.all(later)).forEach((s, k) => sent.set(s, sha(payload(1, 150 + k, 200))));
  await a.flush();
  assert.equal(ups.length >= 1, true);
  for (let s = 1; s <= 100; s++) assert.equal(received.get(s), sent.get(s));
  for (let s = 101; s <= 150; s++) assert.equal(received.has(s), false);
  for (let s = 151; s <= 200; s++) assert.equal(received.get(s), sent.get(s), `seq ${s}`);
  assert.deepEqual(failures, []);
  a.close();
  b.close();
});

test('reset() re-handshakes; the peer sees a restart and the stream continues', { timeout: 20000 }, async () => {
  const l = link(2, '64K');
  const a = new Channel(l.join(0));
  const b = new Channel(l.join(1));
  await Promise.all([a.ready(), b.ready()]);
  const got: string[] = [];
  b.on('message', (m) => got.push(m.data.toString()));
  await a.send(Buffer.from('before'));
  await a.flush();
  const down = new Promise<PeerDownEvent>((r) => b.once('peer-down', r));
  a.reset();
  assert.equal((await down).reason, 'peer restarted');
  await a.ready();
  await a.send(Buffer.from('after'));
  await until(() => got.length === 2, 'after reset');
  assert.deepEqual(got, ['before', 'after']);
  a.close();
  b.close();
});

test('close rejects pending sends and ends iterators', { timeout: 5000 }, async () => {
  const l = link(2, '16K');
  const a = new Channel(l.join(0));
  const p = a.send(Buffer.from('nobody listens'));
  const it = a[Symbol.asyncIterator]().next();
  a.close();
  await assert.rejects(p, /closed/);
  assert.equal((await it).done, true);
});

test('a throwing message listener is reported, not rethrown; the channel keeps its state', { timeout: 10000 }, async () => {
  const l = link(2, '16K');
  const a = new Channel(l.join(0), { mode: 'poll' });
  const b = new Channel(l.join(1), { mode: 'poll' });
  await Promise.all([a.ready(), b.ready()]);
  const errors: unknown[] = [];
  b.on('error', (e) => errors.push(e));
  const seen: number[] = [];
  b.on('message', (m) => {
    seen.push(m.seq);
    if (m.seq % 2) throw new Error(`bad ${m.seq}`);
  });
  for (let i = 0; i < 10; i++) a.trySend(Buffer.from([i]));
  assert.equal(b.poll(), 10);
  assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(errors.map((e) => (e as Error).message), ['bad 1', 'bad 3', 'bad 5', 'bad 7', 'bad 9']);
  assert.equal(b.counters.listenerErrors, 5);
  // The consumer position was published despite the exceptions: the sender sees everything confirmed.
  await a.flush();
  a.close();
  b.close();
});
