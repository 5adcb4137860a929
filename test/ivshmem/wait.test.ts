// The pump and wait modes shared by the protocol layers (src/ivshmem/wait.ts),
// driven with scripted hooks: what each mode does with work, probes and
// wake requests, the work budget per event-loop turn, and the idle yield.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkWaitOptions, HYBRID_SPIN_MICROS, Pump, WORK_BUDGET, type PumpHooks, type WaitOptions } from '../../src/ivshmem/wait.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { until } from '../helpers/wait.js';

const turn = () => new Promise<void>((r) => setImmediate(r));

/** Hooks with scripted answers and a log of calls. */
function script(work: () => boolean, probe: () => boolean = () => false) {
  const log = { work: 0, probe: 0, arms: [] as boolean[] };
  const hooks: PumpHooks = {
    work: () => (log.work++, work()),
    probe: () => (log.probe++, probe()),
    arm: (on) => (log.arms.push(on), probe()),
  };
  return { hooks, log };
}

test('checkWaitOptions: defaults, and every bad option named with the object', () => {
  assert.deepEqual(checkWaitOptions(undefined, 'x'), { mode: 'event', spinMicros: 0, budget: WORK_BUDGET });
  assert.deepEqual(checkWaitOptions({ mode: 'hybrid' }, 'x'), { mode: 'hybrid', spinMicros: HYBRID_SPIN_MICROS, budget: 64 });
  assert.deepEqual(checkWaitOptions({ mode: 'poll', spinMicros: 5, budget: 8 }, 'x'), { mode: 'poll', spinMicros: 5, budget: 8 });
  const bad: Array<[WaitOptions, RegExp]> = [
    [{ mode: 'spin' as 'poll' }, /^channel 0: wait mode "spin" must be/],
    [{ spinMicros: -1 }, /^channel 0: spinMicros -1 must be between 0 and 1000000/],
    [{ spinMicros: Number.NaN }, /spinMicros NaN/],
    [{ spinMicros: '5' as unknown as number }, /spinMicros 5 must be/],
    [{ budget: 0 }, /^channel 0: budget 0 must be an integer between 1 and 1000000/],
    [{ budget: 1.5 }, /budget 1.5/],
  ];
  for (const [o, re] of bad) assert.throws(() => checkWaitOptions(o, 'channel 0'), (e) => e instanceof InvalidArgumentError && re.test(e.message), JSON.stringify(o));
});

test('a turn does at most `budget` rounds of work, then the event loop runs', { timeout: 10000 }, async (t) => {
  // Endless work (bounded only so that a pump without a budget fails instead of hanging the test).
  let other = 0;
  const { hooks, log } = script(() => log.work < 100_000);
  const pump = new Pump(hooks, checkWaitOptions({ mode: 'event', budget: 8 }, 'test'));
  t.after(() => pump!.stop()); // also when an assertion fails: a running pump keeps the process alive
  pump.start();
  setImmediate(() => (other = log.work));
  await until(() => other > 0 && pump.stats.turns >= 3, 'three turns and another callback');
  assert.equal(other, 8, 'the other callback ran right after the first turn of 8 rounds');
  pump.stop();
  const turns = pump.stats.turns;
  assert.equal(log.work, turns * 8, 'every turn did exactly its budget');
  assert.deepEqual(log.arms, [], 'a turn that used its budget does not arm: more work is likely');
  await turn();
  await turn();
  assert.equal(pump.stats.turns, turns, 'a stopped pump never runs again');
});

test('event mode: arm, look once more, then sleep until kicked', { timeout: 10000 }, async (t) => {
  let pending = 0;
  const { hooks, log } = script(
    () => (pending > 0 ? (pending--, true) : false),
    () => pending > 0,
  );
  const pump = new Pump(hooks, checkWaitOptions({ mode: 'event' }, 'test'));
  t.after(() => pump!.stop()); // also when an assertion fails: a running pump keeps the process alive
  pump.start();
  await until(() => pump.stats.sleeps === 1, 'asleep');
  assert.deepEqual(log.arms, [true]);
  const works = log.work;
  await turn();
  await turn();
  assert.equal(log.work, works, 'asleep: no work until a kick');
  pending = 3;
  pump.kick(true); // synchronous: the turn runs now
  assert.equal(pending, 0);
  assert.equal(pump.stats.sleeps, 2);
  // Something arrives just as it arms: the look after arming catches it.
  pending = 1;
  let armedOnce = false;
  hooks.arm = (on) => {
    log.arms.push(on);
    if (!armedOnce) {
      armedOnce = true;
      pending = 1; // published between the last work() and the wake request
    }
    return pending > 0;
  };
  pump.kick();
  await until(() => pending === 0 && pump.stats.sleeps === 3, 'the late record handled, then asleep');
  pump.stop();
});

