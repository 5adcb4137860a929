// A hostile peer against channels and subscribers (issue 5 item 5): it
// controls every byte of its own output section and its STATE, and uses
// them to lie about everything (header, indices, records, slots). The victim
// must never throw, hang, read out of bounds or deliver a message it did not
// validate; a violation is an event and a counter; when the hostile peer is
// replaced by an honest one, the channel recovers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LocalLink, type LocalEndpoint } from '../../src/ivshmem/local-link.js';
import { Channel, Publisher, Subscriber, IVSHM_PROTO_CHANNEL, type Sample } from '../../src/channel/index.js';
import * as L from '../../src/channel/layout.js';
import { payload, sha, tick } from '../channel/helpers.js';
import { until } from '../helpers/wait.js';

const OUT = 16384;

/** Lay out a plausible channel section in `out` (as a peer would), then let the fuzzer mutate it. */
function craft(out: Buffer, maxPeers: number, role: number, session: number, victim: number, victimSession: number): void {
  const g = L.geometry(out.length, maxPeers);
  const w = new Int32Array(out.buffer, out.byteOffset, out.length >> 2);
  out.fill(0);
  w[L.H_MAGIC] = L.CH_MAGIC | 0;
  w[L.H_VERSION] = L.CH_VERSION;
  w[L.H_SESSION] = session | 0;
  w[L.H_RING_OFFSET] = g.ringOffset;
  w[L.H_RING_SIZE] = g.ringSize;
  w[L.H_ROLE] = role;
  w[L.H_SLOTS] = maxPeers;
  w[L.H_MAX_PAYLOAD] = g.maxPayload;
  w[L.slotIndex(victim, L.S_TX_SESSION)] = victimSession | 0;
  w[L.slotIndex(victim, L.S_TX_START)] = 0;
  w[L.slotIndex(victim, L.S_TX_START_SEQ)] = 1;
  w[L.slotIndex(victim, L.S_RX_SESSION)] = victimSession | 0;
}

/** Write a valid-looking record, which the mutations then damage. */
function record(out: Buffer, pos: number, type: number, seq: number, len: number, maxPeers: number): number {
  const g = L.geometry(out.length, maxPeers);
  const off = g.ringOffset + (pos & (g.ringSize - 1));
  if (off + 16 + len > g.ringOffset + g.ringSize) return pos;
  out.writeUInt32LE(len, off);
  out.writeUInt32LE(type, off + 4);
  out.writeUInt32LE(seq >>> 0, off + 8);
  out.writeUInt32LE(type === L.REC_REQUEST || type === L.REC_RESPONSE ? 7 : 0, off + 12);
  return pos + L.recordSize(len);
}

