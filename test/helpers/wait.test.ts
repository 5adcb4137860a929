// The waiting helper itself: it returns the condition's value, and its
// failures name what was awaited and the last observed state.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { until, Waker, WaitTimeout } from './wait.js';

test('until returns the first truthy value of the condition, sync or async', async () => {
  let n = 0;
  assert.equal(await until(() => ++n >= 3 && n, 'three probes'), 3);
  assert.deepEqual(await until(async () => ({ ok: true }), 'an object'), { ok: true });
});

test('the watchdog names what was awaited and the last observed state', async () => {
  let seen = 0;
  await assert.rejects(until(() => false, 'the moon', { timeoutMs: 30, state: () => ({ seen: ++seen }) }), (err: Error) => {
    assert.ok(err instanceof WaitTimeout);
    assert.match(err.message, /^watchdog: the moon not reached within 30 ms; last state: \{"seen":1\}$/);
    return true;
  });
  await assert.rejects(until(() => 0, 'zero', 10), /watchdog: zero not reached within 10 ms; last state: the condition was 0/);
});

test('a turn-counted watchdog probes exactly that many times', async () => {
  let probes = 0;
  await assert.rejects(until(() => (probes++, false), 'never', { turns: 7 }), /not reached within 7 event-loop turns/);
  assert.equal(probes, 7);
});

test('abort ends the wait at once with its reason; a throwing probe propagates', async () => {
  let probes = 0;
  await assert.rejects(until(() => (probes++, false), 'a line', { abort: () => probes === 2 && 'the process exited' }), /^Error: the process exited \(while waiting for a line; last state: the condition was false\)$/);
  assert.equal(probes, 2);
  await assert.rejects(until(() => { throw new Error('bad probe'); }, 'x'), /bad probe/);
});

test('a waker ends a timer pause early', { timeout: 10_000 }, async () => {
  const waker = new Waker();
  let ready = false;
  // Past the eager turns the pause is a timer; a 60 s pause would outlast the watchdog, so only the wake can end it.
  const p = until(() => ready, 'the wake', { intervalMs: 60_000, timeoutMs: 120_000, waker });
  await new Promise((r) => setTimeout(r, 20));
  ready = true;
  waker.wake();
  assert.equal(await p, true);
});
