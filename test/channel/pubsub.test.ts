// Publish-subscribe on the in-process link.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Publisher, Subscriber, Sample } from '../../src/channel/index.js';
import { link, listenerErrors, payload, sha, tick } from './helpers.js';
import { until } from '../helpers/wait.js';

test('block policy: every subscriber gets every sample, in order, intact', { timeout: 30000 }, async () => {
  const l = link(5, '64K');
  const pub = new Publisher(l.join(0), { overflow: 'block' });
  const subs = [1, 2, 3, 4].map((id) => new Subscriber(l.join(id), { publisher: 0, mode: id % 2 ? 'event' : 'hybrid' }));
  await Promise.all(subs.map((s) => s.ready()));
  await until(() => pub.subscribers().length === 4, 'publisher sees 4 subscribers');
  const failures = listenerErrors(...subs);
  const got = subs.map(() => [] as string[]);
  subs.forEach((s, k) =>
    s.on('sample', (x) => {
      const d = x.digest();
      assert.ok(d, 'a sample is valid in its listener under the block policy');
      got[k]!.push(d!);
      assert.equal(x.missed, 0);
    }),
  );
  const want: string[] = [];
  for (let i = 0; i < 2000; i++) {
    const p = payload(9, i, 3000);
    want.push(sha(p));
    await pub.publish(p);
  }
  await until(() => got.every((g) => g.length === 2000), 'all samples');
  for (const g of got) assert.deepEqual(g, want);
  assert.deepEqual(failures, []);
  for (const s of subs) assert.equal(s.counters.missed, 0);
  pub.close();
  for (const s of subs) s.close();
});

test('overwrite policy: a subscriber that stops reading does not slow the publisher and learns what it missed', { timeout: 30000 }, async () => {
  const l = link(3, '16K');
  const pub = new Publisher(l.join(0));
  const fast = new Subscriber(l.join(1), { publisher: 0 });
  const slow = new Subscriber(l.join(2), { publisher: 0, highWaterMark: 2 });
  await Promise.all([fast.ready(), slow.ready()]);
  const fastSeqs: number[] = [];
  fast.on('sample', (s) => fastSeqs.push(s.seq));
  // The slow one has no listener and a tiny inbox: it stops reading after 2.
  const slowIt = slow[Symbol.asyncIterator]();
  const N = 3000;
  let published = 0;
  for (let i = 0; i < N; i++) {
    // Never waits: publish resolves at once in overwrite mode.
    const seq = pub.tryPublish(payload(4, i, 300));
    assert.equal(seq, i + 1);
    published++;
    if (i % 100 === 0) await tick(0);
  }
  assert.equal(published, N);
  await until(() => fastSeqs.at(-1) === N, 'fast subscriber catches up');
  assert.ok(pub.counters.overwritten > 0, 'the ring wrapped over unread samples');
  // The slow subscriber now reads: it gets the first samples it had queued, then a gap.
  const seen: Array<{ seq: number; missed: number }> = [];
  for (;;) {
    const r = await slowIt.next();
    assert.ok(!r.done);
    seen.push({ seq: r.value.seq, missed: r.value.missed });
    if (r.value.seq === N) break;
  }
  const totalMissed = seen.reduce((a, s) => a + s.missed, 0);
  assert.equal(seen.length + totalMissed, N, 'delivered + missed accounts for every sample');
  assert.ok(totalMissed > 0);
  for (let i = 1; i < seen.length; i++) assert.equal(seen[i]!.seq, seen[i - 1]!.seq + 1 + seen[i]!.missed);
  assert.equal(slow.counters.violations, 0);
  pub.close();
  fast.close();
  slow.close();
});

