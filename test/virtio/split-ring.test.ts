// Split ring layout and vring_need_event (anchors.md §1.7).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { splitRingAreas, splitRingLayout, vringNeedEvent, vringSize } from '../../src/virtio/split-ring.js';
import { InvalidArgumentError } from '../../src/errors.js';

describe('split ring layout', () => {
  test('field offsets of the legacy packing (N=32, align 64)', () => {
    const l = splitRingLayout(32, 64);
    assert.deepEqual(
      [l.desc, l.avail, l.availIdx, l.availRing, l.usedEvent, l.used, l.usedIdx, l.usedRing, l.availEvent],
      [0, 0x200, 0x202, 0x204, 0x244, 0x280, 0x282, 0x284, 0x384],
    );
    assert.equal(l.size, 0x386);
    assert.equal(vringSize(32, 64), 0x386);
  });
  test('vring_size matches the spec formula', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 15 }), fc.constantFrom(4, 16, 64, 4096), (k, align) => {
        const n = 1 << k;
        const expect = Math.ceil((16 * n + 2 * (3 + n)) / align) * align + 6 + 8 * n;
        assert.equal(vringSize(n, align), expect);
        assert.equal(splitRingLayout(n, align).size, expect);
      }),
    );
  });
  test('queue size must be a power of 2 <= 32768; areas aligned', () => {
    for (const n of [0, 3, 100, 65536]) assert.throws(() => splitRingLayout(n, 64), InvalidArgumentError);
    assert.throws(() => splitRingAreas(8, 8, 0x100, 0x200), InvalidArgumentError);
    assert.throws(() => splitRingAreas(8, 0, 0x101, 0x200), InvalidArgumentError);
    assert.throws(() => splitRingAreas(8, 0, 0x100, 0x202), InvalidArgumentError);
  });
});

describe('vring_need_event', () => {
  test('true iff the event index lies in [old, new) modulo 2^16 (the entry at event_idx was published)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0x7fff }), (evt, old, step) => {
        const nw = (old + step) & 0xffff;
        let inRange = false;
        for (let k = 0; k < step; k++) if (((old + k) & 0xffff) === evt) inRange = true;
        assert.equal(vringNeedEvent(evt, nw, old), inRange);
      }),
      { numRuns: 2000 },
    );
  });
  test('edges: first publication after reset rings; no progress never rings', () => {
    assert.equal(vringNeedEvent(0, 1, 0), true);
    assert.equal(vringNeedEvent(5, 5, 5), false);
    assert.equal(vringNeedEvent(0xffff, 0, 0xfffe), true); // wrap
    assert.equal(vringNeedEvent(0, 0xffff, 0xfffe), false);
    assert.equal(vringNeedEvent(0xfffe, 0, 0xfffe), true);
  });
});
