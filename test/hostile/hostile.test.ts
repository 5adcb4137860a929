// CI run of the malicious-peer simulator: fixed seed, bounded by rounds
// (deterministic), prints how many mutations it tried.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runHostile } from './simulator.js';

test('hostile peer: fixed seed, bounded run', { timeout: 120000 }, async (t) => {
  const report = await runHostile({ seed: 0x1f3, rounds: 400 });
  t.diagnostic(`hostile peer: ${report.mutations} mutations tried (${report.targeted} targeted) in ${report.rounds} rounds, ${report.recoveries} recoveries`);
  console.log(`hostile peer (seed ${report.seed}): ${report.mutations} mutations tried, ${report.targeted} targeted, ${report.rounds} rounds, violations ${JSON.stringify(report.violations)}`);
  assert.deepEqual(report.failures, []);
  assert.ok(report.mutations > 0);
  assert.ok(report.recoveries >= report.rounds - 1);
  assert.ok(report.legitFramesChecked > 0);
});
