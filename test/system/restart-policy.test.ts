// The restart policy (docs/supervisor.md, "Cells"): which exits restart,
// the budget per window, the doubling delay and its cap, a fresh budget.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RestartBudget } from '../../src/system/restart-policy.js';

const cfg = (policy: 'never' | 'on-failure' | 'always', maxRestarts = 5, windowMs = 60_000, delayMs = 100) => ({ policy, maxRestarts, windowMs, delayMs });

test('restart policy: never, on-failure and always', () => {
  assert.deepEqual(new RestartBudget(cfg('never')).decide(true, 0), { restart: false, why: 'policy' });
  const onFailure = new RestartBudget(cfg('on-failure'));
  assert.deepEqual(onFailure.decide(false, 0), { restart: false, why: 'policy' });
  assert.deepEqual(onFailure.decide(true, 0), { restart: true, delayMs: 100 });
  assert.deepEqual(new RestartBudget(cfg('always')).decide(false, 0), { restart: true, delayMs: 100 });
});

test('restart policy: at most maxRestarts within the window, the delay doubling, then a fresh window', () => {
  const b = new RestartBudget(cfg('always', 2, 1000, 100));
  assert.deepEqual(b.decide(true, 0), { restart: true, delayMs: 100 });
  assert.deepEqual(b.decide(true, 10), { restart: true, delayMs: 200 });
  assert.deepEqual(b.decide(true, 20), { restart: false, why: 'budget' });
  assert.equal(b.recent, 2);
  // Once both restarts are older than the window, the budget is back.
  assert.deepEqual(b.decide(true, 1011), { restart: true, delayMs: 100 });
});

test('restart policy: the delay is capped at 30 s; reset() gives a fresh budget', () => {
  const b = new RestartBudget(cfg('on-failure', 3, 600_000, 20_000));
  assert.deepEqual(b.decide(true, 0), { restart: true, delayMs: 20_000 });
  assert.deepEqual(b.decide(true, 1), { restart: true, delayMs: 30_000 });
  assert.deepEqual(b.decide(true, 2), { restart: true, delayMs: 30_000 });
  assert.deepEqual(b.decide(true, 3), { restart: false, why: 'budget' });
  b.reset();
  assert.deepEqual(b.decide(true, 4), { restart: true, delayMs: 20_000 });
});
