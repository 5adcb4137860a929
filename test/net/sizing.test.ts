// g.14 sizing table and golden byte layouts (ivshmem-v2-notes.md c.2, c.3).
// The expected bytes are written here with a DataView from the numbers of
// the table (as computed from the Linux/Zephyr formulas), independent of the
// layout code under test.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ivshmNetFrameSize, ivshmNetSizing } from '../../src/net/sizing.js';
import { IvshmNetQueue } from '../../src/net/queue.js';
import { ConfigError } from '../../src/errors.js';

const TABLE = [
  // L, N, H, Q, avail, used_event, used, avail_event, default MTU, max MTU
  { L: 0x1000, N: 32, H: 0x700, Q: 2304, avail: 0x200, usedEvent: 0x244, used: 0x280, availEvent: 0x384, mtu: 144, maxMtu: 576 },
  { L: 0x7f000, N: 2048, H: 0xd080, Q: 466816, avail: 0x8000, usedEvent: 0x9004, used: 0x9040, availEvent: 0xd044, mtu: 16384, maxMtu: 65535 },
  { L: 0x100000, N: 4096, H: 0x1a080, Q: 941952, avail: 0x10000, usedEvent: 0x12004, used: 0x12040, availEvent: 0x1a044, mtu: 16384, maxMtu: 65535 },
];

/** Expected bytes of a freshly formatted section: zero, desc[i].next = i + 1 for i < N - 1. */
function expectedFormatted(L: number, N: number): Buffer {
  const b = Buffer.alloc(L);
  for (let i = 0; i < N - 1; i++) b.writeUInt16LE(i + 1, 16 * i + 14);
  return b;
}

describe('g.14 ivshmem-net sizing and golden layouts', () => {
  for (const t of TABLE) {
    test(`output section 0x${t.L.toString(16)} -> ${t.N} entries, data at 0x${t.H.toString(16)}, ${t.Q} data bytes`, () => {
      const s = ivshmNetSizing(t.L);
      assert.equal(s.num, t.N);
      assert.equal(s.dataOffset, t.H);
      assert.equal(s.dataSize, t.Q);
      assert.equal(s.ring.desc, 0);
      assert.equal(s.ring.avail, t.avail);
      assert.equal(s.ring.usedEvent, t.usedEvent);
      assert.equal(s.ring.used, t.used);
      assert.equal(s.ring.availEvent, t.availEvent);
      assert.equal(s.defaultMtu, t.mtu);
      assert.equal(s.maxMtu, t.maxMtu);
      assert.equal(s.minMtu, 68);
    });

    test(`golden bytes 0x${t.L.toString(16)}: formatted section, one frame each way, completion`, () => {
      const s = ivshmNetSizing(t.L);
      const A = Buffer.alloc(t.L);
      const B = Buffer.alloc(t.L);
      const qa = new IvshmNetQueue(s, A, Math.min(t.mtu, 1500));
      const qb = new IvshmNetQueue(s, B, Math.min(t.mtu, 1500));
      A.fill(0xaa);
      qa.format();
      qb.format();
      assert.ok(A.equals(expectedFormatted(t.L, t.N)), 'formatted section');
      qa.attach(B);
      qb.attach(A);
      const frame = Buffer.alloc(60, 0x5c);
      frame.writeUInt32LE(0xdeadbeef, 0);
      assert.equal(qa.enqueue(frame), true);
      qa.publish();
      assert.equal(qa.txNeedsNotify(), true, 'first frame after reset rings');
      // Sender's section: desc[0] = {addr H, len 60, flags 0, next 1}, avail.idx 1, ring[0] 0, frame at H.
      const expA = expectedFormatted(t.L, t.N);
      expA.writeBigUInt64LE(BigInt(t.H), 0);
      expA.writeUInt32LE(60, 8);
      expA.writeUInt16LE(0, 12);
      expA.writeUInt16LE(1, 14);
      expA.writeUInt16LE(1, t.avail + 2);
      expA.writeUInt16LE(0, t.avail + 4);
      frame.copy(expA, t.H);
      assert.ok(A.equals(expA), 'sender section after one TX');
      // Receiver: used ring in its own section gets {id 0, len 1}, used.idx 1; avail_event after re-arm = 1.
      const got: Buffer[] = [];
      assert.equal(qb.receive(64, got), 1);
      assert.ok(got[0]!.equals(frame));
      assert.equal(qb.rxNeedsNotify(), true, "used_event 0 is crossed by the first completion");
      assert.equal(qb.enableRxNotify(), false);
      const expB = expectedFormatted(t.L, t.N);
      expB.writeUInt16LE(1, t.used + 2);
      expB.writeUInt32LE(0, t.used + 4);
      expB.writeUInt32LE(1, t.used + 8);
      expB.writeUInt16LE(1, t.availEvent);
      assert.ok(B.equals(expB), 'receiver section after completion');
      // Sender reclaims; asking for a completion interrupt writes used_event = 1.
      assert.equal(qa.reclaim(), 1);
      assert.equal(qa.requestTxInterrupt(), false);
      expA.writeUInt16LE(1, t.usedEvent);
      assert.ok(A.equals(expA), 'sender section after reclaim + used_event');
    });
  }

  test('the 32-entry quirk: sections too small for 64 entries keep the 64-entry header', () => {
    for (const L of [0x1000, 0x2000, 0x3000]) {
      const s = ivshmNetSizing(L);
      assert.equal(s.num, 32);
      assert.equal(s.dataOffset, 1792);
    }
    // 0x4000: 64 entries fit (1792 < 2048).
    assert.equal(ivshmNetSizing(0x4000).num, 64);
  });
  test('sections too small are refused with a ConfigError', () => {
    assert.throws(() => ivshmNetSizing(0), ConfigError);
    assert.throws(() => ivshmNetSizing(1024), /cannot hold/);
    assert.throws(() => ivshmNetSizing(1792 + 100), /fewer than 4 minimum frames/);
  });
  test('frame slot = round_up(18 + len, 64)', () => {
    assert.equal(ivshmNetFrameSize(14), 64);
    assert.equal(ivshmNetFrameSize(46), 64);
    assert.equal(ivshmNetFrameSize(47), 128);
    assert.equal(ivshmNetFrameSize(1514), 1536);
    assert.equal(ivshmNetFrameSize(16402), 16448);
  });
});
