// The receive-side register semantics every backend shares (docs/spec.md §1):
// the BAR0 registers, INT_CONTROL bit 0, one-shot mode, doorbells that reach
// exactly their target, state-change detection, bounded reads of output
// sections. Run in one process over LocalLink; broker.test.ts runs the same
// rules across processes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError, RefusedError } from '../../src/errors.js';
import type { InterruptEvent } from '../../src/ivshmem/endpoint.js';
import {
  IVSHM_REG_DOORBELL,
  IVSHM_REG_ID,
  IVSHM_REG_INT_CONTROL,
  IVSHM_REG_MAX_PEERS,
  IVSHM_REG_REGION_SIZE,
  IVSHM_REG_STATE,
} from '../../src/ivshmem/endpoint-base.js';
import { LocalLink, type LocalEndpoint } from '../../src/ivshmem/local-link.js';
import { turns } from '../fixtures/net-util.js';

function trio(vectors = 2) {
  const link = new LocalLink({ name: 'regs', peers: 3, outputSize: '4K', vectors });
  const eps = [link.join(0), link.join(1), link.join(2)] as const;
  const got: [InterruptEvent[], InterruptEvent[], InterruptEvent[]] = [[], [], []];
  eps.forEach((ep, k) => ep.on('interrupt', (e) => got[k]!.push(e)));
  return { link, eps, got };
}

const doorbell = (peer: number, vector: number) => ((peer << 16) | vector) >>> 0;

describe('BAR0 registers', () => {
  test('ID, MAX_PEERS, INT_CONTROL and STATE read back; DOORBELL and unbacked offsets read 0', () => {
    const { eps } = trio();
    const d = eps[1];
    assert.equal(d.readRegister(IVSHM_REG_ID), 1);
    assert.equal(d.readRegister(IVSHM_REG_MAX_PEERS), 3);
    assert.equal(d.readRegister(IVSHM_REG_INT_CONTROL), 1, 'connect() enables interrupts');
    assert.equal(d.readRegister(IVSHM_REG_STATE), 0);
    d.setState(0xdeadbeef);
    assert.equal(d.readRegister(IVSHM_REG_STATE), 0xdeadbeef);
    assert.equal(d.readRegister(IVSHM_REG_DOORBELL), 0);
    assert.equal(d.readRegister(0x14), 0);
    assert.equal(d.readRegister(IVSHM_REG_REGION_SIZE - 4), 0);
  });

  test('writes to read-only and unbacked registers are ignored; STATE writes go to the table', () => {
    const { link, eps } = trio();
    const d = eps[2];
    d.writeRegister(IVSHM_REG_ID, 7);
    d.writeRegister(IVSHM_REG_MAX_PEERS, 9);
    d.writeRegister(0x40, 0xffffffff);
    assert.equal(d.readRegister(IVSHM_REG_ID), 2);
    assert.equal(d.readRegister(IVSHM_REG_MAX_PEERS), 3);
    assert.equal(d.readRegister(0x40), 0);
    d.writeRegister(IVSHM_REG_STATE, -1); // a 32-bit register: -1 is 0xFFFFFFFF
    assert.equal(link.table[2], 0xffffffff);
    assert.deepEqual(eps[0].stateTable(), [0, 0, 0xffffffff]);
  });

  test('an offset that is unaligned, negative, fractional or past the 4 KiB region is an InvalidArgumentError', () => {
    const { eps } = trio();
    for (const off of [2, 3, -4, 0.5, IVSHM_REG_REGION_SIZE, IVSHM_REG_REGION_SIZE + 4, Number.NaN]) {
      assert.throws(() => eps[0].readRegister(off), (e: Error) => e instanceof InvalidArgumentError && /aligned 32-bit offset/.test(e.message), `read ${off}`);
      assert.throws(() => eps[0].writeRegister(off, 1), InvalidArgumentError, `write ${off}`);
    }
  });
});

describe('INT_CONTROL and one-shot', () => {
  test('only bit 0 of INT_CONTROL counts: 2 masks, 3 enables', async () => {
    const { eps, got } = trio(1);
    const d = eps[1];
    d.writeRegister(IVSHM_REG_INT_CONTROL, 2);
    assert.equal(d.readRegister(IVSHM_REG_INT_CONTROL), 0);
    assert.equal(d.intControl, false);
    eps[0].ring(1, 0);
    await turns();
    assert.deepEqual(got[1], [], 'masked: nothing delivered');
    assert.equal(d.counters.suppressed, 1);
    d.writeRegister(IVSHM_REG_INT_CONTROL, 0xfffffffe);
    assert.equal(d.readRegister(IVSHM_REG_INT_CONTROL), 0);
    d.writeRegister(IVSHM_REG_INT_CONTROL, 3);
    assert.equal(d.readRegister(IVSHM_REG_INT_CONTROL), 1);
    await turns();
    assert.deepEqual(got[1], [], 'enabling does not replay what was suppressed');
    eps[0].ring(1, 0);
    await turns();
    assert.deepEqual(got[1], [{ vector: 0, from: 0, count: 1 }]);
    assert.deepEqual(d.counters.interrupts, [1]);
  });

  test('one-shot: each delivery clears INT_CONTROL; later doorbells are suppressed until it is set again', async () => {
    const { eps, got } = trio(2);
    const d = eps[1];
    d.oneShot = true;
    eps[0].ring(1, 1);
    await turns();
    assert.equal(got[1].length, 1);
    assert.equal(d.readRegister(IVSHM_REG_INT_CONTROL), 0);
    eps[0].ring(1, 1);
    await turns();
    assert.equal(got[1].length, 1);
    assert.equal(d.counters.suppressed, 1);
    d.writeRegister(IVSHM_REG_INT_CONTROL, 1);
    eps[2].ring(1, 0);
    await turns();
    assert.deepEqual(got[1].at(-1), { vector: 0, from: 2, count: 1 });
    assert.deepEqual(d.counters.interrupts, [1, 1]);
  });
});