test('samples are read-only views: no write route in the API; copies and validity', { timeout: 10000 }, async () => {
  const l = link(2, '16K');
  const pub = new Publisher(l.join(0));
  const sub = new Subscriber(l.join(1));
  await sub.ready();
  const failures = listenerErrors(sub);
  let sample: Sample | null = null;
  let copy: Buffer | null = null;
  sub.on('sample', (s) => {
    sample = s;
    copy = s.toBuffer();
    assert.equal(s.readUInt32LE(0), 0x11223344);
    assert.equal(s.readUInt8(4), 0x55);
  });
  const data = Buffer.from([0x44, 0x33, 0x22, 0x11, 0x55, 0x66]);
  pub.tryPublish(data);
  await until(() => sample !== null, 'sample');
  assert.deepEqual(failures, []);
  assert.deepEqual(copy, data);
  const s = sample as unknown as Sample;
  // No method or property of a Sample returns the underlying mapping.
  const proto = Object.getOwnPropertyNames(Sample.prototype);
  for (const name of ['set', 'write', 'fill', 'buffer', 'subarray', 'bytesView']) assert.ok(!proto.includes(name), name);
  for (const v of Object.values(s)) assert.ok(!(v instanceof Uint8Array), 'no public typed array');
  sub.removeAllListeners('sample');
  // Overwrite it: the old in-place sample becomes invalid; reads say so (never throw, never torn bytes).
  for (let i = 0; i < 200; i++) pub.tryPublish(Buffer.alloc(100));
  assert.equal(s.valid, false);
  assert.equal(s.toBuffer(), null);
  assert.equal(s.digest(), null);
  assert.equal(s.readUInt8(0), -1);
  assert.equal(s.readUInt32LE(0), -1);
  assert.equal(s.copyTo(Buffer.alloc(6)), -1);
  // Reading outside the sample is the caller's mistake, and says so.
  assert.throws(() => s.readUInt8(6), /outside sample of 6 bytes/);
  pub.close();
  sub.close();
});

test('history: a late subscriber gets the last N retained samples', { timeout: 10000 }, async () => {
  const l = link(2, '64K');
  const pub = new Publisher(l.join(0));
  for (let i = 0; i < 20; i++) pub.tryPublish(Buffer.from(`s${i}`));
  const sub = new Subscriber(l.join(1), { history: 5 });
  const got: string[] = [];
  sub.on('sample', (s) => got.push(s.toBuffer()!.toString()));
  await sub.ready();
  await until(() => got.length === 5, 'history');
  assert.deepEqual(got, ['s15', 's16', 's17', 's18', 's19']);
  pub.tryPublish(Buffer.from('live'));
  await until(() => got.length === 6, 'live');
  pub.close();
  sub.close();
});

test('publisher restart: subscriber sees publisher-down/up and continues with the new session', { timeout: 10000 }, async () => {
  const l = link(2, '16K');
  let ep0 = l.join(0);
  let pub = new Publisher(ep0);
  const sub = new Subscriber(l.join(1), { mode: 'poll' });
  const got: string[] = [];
  sub.on('sample', (s) => got.push(s.toBuffer()!.toString()));
  await sub.ready();
  pub.tryPublish(Buffer.from('one'));
  await until(() => got.length === 1, 'one');
  const down = new Promise<{ lastSeq: number }>((r) => sub.once('publisher-down', r));
  ep0.close();
  assert.equal((await down).lastSeq, 1);
  ep0 = l.join(0);
  pub = new Publisher(ep0);
  await until(() => pub.subscribers().length === 1, 're-attached');
  pub.tryPublish(Buffer.from('two'));
  await until(() => got.length === 2, 'two');
  assert.deepEqual(got, ['one', 'two']);
  pub.close();
  sub.close();
});

test('Subscriber.poll() delivers samples synchronously, in place', { timeout: 10000 }, async () => {
  const l = link(2, '16K');
  const pub = new Publisher(l.join(0));
  const sub = new Subscriber(l.join(1));
  await sub.ready();
  await until(() => pub.subscribers().length === 1, 'attached');
  await tick(5);
  const got: string[] = [];
  sub.on('sample', (s) => got.push(s.toBuffer()!.toString()));
  assert.equal(sub.poll(), 0);
  pub.tryPublish(Buffer.from('a'));
  pub.tryPublish(Buffer.from('b'));
  assert.equal(sub.poll(), 2);
  assert.deepEqual(got, ['a', 'b']);
  sub.close();
  assert.equal(sub.poll(), 0);
  pub.close();
});

