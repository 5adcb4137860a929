// ivshmem-net queue pair scenarios g.15-g.19, g.24-g.26 of
// ivshmem-v2-notes.md, on two plain sections (as Zephyr's queue test does),
// plus FIFO property tests across wrap.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ivshmNetFrameSize, ivshmNetSizing } from '../../src/net/sizing.js';
import { IvshmNetQueue } from '../../src/net/queue.js';
import type { ViolationInfo } from '../../src/virtio/violation.js';

function queues(L = 0x1000, mtu = 576) {
  const s = ivshmNetSizing(L);
  const A = Buffer.alloc(L);
  const B = Buffer.alloc(L);
  const qa = new IvshmNetQueue(s, A, mtu);
  const qb = new IvshmNetQueue(s, B, mtu);
  const va: ViolationInfo[] = [];
  const vb: ViolationInfo[] = [];
  qa.onViolation = (v) => va.push(v);
  qb.onViolation = (v) => vb.push(v);
  qa.format();
  qb.format();
  qa.attach(B);
  qb.attach(A);
  const send = (q: IvshmNetQueue, f: Uint8Array) => {
    const ok = q.enqueue(f);
    if (ok) q.publish();
    return ok;
  };
  const recv = (q: IvshmNetQueue, budget = 1000) => {
    const out: Buffer[] = [];
    q.receive(budget, out);
    return out;
  };
  return { s, A, B, qa, qb, va, vb, send, recv, dvA: new DataView(A.buffer, A.byteOffset, L) };
}

const frame = (len: number, fill = 0x42) => Buffer.alloc(len, fill);

