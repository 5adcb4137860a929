// Application code moves between a native ivshm link and QEMU v1 (issue 7,
// "behaves the same where the semantics overlap"): the same scenario, written
// against IvshmemEndpoint only, runs over a Broker + connect() and over a
// QemuServer + connectQemu(). It keeps to the overlap: each peer writes in
// its own output at an offset of its own, reads the other's with readOutput,
// rings per vector, honours INT_CONTROL and one-shot, and sees the other leave.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { Broker } from '../../../src/ivshmem/broker.js';
import { connect } from '../../../src/ivshmem/device.js';
import type { IvshmemEndpoint } from '../../../src/ivshmem/endpoint.js';
import type { EndpointBase } from '../../../src/ivshmem/endpoint-base.js';
import { connectQemu } from '../../../src/ivshmem/qemu/client.js';
import { QemuServer } from '../../../src/ivshmem/qemu/server.js';
import { tmpSocket } from '../../helpers/peer-proc.js';
import { until } from '../../helpers/wait.js';

type Irq = { vector: number; from: number; count: number };
const SLOT = 256;

/** The portable scenario: only IvshmemEndpoint members, no backend checks. */
async function scenario(a: IvshmemEndpoint, b: IvshmemEndpoint): Promise<void> {
  await until(() => a.peers().includes(b.id) && b.peers().includes(a.id), 'both peers see each other');
  assert.notEqual(a.id, b.id);
  assert.equal(a.vectors, 2);
  assert.equal(b.vectors, 2);

  // Memory: each writes at an offset derived from its ID, the other reads it.
  a.output.write(`hello from ${a.id}`, (a.id % 8) * SLOT);
  b.output.write(`hello from ${b.id}`, (b.id % 8) * SLOT);
  assert.equal(b.readOutput(a.id, (a.id % 8) * SLOT, 12).toString(), `hello from ${a.id}`.slice(0, 12));
  assert.equal(a.readOutput(b.id, (b.id % 8) * SLOT, 12).toString(), `hello from ${b.id}`.slice(0, 12));

  // Doorbells per vector.
  for (const v of [1, 0]) {
    const irq = once(b, 'interrupt');
    assert.equal(a.ring(b.id, v), true);
    assert.equal(((await irq) as [Irq])[0].vector, v);
  }
  assert.equal(a.ring(b.id, 2), false, 'vector out of range is dropped');

  // INT_CONTROL 0 drops; one-shot re-disables after one delivery.
  b.intControl = false;
  let seen = 0;
  const count = () => seen++;
  b.on('interrupt', count);
  a.ring(b.id, 1);
  // Both backends extend EndpointBase, which counts suppressed interrupts.
  const counters = (b as unknown as EndpointBase).counters;
  await until(() => counters.suppressed === 1, 'the doorbell was consumed while INT_CONTROL was 0');
  b.intControl = true;
  b.oneShot = true;
  const irq = once(b, 'interrupt');
  a.ring(b.id, 1);
  await irq;
  assert.equal(b.intControl, false);
  assert.equal(seen, 1, 'the suppressed doorbell was not replayed');
  b.off('interrupt', count);
  b.oneShot = false;
  b.intControl = true;

  // Leaving.
  const gone = once(a, 'peer-gone');
  const bid = b.id;
  b.close();
  assert.equal(((await gone) as [{ peer: number }])[0].peer, bid);
  assert.equal(a.ring(bid, 0), false, 'a departed peer cannot be rung');
  assert.equal(a.peers().includes(bid), false);
}

test('the same application code runs over a native ivshm link', { timeout: 30000 }, async () => {
  const socket = tmpSocket('conf-native');
  const broker = new Broker({ socket, peers: 8, outputSize: '4K', vectors: 2 });
  await broker.start();
  try {
    const a = await connect({ socket });
    const b = await connect({ socket });
    await scenario(a, b);
    a.close();
  } finally {
    await broker.stop();
  }
});

test('the same application code runs over QEMU ivshmem v1', { timeout: 30000 }, async () => {
  const socket = tmpSocket('conf-qemu');
  const server = new QemuServer({ socket, size: '4K', vectors: 2 });
  await server.start();
  try {
    const a = await connectQemu({ socket, vectors: 2 });
    const b = await connectQemu({ socket, vectors: 2 });
    await scenario(a, b);
    a.close();
  } finally {
    await server.stop();
  }
});