test('poll mode never arms, gives its core away only after idling, and never while working', { timeout: 10000 }, async (t) => {
  let pump: Pump | null = null;
  let lastWorkAt = 0;
  let yieldsWhileBusy = -1;
  let firstYieldAfter = -1;
  let prevCallAt = 0;
  const { hooks, log } = script(() => {
    // The first call after the first yield: the yield came after the previous
    // call, in the same turn; how long after the last work was that call?
    if (firstYieldAfter < 0 && pump!.stats.yields > 0) firstYieldAfter = prevCallAt - lastWorkAt;
    prevCallAt = performance.now();
    // 200 busy turns with something in each, then nothing (no delay in between).
    if (log.work > 400 || log.work % 2 === 0) return false;
    lastWorkAt = prevCallAt;
    yieldsWhileBusy = pump!.stats.yields;
    return true;
  });
  pump = new Pump(hooks, checkWaitOptions({ mode: 'poll' }, 'test'));
  t.after(() => pump!.stop()); // also when an assertion fails: a running pump keeps the process alive
  pump.start();
  await until(() => log.work > 400, 'busy turns');
  assert.ok(pump.stats.turns >= 200);
  await until(() => pump.stats.yields >= 5 && firstYieldAfter >= 0, 'yields once idle');
  assert.equal(yieldsWhileBusy, 0, 'no yield while there is work');
  // 50 µs, less the few instructions between our clock reads and the pump's.
  assert.ok(firstYieldAfter >= 0.045, `the first yield came ${firstYieldAfter} ms after the last work, not after 50 µs of idling`);
  pump.stop();
  assert.deepEqual([...new Set(log.arms)], [false], 'poll mode only ever withdraws wake requests');
  const yields = pump.stats.yields;
  await turn();
  assert.equal(pump.stats.yields, yields);
});

test('poll mode with spinMicros: a probe hit is worked in the same turn', { timeout: 10000 }, async (t) => {
  let arrived = false;
  let hitTurn = -1;
  let workedTurn = -1;
  let pump: Pump | null = null;
  const { hooks, log } = script(
    () => {
      if (!arrived) return false;
      arrived = false;
      workedTurn = pump!.stats.turns;
      return true;
    },
    () => {
      if (log.probe === 50) {
        arrived = true;
        hitTurn = pump!.stats.turns;
      }
      return arrived;
    },
  );
  pump = new Pump(hooks, checkWaitOptions({ mode: 'poll', spinMicros: 10_000 }, 'test'));
  t.after(() => pump!.stop()); // also when an assertion fails: a running pump keeps the process alive
  pump.start();
  await until(() => workedTurn > 0, 'the record found by spinning, then worked');
  assert.equal(workedTurn, hitTurn, 'worked in the turn whose spin found it, not after another event-loop turn');
  pump.stop();
});

test('hybrid mode polls within the window after activity, then arms and sleeps', { timeout: 20000 }, async (t) => {
  let pending = 5;
  const { hooks, log } = script(
    () => (pending > 0 ? (pending--, true) : false),
    () => pending > 0,
  );
  // A 1 s window: two event-loop turns always fit in it.
  const pump = new Pump(hooks, checkWaitOptions({ mode: 'hybrid', spinMicros: 1_000_000 }, 'test'));
  t.after(() => pump!.stop()); // also when an assertion fails: a running pump keeps the process alive
  pump.start();
  await until(() => pending === 0, 'worked');
  const turns = pump.stats.turns;
  await turn();
  await turn();
  assert.ok(pump.stats.turns > turns, 'still polling after the work');
  assert.equal(pump.stats.sleeps, 0);
  assert.ok(!log.arms.includes(true), 'no wake request within the window');
  await until(() => pump.stats.sleeps === 1, 'asleep after the window');
  assert.equal(log.arms.at(-1), true);
  pump.stop();
});
