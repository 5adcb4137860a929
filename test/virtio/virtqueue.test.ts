// Driver and device halves of a split virtqueue: honest traffic (property
// tests of indices and free lists), event-index suppression, and every
// validation rule of anchors.md §1.6/§1.7 latching `broken`.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { splitRingLayout, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../src/virtio/split-ring.js';
import { VirtqDriver } from '../../src/virtio/driver.js';
import { VirtqDevice } from '../../src/virtio/device.js';
import type { ViolationInfo } from '../../src/virtio/violation.js';

function pair(num: number, o: { inOrder?: boolean; eventIdx?: boolean; singleDescriptor?: boolean } = {}) {
  const l = splitRingLayout(num, 64);
  const mem = new Uint8Array(l.size + 64);
  const seen: ViolationInfo[] = [];
  const common = { num, driverSection: mem, descOffset: l.desc, availOffset: l.avail, deviceSection: mem, usedOffset: l.used, eventIdx: o.eventIdx ?? true };
  const drv = new VirtqDriver({ ...common, inOrder: o.inOrder ?? false, onViolation: (v) => seen.push(v) });
  const dev = new VirtqDevice({ ...common, singleDescriptor: o.singleDescriptor ?? false, onViolation: (v) => seen.push(v) });
  const dv = new DataView(mem.buffer);
  return { l, mem, dv, drv, dev, seen };
}