test('a subscriber lapped before its first read is told how many samples it missed', { timeout: 10000 }, async () => {
  for (const history of [0, 3]) {
    const l = link(2, '16K');
    const pub = new Publisher(l.join(0));
    for (let i = 0; i < 10; i++) pub.tryPublish(Buffer.from(`early ${i}`));
    const sub = new Subscriber(l.join(1), { history });
    await sub.ready();
    // Attached at sequence 11 (history 0) or 8 (the last 3 retained). Now the
    // publisher laps the 8 KiB ring many times before the subscriber reads anything.
    const firstExpected = history ? 8 : 11;
    for (let i = 0; i < 1000; i++) pub.tryPublish(Buffer.alloc(100, i));
    const got: Array<{ seq: number; missed: number }> = [];
    sub.on('sample', (s) => got.push({ seq: s.seq, missed: s.missed }));
    sub.poll();
    assert.ok(got.length > 0 && got.length < 1000, `history ${history}: delivered ${got.length}`);
    assert.ok(got[0]!.seq > firstExpected + 500, 'the first sample delivered is one of the last ones');
    assert.equal(got[0]!.missed, got[0]!.seq - firstExpected, `history ${history}: missed counts every sample from attach to the first read`);
    for (let i = 1; i < got.length; i++) assert.equal(got[i]!.seq, got[i - 1]!.seq + 1 + got[i]!.missed);
    assert.equal(got.at(-1)!.seq, 1010);
    assert.equal(sub.counters.missed, got.reduce((a, s) => a + s.missed, 0));
    assert.equal(sub.counters.missed + got.length, 1010 - firstExpected + 1, 'delivered + missed = published since attach');
    pub.close();
    sub.close();
  }
});

test('an overwritten in-place sample says so: reads return -1, copies null; nothing throws', { timeout: 10000 }, async () => {
  const l = link(2, '16K');
  const pub = new Publisher(l.join(0));
  const sub = new Subscriber(l.join(1));
  await sub.ready();
  const kept: Sample[] = [];
  sub.on('sample', (s) => kept.push(s));
  const data = Buffer.alloc(1000);
  for (let i = 0; i < 3; i++) {
    data.writeUInt32LE(i + 1, 0);
    pub.tryPublish(data);
  }
  sub.poll();
  assert.equal(kept.length, 3);
  assert.deepEqual(kept.map((s) => s.readUInt32LE(0)), [1, 2, 3], 'intact while retained');
  // The publisher laps the ring: the samples the listener kept are gone.
  for (let i = 0; i < 40; i++) pub.tryPublish(data);
  for (const s of kept) {
    assert.equal(s.valid, false);
    assert.equal(s.readUInt8(0), -1);
    assert.equal(s.readUInt32LE(0), -1);
    assert.equal(s.copyTo(Buffer.alloc(10)), -1);
    assert.equal(s.toBuffer(), null);
    assert.equal(s.digest(), null);
  }
  // The publisher leaving voids them too (its mapping may be gone).
  sub.poll();
  const last = kept.at(-1)!;
  assert.equal(last.valid, true);
  pub.close();
  l.endpoints.get(0)!.close();
  await until(() => !sub.isConnected, 'publisher-down');
  assert.equal(last.valid, false);
  assert.equal(last.readUInt8(0), -1);
  sub.close();
});

test('a throwing listener is reported as an error event or a warning, never rethrown; delivery goes on', { timeout: 10000 }, async () => {
  const l = link(2, '16K');
  const pub = new Publisher(l.join(0));
  const sub = new Subscriber(l.join(1));
  await sub.ready();
  const uncaught: unknown[] = [];
  const onUncaught = (e: unknown) => uncaught.push(e);
  process.on('uncaughtException', onUncaught);
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);
  try {
    let calls = 0;
    sub.on('sample', () => {
      calls++;
      throw new TypeError(`listener bug ${calls}`);
    });
    // Without an 'error' listener: a process warning.
    pub.tryPublish(Buffer.from('a'));
    pub.tryPublish(Buffer.from('b'));
    assert.equal(sub.poll(), 2, 'the second sample is delivered although the first listener call threw');
    await tick(5);
    assert.equal(sub.counters.listenerErrors, 2);
    assert.deepEqual(warnings.map((w) => w.message), ['listener bug 1', 'listener bug 2']);
    // With one: the 'error' event gets the listener's own exception.
    const errors: unknown[] = [];
    sub.on('error', (e) => errors.push(e));
    pub.tryPublish(Buffer.from('c'));
    sub.poll();
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof TypeError && errors[0].message === 'listener bug 3');
    // An async listener's rejection is caught the same way.
    sub.removeAllListeners('sample');
    sub.on('sample', async () => {
      throw new RangeError('async bug');
    });
    pub.tryPublish(Buffer.from('d'));
    sub.poll();
    await until(() => errors.length === 2, 'async rejection reported');
    assert.ok(errors[1] instanceof RangeError);
    await tick(5);
    assert.equal(uncaught.length, 0, `rethrown: ${String(uncaught[0])}`);
    assert.equal(sub.counters.listenerErrors, 4);
    assert.equal(sub.counters.received, 4);
  } finally {
    process.off('uncaughtException', onUncaught);
    process.off('warning', onWarning);
    pub.close();
    sub.close();
  }
});
