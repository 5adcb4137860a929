// Per-second rates from cumulative counters: per second, never negative when
// a restarted cell reports from zero, two minutes of history.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LinkRates } from '../../src/system/rates.js';
import { zeroCounters } from '../../src/system/report.js';

const at = (messages: number, bytes = 0) => ({ ...zeroCounters(), messages, bytes });

test('rates: per second from the difference, 0 on the first sample and after a restart', () => {
  const r = new LinkRates();
  r.sample(at(50, 500), 10_000);
  assert.equal(r.rates.messages, 0, 'nothing to compare the first sample with');
  r.sample(at(250, 2500), 12_000);
  assert.deepEqual(r.rates, { t: 12_000, frames: 0, messages: 100, bytes: 1000, doorbells: 0 });
  r.sample(at(5, 10), 13_000);
  assert.deepEqual([r.rates.messages, r.rates.bytes], [0, 0], 'a cell that restarted from zero is not a negative rate');
  r.sample(at(15, 10), 14_000);
  assert.equal(r.rates.messages, 10);
});

test('rates: the history keeps the last 120 samples, oldest first', () => {
  const r = new LinkRates();
  for (let i = 0; i <= 130; i++) r.sample(at(i * 2), i * 1000);
  assert.equal(r.history.length, 120);
  assert.equal(r.history[0]!.t, 11_000);
  assert.equal(r.history.at(-1)!.t, 130_000);
  assert.ok(r.history.every((s) => s.messages === 2));
});