describe('virtqueue honest traffic', () => {
  test('property: random add/pop/push/getUsed keeps indices, free lists and tokens consistent', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(1, 2, 4, 8, 16),
        fc.array(fc.record({ op: fc.constantFrom('add', 'chain', 'pop', 'push', 'used', 'publish'), n: fc.integer({ min: 1, max: 5 }), pick: fc.nat() }), { maxLength: 300 }),
        (num, ops) => {
          const { drv, dev, seen } = pair(num);
          const held: number[] = []; // heads popped by the device, not yet pushed
          const devicePending: number[] = [];
          let token = 0;
          const posted = new Map<number, number>(); // head -> token
          let inQueue = 0; // descriptors owned by the device side
          for (const { op, n, pick } of ops) {
            if (op === 'add') {
              const h = drv.addBuf(token * 64, 10 + token, 0, token);
              if (h >= 0) {
                posted.set(h, token++);
                inQueue++;
              } else assert.equal(drv.numFree, 0);
            } else if (op === 'chain') {
              const segs = Array.from({ length: Math.min(n, num) }, (_, k) => ({ addr: k * 100, len: 10, write: k > 0 }));
              const free = drv.numFree;
              const h = drv.addChain(segs, token);
              if (h >= 0) {
                posted.set(h, token++);
                inQueue += segs.length;
              } else assert.ok(free < segs.length);
            } else if (op === 'publish') drv.publish();
            else if (op === 'pop') {
              const h = dev.pop();
              if (h >= 0) {
                held.push(h);
                devicePending.push(h);
              }
            } else if (op === 'push' && held.length > 0) {
              const h = held.splice(pick % held.length, 1)[0]!;
              dev.push(h, 1);
              dev.publishUsed();
            } else if (op === 'used') {
              const h = drv.getUsed();
              if (h >= 0) {
                assert.equal(drv.usedToken, posted.get(h));
                posted.delete(h);
              }
            }
            assert.ok(drv.numFree >= 0 && drv.numFree <= num);
            assert.equal(drv.outstanding, posted.size);
            assert.ok(inQueue >= posted.size);
          }
          // Drain everything: all descriptors come back.
          drv.publish();
          for (let h = dev.pop(); h >= 0; h = dev.pop()) held.push(h);
          for (const h of held) dev.push(h, 0);
          dev.publishUsed();
          while (drv.getUsed() >= 0);
          assert.equal(drv.numFree, num);
          assert.equal(drv.outstanding, 0);
          assert.equal(seen.length, 0, JSON.stringify(seen));
          assert.equal(drv.broken, null);
          assert.equal(dev.broken, null);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('property: indices stay consistent across many 16-bit wraps', () => {
    fc.assert(
      fc.property(fc.constantFrom(2, 4, 32), fc.array(fc.integer({ min: 1, max: 32 }), { minLength: 1, maxLength: 40 }), (num, bursts) => {
        const { drv, dev, seen } = pair(num, { inOrder: true });
        let sent = 0;
        let got = 0;
        let popped = 0;
        for (let round = 0; round < 200; round++) {
          for (const b of bursts) {
            for (let k = 0; k < b; k++) if (drv.addBuf(sent, 1, 0, sent) >= 0) sent++;
            drv.publish();
            for (let h = dev.pop(); h >= 0; h = dev.pop()) {
              assert.equal(dev.chainAddr[0], popped++);
              dev.push(h, 1);
            }
            dev.publishUsed();
            for (let h = drv.getUsed(); h >= 0; h = drv.getUsed()) assert.equal(drv.usedToken, got++);
          }
        }
        assert.equal(sent, got);
        assert.equal(seen.length, 0);
      }),
      { numRuns: 20 },
    );
  });

  test('chains: device sees the segments in order with snapshots of addr/len/flags', () => {
    const { drv, dev } = pair(8);
    const h = drv.addChain([
      { addr: 0x1000, len: 100 },
      { addr: 0x2000, len: 200, write: true },
      { addr: 0x3000, len: 300, write: true },
    ]);
    drv.publish();
    assert.equal(dev.pop(), h);
    assert.equal(dev.chainCount, 3);
    assert.deepEqual([...dev.chainAddr.subarray(0, 3)], [0x1000, 0x2000, 0x3000]);
    assert.deepEqual([...dev.chainLen.subarray(0, 3)], [100, 200, 300]);
    assert.deepEqual([...dev.chainFlags.subarray(0, 3)], [VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_WRITE]);
    assert.equal(dev.chainBytes, 600);
    assert.equal(drv.numFree, 5);
    dev.push(h, 500);
    dev.publishUsed();
    assert.equal(drv.getUsed(), h);
    assert.equal(drv.usedLen, 500);
    assert.equal(drv.numFree, 8);
  });

  test('addresses above 2^32 round-trip', () => {
    const { drv, dev } = pair(4);
    drv.addBuf(2 ** 40 + 12345, 7);
    drv.publish();
    assert.ok(dev.pop() >= 0);
    assert.equal(dev.chainAddr[0], 2 ** 40 + 12345);
  });
});

describe('VIRTIO_F_EVENT_IDX notification suppression', () => {
  test('driver rings only when avail_event is crossed; the first publication after reset rings', () => {
    const { drv, dev } = pair(16);
    drv.addBuf(0, 1);
    drv.publish();
    assert.equal(drv.needsNotify(), true, 'avail_event 0: first buffer rings');
    drv.addBuf(0, 1);
    drv.publish();
    assert.equal(drv.needsNotify(), false, 'device did not re-arm');
    assert.ok(dev.pop() >= 0);
    assert.ok(dev.pop() >= 0);
    assert.equal(dev.enableNotify(), false);
    assert.equal(dev.availEventValue, 2);
    drv.addBuf(0, 1);
    drv.publish();
    assert.equal(drv.needsNotify(), true);
  });
  test('device interrupts the driver only past used_event', () => {
    const { drv, dev } = pair(16);
    for (let k = 0; k < 4; k++) drv.addBuf(0, 1);
    drv.publish();
    const heads = [dev.pop(), dev.pop(), dev.pop(), dev.pop()];
    // used_event = 0 initially: the first completion interrupts.
    dev.push(heads[0]!, 1);
    dev.publishUsed();
    assert.equal(dev.needsNotify(), true);
    dev.push(heads[1]!, 1);
    dev.publishUsed();
    assert.equal(dev.needsNotify(), false);
    // Driver consumes and re-arms: used_event = 2.
    drv.getUsed();
    drv.getUsed();
    assert.equal(drv.enableCallback(), false);
    assert.equal(drv.usedEvent, 2);
    dev.push(heads[2]!, 1);
    dev.push(heads[3]!, 1);
    dev.publishUsed();
    assert.equal(dev.needsNotify(), true);
  });
  test('enable* report a pending entry that raced the re-arm', () => {
    const { drv, dev } = pair(8);
    drv.addBuf(0, 1);
    drv.publish();
    assert.equal(dev.enableNotify(), true);
  });
  test('without EVENT_IDX the NO_NOTIFY / NO_INTERRUPT flags are honoured', () => {
    const { drv, dev } = pair(8, { eventIdx: false });
    dev.disableNotify();
    drv.addBuf(0, 1);
    drv.publish();
    assert.equal(drv.needsNotify(), false);
    dev.enableNotify();
    drv.addBuf(0, 1);
    drv.publish();
    assert.equal(drv.needsNotify(), true);
    drv.disableCallback();
    const h = dev.pop();
    dev.push(h, 1);
    dev.publishUsed();
    assert.equal(dev.needsNotify(), false);
  });
});

describe('hostile device: the driver validates every used element', () => {
  const usedElem = (p: ReturnType<typeof pair>, slot: number, id: number, len: number) => {
    p.dv.setUint32(p.l.usedRing + 8 * slot, id, true);
    p.dv.setUint32(p.l.usedRing + 8 * slot + 4, len, true);
  };
  const setUsedIdx = (p: ReturnType<typeof pair>, v: number) => p.dv.setUint16(p.l.usedIdx, v, true);

  test('used id >= N -> used-id-range, latched', () => {
    const p = pair(8);
    p.drv.addBuf(0, 1);
    p.drv.publish();
    usedElem(p, 0, 8, 1);
    setUsedIdx(p, 1);
    assert.equal(p.drv.getUsed(), -1);
    assert.equal(p.drv.broken, 'used-id-range');
    assert.equal(p.drv.violations['used-id-range'], 1);
    assert.equal(p.drv.addBuf(0, 1), -1, 'a broken queue refuses new buffers');
    assert.equal(p.seen.length, 1);
  });
  test('completion of a never-posted descriptor -> used-id-not-head', () => {
    const p = pair(8);
    p.drv.addBuf(0, 1); // head 0
    usedElem(p, 0, 3, 1);
    setUsedIdx(p, 1);
    assert.equal(p.drv.getUsed(), -1);
    assert.equal(p.drv.broken, 'used-id-not-head');
  });
  test('completion of an already-freed descriptor -> used-id-not-head', () => {
    const p = pair(8);
    const a = p.drv.addBuf(0, 1);
    p.drv.addBuf(0, 1);
    usedElem(p, 0, a, 1);
    usedElem(p, 1, a, 1);
    setUsedIdx(p, 2);
    assert.equal(p.drv.getUsed(), a);
    assert.equal(p.drv.getUsed(), -1);
    assert.equal(p.drv.broken, 'used-id-not-head');
  });
  test('non-head member of a chain -> used-id-not-head', () => {
    const p = pair(8);
    const h = p.drv.addChain([{ addr: 0, len: 1 }, { addr: 0, len: 1 }]);
    usedElem(p, 0, h + 1, 1);
    setUsedIdx(p, 1);
    assert.equal(p.drv.getUsed(), -1);
    assert.equal(p.drv.broken, 'used-id-not-head');
  });
  test('used.idx beyond outstanding or backwards -> used-idx-jump', () => {
    for (const idx of [2, 0xffff, 0x8000]) {
      const p = pair(8);
      p.drv.addBuf(0, 1);
      usedElem(p, 0, 0, 1);
      setUsedIdx(p, idx);
      assert.equal(p.drv.getUsed(), -1);
      assert.equal(p.drv.broken, 'used-idx-jump');
    }
  });
  test('in-order queue: out-of-order completion -> used-out-of-order', () => {
    const p = pair(8, { inOrder: true });
    p.drv.addBuf(0, 1);
    const b = p.drv.addBuf(0, 1);
    usedElem(p, 0, b, 1);
    setUsedIdx(p, 1);
    assert.equal(p.drv.getUsed(), -1);
    assert.equal(p.drv.broken, 'used-out-of-order');
  });
  test('without inOrder, out-of-order completion is fine and frees the right chain', () => {
    const p = pair(8);
    const a = p.drv.addBuf(0, 1, 0, 'a');
    const b = p.drv.addBuf(0, 1, 0, 'b');
    usedElem(p, 0, b, 1);
    usedElem(p, 1, a, 1);
    setUsedIdx(p, 2);
    assert.equal(p.drv.getUsed(), b);
    assert.equal(p.drv.usedToken, 'b');
    assert.equal(p.drv.getUsed(), a);
    assert.equal(p.drv.usedToken, 'a');
    assert.equal(p.drv.numFree, 8);
  });
  test('the shadow, not the shared descriptor table, decides what is freed', () => {
    const p = pair(8);
    const h = p.drv.addChain([{ addr: 0, len: 1 }, { addr: 0, len: 1 }, { addr: 0, len: 1 }]);
    const b = p.drv.addBuf(0, 1, 0, 'b'); // still outstanding below
    // A device rewriting every shared `next` link (in a shared RW section) to
    // point at b: a driver following them would free b while the device holds it.
    for (let i = 0; i < 8; i++) p.dv.setUint16(p.l.desc + 16 * i + 14, b, true);
    usedElem(p, 0, h, 1);
    setUsedIdx(p, 1);
    assert.equal(p.drv.getUsed(), h);
    assert.equal(p.drv.numFree, 7);
    assert.equal(p.drv.broken, null);
    // Every free descriptor is handed out exactly once, and never b.
    const heads = Array.from({ length: 7 }, () => p.drv.addBuf(0, 1));
    assert.deepEqual(
      [...heads].sort((x, y) => x - y),
      [0, 1, 2, 3, 4, 5, 6, 7].filter((i) => i !== b),
    );
    assert.equal(p.drv.addBuf(0, 1), -1, 'the queue is full');
    // b completes as b.
    usedElem(p, 1, b, 1);
    setUsedIdx(p, 2);
    assert.equal(p.drv.getUsed(), b);
    assert.equal(p.drv.usedToken, 'b');
  });
  test('garbage in the whole shared descriptor table does not change the free list', () => {
    const p = pair(8);
    const h = p.drv.addChain([{ addr: 0, len: 1 }, { addr: 0, len: 1 }, { addr: 0, len: 1 }]);
    p.mem.fill(0xff, p.l.desc, p.l.desc + 16 * 8);
    usedElem(p, 0, h, 1);
    setUsedIdx(p, 1);
    assert.equal(p.drv.getUsed(), h);
    assert.equal(p.drv.numFree, 8);
    assert.equal(p.drv.broken, null);
    const heads = Array.from({ length: 8 }, () => p.drv.addBuf(0, 1));
    assert.deepEqual([...heads].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7]);
  });
  test('reset() recovers a broken queue', () => {
    const p = pair(8);
    p.drv.addBuf(0, 1);
    usedElem(p, 0, 9, 1);
    setUsedIdx(p, 1);
    p.drv.getUsed();
    assert.ok(p.drv.broken);
    p.drv.reset();
    p.dev.reset();
    assert.equal(p.drv.broken, null);
    assert.ok(p.drv.addBuf(0, 1) >= 0);
  });
});

describe('hostile driver: the device validates every avail entry and descriptor', () => {
  const setAvailIdx = (p: ReturnType<typeof pair>, v: number) => p.dv.setUint16(p.l.availIdx, v, true);
  const setAvailRing = (p: ReturnType<typeof pair>, slot: number, head: number) => p.dv.setUint16(p.l.availRing + 2 * slot, head, true);
  const setDesc = (p: ReturnType<typeof pair>, i: number, addr: bigint, len: number, flags: number, next: number) => {
    p.dv.setBigUint64(p.l.desc + 16 * i, addr, true);
    p.dv.setUint32(p.l.desc + 16 * i + 8, len, true);
    p.dv.setUint16(p.l.desc + 16 * i + 12, flags, true);
    p.dv.setUint16(p.l.desc + 16 * i + 14, next, true);
  };
  const cases: [string, (p: ReturnType<typeof pair>) => void, string, object?][] = [
    ['avail.idx far ahead', (p) => setAvailIdx(p, 9), 'avail-idx-jump'],
    ['avail.idx backwards', (p) => setAvailIdx(p, 0xffff), 'avail-idx-jump'],
    ['head >= N', (p) => (setAvailRing(p, 0, 8), setAvailIdx(p, 1)), 'avail-head-range'],
    ['next >= N', (p) => (setDesc(p, 0, 0n, 1, VIRTQ_DESC_F_NEXT, 8), setAvailIdx(p, 1)), 'desc-next-range'],
    ['chain loop', (p) => (setDesc(p, 0, 0n, 1, VIRTQ_DESC_F_NEXT, 1), setDesc(p, 1, 0n, 1, VIRTQ_DESC_F_NEXT, 0), setAvailIdx(p, 1)), 'desc-chain-loop'],
    ['self loop', (p) => (setDesc(p, 0, 0n, 1, VIRTQ_DESC_F_NEXT, 0), setAvailIdx(p, 1)), 'desc-chain-loop'],
    ['indirect', (p) => (setDesc(p, 0, 0n, 16, VIRTQ_DESC_F_INDIRECT, 0), setAvailIdx(p, 1)), 'desc-indirect'],
    ['readable after writable', (p) => (setDesc(p, 0, 0n, 1, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1), setDesc(p, 1, 0n, 1, 0, 0), setAvailIdx(p, 1)), 'desc-write-order'],
    ['chain over 2^32 bytes', (p) => (setDesc(p, 0, 0n, 0xffffffff, VIRTQ_DESC_F_NEXT, 1), setDesc(p, 1, 0n, 2, 0, 0), setAvailIdx(p, 1)), 'desc-chain-len'],
    ['flags on a single-descriptor queue', (p) => (setDesc(p, 0, 0n, 1, VIRTQ_DESC_F_WRITE, 0), setAvailIdx(p, 1)), 'desc-flags', { singleDescriptor: true }],
  ];
  for (const [name, act, reason, opts] of cases) {
    test(`${name} -> ${reason}, latched, nothing returned`, () => {
      const p = pair(8, opts);
      act(p);
      assert.equal(p.dev.pop(), -1);
      assert.equal(p.dev.broken, reason);
      assert.equal(p.dev.violations[reason], 1);
      assert.equal(p.seen.length, 1);
      assert.equal(p.seen[0]!.reason, reason);
      assert.equal(p.dev.pop(), -1, 'stays broken');
      assert.equal(p.seen.length, 1, 'counted once');
    });
  }
  test('a head made available again while the device holds it -> avail-head-in-flight', () => {
    const p = pair(8);
    setDesc(p, 0, 0n, 1, 0, 0);
    setAvailRing(p, 0, 0);
    setAvailRing(p, 1, 0);
    setAvailIdx(p, 2);
    assert.equal(p.dev.pop(), 0);
    assert.equal(p.dev.pop(), -1);
    assert.equal(p.dev.broken, 'avail-head-in-flight');
  });
  test('random scribbles never throw and never yield an unvalidated chain', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 600, maxLength: 600 }), (junk) => {
        const p = pair(8);
        p.mem.set(junk.subarray(0, p.l.used)); // driver areas only
        for (let k = 0; k < 20; k++) {
          const h = p.dev.pop();
          if (h < 0) break;
          assert.ok(h < 8);
          assert.ok(p.dev.chainCount >= 1 && p.dev.chainCount <= 8);
          p.dev.push(h, 0);
        }
      }),
      { numRuns: 500 },
    );
  });
});