describe('doorbells reach exactly their target', () => {
  test('a doorbell register write rings (peer << 16 | vector); out of range vectors and absent peers are dropped, from any sender', async () => {
    const { link, eps, got } = trio(2);
    eps[2].close(); // peer 2 is absent from now on
    for (const from of [eps[0], eps[1]]) {
      assert.equal(from.ring(2, 0), false, `peer ${from.id} -> absent peer 2`);
      assert.equal(from.ring(7, 0), false, `peer ${from.id} -> peer 7 beyond MAX_PEERS`);
      assert.equal(from.ring(from.id === 0 ? 1 : 0, 2), false, 'vector 2 of 2');
      assert.equal(from.ring(from.id === 0 ? 1 : 0, -1), false, 'negative vector');
      from.writeRegister(IVSHM_REG_DOORBELL, doorbell(2, 0));
    }
    await turns();
    assert.deepEqual(got[0], [], 'nothing reached peer 0');
    assert.deepEqual(got[1], [], 'nothing reached peer 1');
    assert.equal(eps[0].counters.doorbellsDropped, 5);
    assert.equal(eps[1].counters.doorbellsDropped, 5);
    assert.equal(eps[0].counters.doorbellsSent + eps[1].counters.doorbellsSent, 0);

    eps[1].writeRegister(IVSHM_REG_DOORBELL, doorbell(0, 1));
    eps[0].writeRegister(IVSHM_REG_DOORBELL, doorbell(0, 0)); // to self
    await turns();
    assert.deepEqual(got[0], [
      { vector: 1, from: 1, count: 1 },
      { vector: 0, from: 0, count: 1 },
    ]);
    assert.deepEqual(got[1], []);
    assert.equal(link.endpoints.size, 2);
  });

  test('doorbells of one sender on one vector coalesce, as an eventfd counts', async () => {
    const { eps, got } = trio(1);
    for (let i = 0; i < 3; i++) eps[0].ring(1, 0);
    eps[2].ring(1, 0);
    await turns();
    assert.deepEqual(got[1], [
      { vector: 0, from: 0, count: 3 },
      { vector: 0, from: 2, count: 1 },
    ]);
  });
});

describe('state changes', () => {
  test("a vector-0 interrupt reports every other peer's changed entry once, never the own one", async () => {
    const { eps } = trio(2);
    type Change = { peer: number; value: number; previous: number };
    const seen: [Change[], Change[], Change[]] = [[], [], []];
    eps.forEach((ep, k) => ep.on('state', (e) => seen[k]!.push(e)));
    eps[1].setState(5);
    eps[2].setState(7);
    await turns();
    assert.deepEqual(seen[0], [
      { peer: 1, value: 5, previous: 0 },
      { peer: 2, value: 7, previous: 0 },
    ]);
    assert.deepEqual(seen[1], [{ peer: 2, value: 7, previous: 0 }]);
    eps[2].setState(7); // unchanged: no interrupt, no event
    eps[2].close();
    await turns();
    assert.deepEqual(seen[0].at(-1), { peer: 2, value: 0, previous: 7 }, 'leaving is a change to 0');
    assert.equal(seen[0].length, 3);
    assert.equal(eps[1].counters.stateWrites, 1);
  });

  test('a state value must be a 32-bit unsigned integer', () => {
    const { eps } = trio();
    for (const v of [-1, 2 ** 32, 1.5, Number.NaN]) assert.throws(() => eps[0].setState(v), InvalidArgumentError, String(v));
    eps[0].setState(2 ** 32 - 1);
    assert.equal(eps[0].state, 2 ** 32 - 1);
  });
});

describe('reading output sections', () => {
  test('readOutput copies exactly the range, up to the last byte, and refuses one byte more', () => {
    const { link, eps } = trio();
    const size = link.params.outputSize;
    eps[1].output.fill(0xab);
    eps[1].output.write('END!', size - 4);
    const copy = eps[0].readOutput(1, size - 4, 4);
    assert.equal(copy.toString(), 'END!');
    eps[1].output.write('XXXX', size - 4);
    assert.equal(copy.toString(), 'END!', 'a copy, not a view');
    assert.equal(eps[0].readOutput(1, size, 0).length, 0);
    assert.equal(eps[0].readOutput(1, 0, size).length, size);
    for (const [off, len] of [
      [size - 3, 4],
      [size + 1, 0],
      [0, size + 1],
      [-1, 1],
      [0, -1],
      [0.5, 1],
    ] as const) {
      assert.throws(() => eps[0].readOutput(1, off, len), (e: Error) => e instanceof InvalidArgumentError && /outside the 4096-byte section/.test(e.message), `${off}+${len}`);
    }
  });

  test('a peer out of range is an InvalidArgumentError, an absent one a RefusedError', () => {
    const { eps } = trio();
    const d: LocalEndpoint = eps[0];
    eps[2].close();
    assert.throws(() => d.readOutput(3, 0, 1), (e: Error) => e instanceof InvalidArgumentError && /peer 3 is out of range 0\.\.2/.test(e.message));
    assert.throws(() => d.readOutput(-1, 0, 1), InvalidArgumentError);
    assert.throws(() => d.readOutput(2, 0, 1), (e: Error) => e instanceof RefusedError && /peer 2 is not on link regs/.test(e.message));
  });
});
