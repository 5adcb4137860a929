import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closeFd, eventfdCreate, eventfdDrain, eventfdSignal, receiveMessage, sendMessage, unixSocketPair, watchReadable } from '../../src/sys/index.js';

test('SCM_RIGHTS: fds travel with their message, one message per packet', async () => {
  const [a, b] = unixSocketPair('seqpacket');
  const ev = eventfdCreate();
  assert.equal(sendMessage(a, Buffer.from('one'), [ev, ev]), 0);
  assert.equal(sendMessage(a, Buffer.from('two')), 0);
  const r1 = receiveMessage(b);
  const r2 = receiveMessage(b);
  assert.equal(r1.kind, 'message');
  assert.equal(r2.kind, 'message');
  if (r1.kind !== 'message' || r2.kind !== 'message') return;
  assert.equal(r1.data.toString(), 'one');
  assert.equal(r1.fds.length, 2);
  assert.equal(r2.data.toString(), 'two');
  assert.equal(r2.fds.length, 0);
  // The received fd is the same eventfd: a signal through it is seen on the original.
  const got = new Promise<number>((resolve) => {
    const w = watchReadable(ev, () => {
      w.close();
      resolve(eventfdDrain(ev));
    });
  });
  eventfdSignal(r1.fds[0]!);
  eventfdSignal(r1.fds[1]!);
  assert.equal(await got, 2);
  assert.equal(receiveMessage(b).kind, 'again');
  closeFd(a);
  assert.equal(receiveMessage(b).kind, 'eof');
  for (const f of [b, ev, ...r1.fds]) closeFd(f);
});

test('eventfd: counts coalesce, drain resets, empty drain is 0', () => {
  const ev = eventfdCreate();
  assert.equal(eventfdDrain(ev), 0);
  for (let i = 0; i < 5; i++) assert.ok(eventfdSignal(ev));
  assert.equal(eventfdDrain(ev), 5);
  assert.equal(eventfdDrain(ev), 0);
  closeFd(ev);
  assert.equal(eventfdSignal(ev), false, 'a closed fd is reported, not thrown');
});