const mutation = fc.oneof(
  // A random u32 at a random aligned offset of the header/slot page.
  fc.record({ kind: fc.constant('word' as const), index: fc.integer({ min: 0, max: 1023 }), value: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) }),
  // A targeted field with an interesting value.
  fc.record({
    kind: fc.constant('field' as const),
    field: fc.constantFrom('tail', 'head', 'rxHead', 'rxSeq', 'txStart', 'txStartSeq', 'txSession', 'rxArmed', 'wakeAt', 'ringSize', 'ringOffset', 'session'),
    value: fc.oneof(fc.constantFrom(0, 1, 15, 16, 4096, 8192, 0x7fffffff, -1, -16, 2 ** 31 - 16), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
  }),
  // Random bytes in the ring.
  fc.record({ kind: fc.constant('ring' as const), at: fc.integer({ min: 0, max: 8191 }), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  // A record with a chosen type, sequence and length, then the tail moved past it.
  fc.record({
    kind: fc.constant('record' as const),
    type: fc.integer({ min: 0, max: 7 }),
    seqDelta: fc.integer({ min: -2, max: 2 }),
    len: fc.oneof(fc.integer({ min: 0, max: 200 }), fc.constantFrom(4080, 4081, 8192, 0xffffffff)),
  }),
  // STATE games.
  fc.record({ kind: fc.constant('state' as const), value: fc.integer({ min: 0, max: 0xffffffff }) }),
  // An overwrite-mode lap as a publisher does it (head moved to a new record),
  // with an honest sequence jump or a lie (backwards).
  fc.record({ kind: fc.constant('lap' as const), seqDelta: fc.integer({ min: -3, max: 40 }), len: fc.integer({ min: 0, max: 200 }) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function apply(m: Mutation, ep: LocalEndpoint, out: Buffer, victim: number, ctx: { pos: number; seq: number }): void {
  const w = new Int32Array(out.buffer, out.byteOffset, out.length >> 2);
  const field: Record<string, number> = {
    tail: L.H_TAIL,
    head: L.H_HEAD,
    rxHead: L.slotIndex(victim, L.S_RX_HEAD),
    rxSeq: L.slotIndex(victim, L.S_RX_SEQ),
    txStart: L.slotIndex(victim, L.S_TX_START),
    txStartSeq: L.slotIndex(victim, L.S_TX_START_SEQ),
    txSession: L.slotIndex(victim, L.S_TX_SESSION),
    rxArmed: L.slotIndex(victim, L.S_RX_ARMED),
    wakeAt: L.slotIndex(victim, L.S_RX_WAKE_AT),
    ringSize: L.H_RING_SIZE,
    ringOffset: L.H_RING_OFFSET,
    session: L.H_SESSION,
  };
  switch (m.kind) {
    case 'word':
      w[m.index] = m.value;
      break;
    case 'field':
      w[field[m.field]!] = m.value;
      break;
    case 'ring':
      out.set(m.bytes.subarray(0, Math.max(0, out.length - 4096 - m.at)), 4096 + m.at);
      break;
    case 'record': {
      const len = m.len > 4096 ? m.len : m.len;
      ctx.seq += 1 + m.seqDelta;
      const end = record(out, ctx.pos, m.type, ctx.seq, Math.min(len, 8000), ep.maxPeers);
      if (len > 8000) out.writeUInt32LE(len >>> 0, 4096 + (ctx.pos & 8191));
      ctx.pos = end;
      Atomics.store(w, L.H_TAIL, end | 0);
      break;
    }
    case 'state':
      ep.setState(m.value);
      break;
    case 'lap': {
      // A record the reader never sees, then the head moved past it to the next one.
      ctx.pos = record(out, ctx.pos, L.REC_SAMPLE, ++ctx.seq, m.len, ep.maxPeers);
      const start = ctx.pos;
      ctx.seq += 1 + m.seqDelta;
      ctx.pos = record(out, ctx.pos, L.REC_SAMPLE, ctx.seq, m.len, ep.maxPeers);
      Atomics.store(w, L.H_HEAD, start | 0);
      Atomics.store(w, L.H_TAIL, ctx.pos | 0);
      break;
    }
  }
}

test('hostile peer vs channel: never a throw or a hang; violations are counted; an honest peer recovers the channel', { timeout: 120000 }, async (t) => {
  const totals = { runs: 0, violations: 0, delivered: 0, reasons: new Set<string>() };
  const errors: unknown[] = [];
  const onErr = (e: unknown) => errors.push(e);
  process.on('uncaughtException', onErr);
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 40 }), fc.constantFrom('event', 'poll', 'hybrid'), async (muts, mode) => {
        const link = new LocalLink({ peers: 2, outputSize: OUT, vectors: 2, protocol: IVSHM_PROTO_CHANNEL });
        const vep = link.join(0);
        const victim = new Channel(vep, { mode: mode as 'event' });
        // A failed assertion in a listener is reported as 'error' (never rethrown): collect it.
        victim.on('error', onErr);
        const seen: number[] = [];
        victim.on('message', (m) => {
          // Whatever is delivered was validated: sane length, consecutive sequence numbers.
          assert.ok(m.data.length <= victim.maxMessageSize);
          if (seen.length) assert.equal(m.seq, (seen.at(-1)! + 1) >>> 0);
          seen.push(m.seq);
          if (m.isRequest) void m.respond(Buffer.from('ok')).catch(() => {});
        });
        // Sequence numbers restart with each peer session.
        victim.on('peer-up', () => (seen.length = 0));
        let violations = 0;
        victim.on('violation', (e) => {
          violations++;
          totals.reasons.add(e.reason);
        });
        await tick(0);
        const hep = link.join(1);
        const out = link.outputs.get(1)!;
        const session = 0x1234500;
        await tick(0);
        const vsession = new Int32Array(vep.output.buffer, vep.output.byteOffset, 64)[L.H_SESSION]! >>> 0;
        craft(out, 2, L.CH_ROLE_CHANNEL, session, 0, vsession);
        hep.setState(session | L.CH_STATE_READY);
        // The victim keeps sending (its sends may wait forever on a lying peer: that is its own channel stalling).
        const sends = Array.from({ length: 20 }, (_, i) => victim.send(payload(1, i, 300)).catch(() => 0));
        const ctx = { pos: 0, seq: 0 };
        for (const m of muts) {
          apply(m, hep, out, 0, ctx);
          if (m.kind === 'state' || Math.random() < 0.3) hep.ring(0, 1);
          await new Promise((r) => setImmediate(r));
        }
        await tick(2);
        assert.equal(victim.counters.violations, violations);
        assert.equal(errors.length, 0, `uncaught: ${String(errors[0])}`);
        totals.runs++;
        totals.violations += violations;
        totals.delivered += victim.counters.received;
        // Recovery: the hostile peer leaves, an honest one takes its place.
        hep.close();
        const honest = new Channel(link.join(1));
        const got: string[] = [];
        honest.on('message', (m) => got.push(sha(m.data)));
        await Promise.race([Promise.all([victim.ready(), honest.ready()]), tick(5000).then(() => assert.fail('no re-attach after the hostile peer left'))]);
        assert.equal(victim.broken, null);
        await victim.send(Buffer.from('after'));
        await honest.send(Buffer.from('back'));
        await until(() => got.at(-1) === sha(Buffer.from('after')), 'victim -> honest after recovery');
        void sends;
        victim.close();
        honest.close();
        assert.equal(errors.length, 0, `uncaught: ${String(errors[0])}`);
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 150), seed: process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined },
    );
    t.diagnostic(`${totals.runs} runs: ${totals.violations} violations latched (${[...totals.reasons].sort().join(', ')}), ${totals.delivered} forged messages passed validation`);
    assert.ok(totals.violations > 0, 'the fuzzer must provoke violations');
  } catch (e) {
    // Show the failing property's own error, not only the counterexample.
    const cause = (e as { cause?: unknown }).cause;
    throw new Error(`${(e as Error).message}\ncause: ${cause instanceof Error ? cause.stack : String(cause)}`);
  } finally {
    process.off('uncaughtException', onErr);
  }
});