describe('ivshmem-net queue (Zephyr queue test scenarios)', () => {
  test('g.15 single packet one way, then both directions at once', () => {
    const t = queues();
    const x = frame(42, 1);
    assert.ok(t.send(t.qa, x));
    const got = t.recv(t.qb);
    assert.equal(got.length, 1);
    assert.ok(got[0]!.equals(x));
    const ab = frame(60, 2);
    const ba = frame(70, 3);
    assert.ok(t.send(t.qa, ab));
    assert.ok(t.send(t.qb, ba));
    assert.ok(t.recv(t.qb)[0]!.equals(ab));
    assert.ok(t.recv(t.qa)[0]!.equals(ba));
    assert.equal(t.qa.reclaim(), 2);
    assert.equal(t.qb.reclaim(), 1);
    assert.equal(t.va.length + t.vb.length, 0);
  });

  test('g.16 empty queue: RX would block, nothing to reclaim, queries and refusals consume nothing', () => {
    const t = queues();
    assert.equal(t.recv(t.qa).length, 0);
    assert.equal(t.qa.rxPending(), 0);
    assert.equal(t.qa.reclaim(), 0);
    const before = JSON.stringify(t.qa.regs());
    for (let i = 0; i < 100; i++) {
      t.qa.txSpace();
      t.qa.txOk();
    }
    assert.equal(JSON.stringify(t.qa.regs()), before);
    // A refused enqueue (1 KiB frames: the third does not fit) leaves the state as it was.
    assert.ok(t.qa.enqueue(frame(1024)));
    assert.ok(t.qa.enqueue(frame(1024)));
    const full = JSON.stringify(t.qa.regs());
    for (let i = 0; i < 100; i++) assert.equal(t.qa.enqueue(frame(1024)), false);
    assert.equal(JSON.stringify(t.qa.regs()), full);
  });

  test('g.17 descriptor exhaustion: exactly N frames accepted, N+1 refused; 3 completions admit exactly 3 more', () => {
    const t = queues();
    assert.equal(t.s.num, 32);
    for (let i = 0; i < 32; i++) assert.ok(t.send(t.qa, frame(14, i)), `frame ${i}`);
    assert.equal(t.send(t.qa, frame(14)), false);
    const got = t.recv(t.qb, 3);
    assert.deepEqual(got.map((f) => f[0]), [0, 1, 2]);
    assert.equal(t.qa.reclaim(), 3);
    for (let i = 0; i < 3; i++) assert.ok(t.send(t.qa, frame(14)));
    assert.equal(t.send(t.qa, frame(14)), false);
  });

  test('g.18 data exhaustion with 1 KiB frames and wrap: one completion frees exactly one slot', () => {
    const t = queues(0x1000, 1500); // Zephyr's test sends 1 KiB frames through a 4 KiB section
    const big = frame(1024);
    const fits = Math.floor(t.s.dataSize / ivshmNetFrameSize(1024));
    assert.equal(fits, 2);
    for (let i = 0; i < fits; i++) assert.ok(t.send(t.qa, big));
    assert.equal(t.send(t.qa, big), false);
    assert.equal(t.recv(t.qb, 1).length, 1);
    assert.equal(t.qa.reclaim(), 1);
    assert.ok(t.send(t.qa, big), 'one more after one completion (wraps to 0)');
    assert.equal(t.send(t.qa, big), false);
    // Drain all: the FIFO is empty again and everything arrived intact.
    assert.equal(t.recv(t.qb).length, 2);
    assert.equal(t.qa.reclaim(), 2);
    assert.equal(t.qa.used, 0);
  });

  test('g.19 wrap rule: a frame that does not fit before the end starts at 0, the skipped tail is accounted', () => {
    const t = queues(0x1000, 1500);
    const Q = t.s.dataSize; // 2304
    assert.ok(t.send(t.qa, frame(1024))); // slot 1088 at 0
    assert.ok(t.send(t.qa, frame(1024))); // slot 1088 at 1088 -> head 2176, 128 left
    assert.equal(t.qa.head, 2176);
    t.recv(t.qb, 1);
    t.qa.reclaim(); // tail 1088, used 1088
    assert.ok(t.send(t.qa, frame(100))); // slot 128 fits exactly at 2176
    assert.equal(t.qa.head, Q);
    t.recv(t.qb, 1);
    t.qa.reclaim(); // tail 2176
    assert.ok(t.send(t.qa, frame(200))); // slot 256: 0 bytes left at the end -> wraps to 0
    const head = t.dvA.getUint16(t.s.ring.availRing + 2 * 3, true); // 4th publication
    const desc = t.dvA.getBigUint64(16 * head, true);
    assert.equal(Number(desc), t.s.dataOffset, 'descriptor points at data offset 0');
    assert.equal(t.qa.used, 128 + 256);
    t.recv(t.qb);
    assert.equal(t.qa.reclaim(), 2);
    assert.equal(t.qa.used, 0);
    assert.equal(t.qa.head, 0, 'an empty FIFO starts over at 0');
    assert.equal(t.qa.tail, 0);
  });

  test('property: FIFO space accounting across wrap never loses, duplicates or overlaps frames', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ len: fc.integer({ min: 14, max: 594 }), rx: fc.integer({ min: 0, max: 4 }) }), { minLength: 1, maxLength: 400 }),
        (steps) => {
          const t = queues(0x1000, 576);
          const inFlight: Buffer[] = [];
          let seq = 0;
          for (const { len, rx } of steps) {
            const f = Buffer.alloc(len, seq & 0xff);
            f.writeUInt32LE(seq, 0);
            const space = t.qa.txSpace();
            const ok = t.send(t.qa, f);
            if (ok) {
              inFlight.push(f);
              seq++;
            } else assert.ok(t.qa.txFreeDescriptors === 0 || ivshmNetFrameSize(len) > space || t.qa.used + ivshmNetFrameSize(len) > t.s.dataSize);
            for (const g of t.recv(t.qb, rx)) assert.ok(g.equals(inFlight.shift()!), 'in order and intact');
            t.qa.reclaim();
            assert.ok(t.qa.used >= 0 && t.qa.used <= t.s.dataSize);
            assert.ok(t.qa.txFreeDescriptors + inFlight.length <= t.s.num);
          }
          for (const g of t.recv(t.qb)) assert.ok(g.equals(inFlight.shift()!));
          t.qa.reclaim();
          assert.equal(inFlight.length, 0);
          assert.equal(t.qa.used, 0);
          assert.equal(t.qa.txFreeDescriptors, t.s.num);
          assert.equal(t.va.length + t.vb.length, 0);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('headroom with a large MTU', () => {
  test('an empty FIFO never blocks: MTU Q/4 on a 4 KiB section keeps flowing', () => {
    const t = queues(0x1000, 576); // 2 x slot(576) = 1280 > Q/2 = 1152
    for (let round = 0; round < 50; round++) {
      const len = 14 + ((round * 97) % 580);
      assert.ok(t.qa.txOk(), `round ${round}: headroom with nothing in flight (${JSON.stringify(t.qa.regs())})`);
      assert.ok(t.send(t.qa, frame(len)));
      assert.equal(t.recv(t.qb).length, 1);
      assert.equal(t.qa.reclaim(), 1);
    }
  });
});

describe('g.24 bad RX descriptors are rejected without out-of-bounds reads', () => {
  // The peer (A) publishes a hand-made descriptor 0 in its own section.
  function publish(t: ReturnType<typeof queues>, addr: bigint, len: number, flags = 0, head = 0) {
    t.dvA.setBigUint64(16 * (head & 31), addr, true);
    t.dvA.setUint32(16 * (head & 31) + 8, len, true);
    t.dvA.setUint16(16 * (head & 31) + 12, flags, true);
    t.dvA.setUint16(t.s.ring.availRing, head, true);
    t.dvA.setUint16(t.s.ring.availIdx, 1, true);
  }
  const H = 0x700;
  const L = 0x1000;
  const cases: [string, (t: ReturnType<typeof queues>) => void, string][] = [
    ['descriptor index >= N', (t) => publish(t, BigInt(H), 60, 0, 32), 'avail-head-range'],
    ['flags != 0', (t) => publish(t, BigInt(H), 60, 1), 'desc-flags'],
    ['WRITE flag', (t) => publish(t, BigInt(H), 60, 2), 'desc-flags'],
    ['offset = L', (t) => publish(t, BigInt(L), 60), 'rx-desc-addr'],
    ['offset far past the section (2^63)', (t) => publish(t, 1n << 63n, 60), 'rx-desc-addr'],
    ['offset inside the ring header (< H)', (t) => publish(t, 0x100n, 60), 'rx-desc-addr'],
    ['offset one byte before the data area (H - 1)', (t) => publish(t, BigInt(H - 1), 60), 'rx-desc-addr'],
    ['length one byte past the end of the section', (t) => publish(t, BigInt(L - 64), 65), 'rx-desc-len'],
    ['last byte one past the end (offset L - 13, length 14)', (t) => publish(t, BigInt(L - 13), 14), 'rx-desc-len'],
    ['length overflowing 32 bits', (t) => publish(t, BigInt(H), 0xffffffff), 'rx-desc-len'],
    ['length 0', (t) => publish(t, BigInt(H), 0), 'rx-frame-short'],
    ['length 13 (< 14)', (t) => publish(t, BigInt(H), 13), 'rx-frame-short'],
    ['length MTU + 19', (t) => publish(t, BigInt(H), 576 + 19), 'rx-frame-long'],
    ['avail.idx far ahead', (t) => t.dvA.setUint16(t.s.ring.availIdx, 500, true), 'avail-idx-jump'],
    ['avail.idx backwards', (t) => t.dvA.setUint16(t.s.ring.availIdx, 0xfff0, true), 'avail-idx-jump'],
  ];
  for (const [name, act, reason] of cases) {
    test(`${name} -> ${reason}`, () => {
      const t = queues();
      act(t);
      assert.equal(t.recv(t.qb).length, 0, 'nothing delivered');
      assert.equal(t.vb.length, 1);
      assert.equal(t.vb[0]!.reason, reason);
      assert.equal(t.qb.broken, reason);
      assert.equal(t.qb.violations[reason], 1);
      // Latched: further traffic is ignored until re-format (the endpoint renegotiates).
      assert.equal(t.recv(t.qb).length, 0);
      assert.equal(t.vb.length, 1);
      t.qb.format();
      t.qa.format();
      t.qb.attach(t.A);
      t.qa.attach(t.B);
      assert.ok(t.send(t.qa, frame(60)));
      assert.equal(t.recv(t.qb).length, 1, 'works again after re-formatting');
    });
  }
  test('largest legal frame at the very end of the section is accepted', () => {
    const t = queues();
    publish(t, BigInt(L - 594), 594);
    assert.equal(t.recv(t.qb).length, 1);
    assert.equal(t.vb.length, 0);
  });
  test('a frame at the first byte of the data area is accepted', () => {
    const t = queues();
    assert.equal(t.s.dataOffset, H);
    publish(t, BigInt(H), 60);
    assert.equal(t.recv(t.qb).length, 1);
    assert.equal(t.vb.length, 0);
  });
});

describe('g.25 bad TX completions are rejected without corrupting the free list', () => {
  // The peer (B) writes its used ring (in its own section) by hand.
  function complete(t: ReturnType<typeof queues>, slot: number, id: number, len: number, idx: number) {
    const dv = new DataView(t.B.buffer, t.B.byteOffset, t.B.byteLength);
    dv.setUint32(t.s.ring.usedRing + 8 * slot, id, true);
    dv.setUint32(t.s.ring.usedRing + 8 * slot + 4, len, true);
    dv.setUint16(t.s.ring.usedIdx, idx, true);
  }
  const cases: [string, (t: ReturnType<typeof queues>) => void, string][] = [
    ['used id >= N', (t) => complete(t, 0, 32, 1, 1), 'used-id-range'],
    ['used len != 1', (t) => complete(t, 0, 0, 60, 1), 'used-len'],
    ['out-of-order completion', (t) => complete(t, 0, 1, 1, 1), 'used-out-of-order'],
    ['completion of a never-published descriptor', (t) => complete(t, 0, 7, 1, 1), 'used-id-not-head'],
    ['completion count exceeding outstanding', (t) => complete(t, 0, 0, 1, 3), 'used-idx-jump'],
    ['used.idx backwards', (t) => complete(t, 0, 0, 1, 0xffff), 'used-idx-jump'],
  ];
  for (const [name, act, reason] of cases) {
    test(`${name} -> ${reason}`, () => {
      const t = queues();
      assert.ok(t.send(t.qa, frame(60)));
      assert.ok(t.send(t.qa, frame(60)));
      const before = t.qa.txFreeDescriptors;
      act(t);
      assert.equal(t.qa.reclaim(), 0);
      assert.equal(t.va.length, 1);
      assert.equal(t.va[0]!.reason, reason);
      assert.equal(t.qa.txFreeDescriptors, before, 'free list untouched');
      assert.equal(t.qa.enqueue(frame(60)), false, 'a broken queue takes no frames');
    });
  }
  test('completion of an already-freed descriptor -> used-id-not-head', () => {
    const t = queues();
    assert.ok(t.send(t.qa, frame(60)));
    assert.ok(t.send(t.qa, frame(60)));
    complete(t, 0, 0, 1, 1);
    assert.equal(t.qa.reclaim(), 1);
    // Descriptor 0 is free again; the peer completes it a second time (and 1 is outstanding).
    complete(t, 1, 0, 1, 2);
    assert.equal(t.qa.reclaim(), 0);
    assert.equal(t.va[0]!.reason, 'used-id-not-head');
    assert.equal(t.qa.txFreeDescriptors, 31);
  });
});

describe('g.26 TOCTOU: the receiver uses its single snapshot', () => {
  test('descriptor rewritten after validation does not change what is copied', () => {
    const t = queues();
    const f = frame(100, 0x11);
    assert.ok(t.send(t.qa, f));
    let calls = 0;
    t.qb.hooks = {
      afterRxSnapshot: (addr, len) => {
        calls++;
        assert.equal(addr, t.s.dataOffset);
        assert.equal(len, 100);
        // The peer now points the descriptor at its ring header with a huge length.
        t.dvA.setBigUint64(0, 0n, true);
        t.dvA.setUint32(8, 0xffffffff, true);
        t.dvA.setUint16(12, 7, true);
      },
    };
    const got = t.recv(t.qb);
    assert.equal(calls, 1);
    assert.equal(got.length, 1);
    assert.equal(got[0]!.byteLength, 100);
    assert.ok(got[0]!.equals(f), 'bytes from the validated range');
    assert.equal(t.vb.length, 0);
  });
  test('packet rewritten after delivery: the delivered copy is private', () => {
    const t = queues();
    const f = frame(100, 0x22);
    assert.ok(t.send(t.qa, f));
    const got = t.recv(t.qb);
    t.A.fill(0xee, t.s.dataOffset, t.s.dataOffset + 100);
    assert.ok(got[0]!.equals(f));
    assert.notEqual(got[0]!.buffer, t.A.buffer);
  });
});