test('hostile publisher vs subscribers: never a throw; lies about head/tail/records are violations or gaps, never bad data', { timeout: 120000 }, async (t) => {
  const totals = { samples: 0, gaps: 0 };
  const errors: unknown[] = [];
  const onErr = (e: unknown) => errors.push(e);
  process.on('uncaughtException', onErr);
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 40 }), async (muts) => {
        const link = new LocalLink({ peers: 2, outputSize: OUT, vectors: 2, protocol: IVSHM_PROTO_CHANNEL });
        const hep = link.join(0);
        const out = link.outputs.get(0)!;
        const session = 0x5432100;
        craft(out, 2, L.CH_ROLE_PUBLISHER, session, 1, 0);
        hep.setState(session | L.CH_STATE_READY);
        const sub = new Subscriber(link.join(1), { publisher: 0, history: 3 });
        sub.on('error', onErr);
        const maxPayload = L.geometry(OUT, 2).maxPayload;
        // Sequence numbers restart with each publisher session.
        let last = 0;
        sub.on('publisher-up', () => (last = 0));
        let kept: Sample | null = null;
        /** Every read of a sample, in place or kept past its listener: a value in range, or the overwritten answer (-1 / null). */
        const readAll = (s: Sample, n: number) => {
          const b = s.readUInt8(n - 1);
          assert.ok(b === -1 || (b >= 0 && b <= 255), `readUInt8 ${b}`);
          if (n >= 4) {
            const u = s.readUInt32LE(n - 4);
            assert.ok(u === -1 || (Number.isInteger(u) && u >= 0 && u <= 0xffffffff), `readUInt32LE ${u}`);
          }
          const c = s.copyTo(Buffer.alloc(n));
          assert.ok(c === -1 || c === n, `copyTo ${c}`);
          const t = s.toBuffer();
          assert.ok(t === null || t.length === n);
          const d = s.digest();
          assert.ok(d === null || d.length === 64);
          if (t && d && s.valid) assert.equal(d, sha(t), 'a digest and a copy of an intact sample agree');
        };
        sub.on('sample', (s) => {
          totals.samples++;
          if (s.missed) totals.gaps++;
          assert.ok(s.byteLength <= maxPayload, `sample of ${s.byteLength} bytes`);
          // Within a session: increasing, and the gap is exactly what missed says.
          if (last !== 0) {
            assert.ok(s.missed < 2 ** 31, `sample ${s.seq} after ${last}: missed ${s.missed} means the sequence went backwards`);
            assert.equal(s.seq, (last + 1 + s.missed) >>> 0, `sample ${s.seq} after ${last} with missed ${s.missed}`);
          }
          last = s.seq;
          if (s.byteLength > 0) readAll(s, s.byteLength);
          if (kept && kept.byteLength > 0) readAll(kept, kept.byteLength);
          kept = s;
        });
        await tick(0);
        const ctx = { pos: 0, seq: 0 };
        for (const m of muts) {
          apply(m.kind === 'record' ? { ...m, type: m.type % 2 ? L.REC_SAMPLE : m.type } : m, hep, out, 1, ctx);
          hep.ring(1, 1);
          await new Promise((r) => setImmediate(r));
        }
        await tick(2);
        assert.equal(errors.length, 0, `uncaught: ${String(errors[0])}`);
        // Recovery: an honest publisher replaces it.
        hep.close();
        const pub = new Publisher(link.join(0));
        await until(() => pub.subscribers().includes(1), 'subscriber re-attached', 5000);
        const got: string[] = [];
        sub.on('sample', (s) => got.push(s.toBuffer()!.toString()));
        pub.tryPublish(Buffer.from('honest'));
        await until(() => got.includes('honest'), 'honest sample');
        pub.close();
        sub.close();
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 150), seed: process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined },
    );
    t.diagnostic(`${totals.samples} forged samples delivered and read through every read method, ${totals.gaps} after a lap`);
    assert.ok(totals.samples > 0, 'the fuzzer must get samples past validation');
  } catch (e) {
    // Show the failing property's own error, not only the counterexample.
    const cause = (e as { cause?: unknown }).cause;
    throw new Error(`${(e as Error).message}\ncause: ${cause instanceof Error ? cause.stack : String(cause)}`);
  } finally {
    process.off('uncaughtException', onErr);
  }
});
