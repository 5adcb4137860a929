// The TAP bridge over an in-process wire (test/fixtures/tap-wire.ts): two
// namespaces, two TAPs, IP across; carrier following the link; oversized
// frames; back-pressure; a TAP deleted under the bridge. Needs root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { TapBridge } from '../../src/net/tap-bridge.js';
import { deriveMac } from '../../src/net/mac.js';
import { ip, linkLine, makeNetns, skipUnlessPrivileged, uniqueTag } from '../fixtures/tap-netns.js';
import { wirePair } from '../fixtures/tap-wire.js';
import { until } from '../helpers/wait.js';

const run = promisify(execFile);

function bridges(t: import('node:test').TestContext, mtu = 16384) {
  const nsA = makeNetns(t);
  const nsB = makeNetns(t);
  const [la, lb] = wirePair(mtu);
  const tag = uniqueTag();
  const a = TapBridge.open(la, { name: `iva${tag}`, netns: nsA, address: '10.81.0.1/24', mac: deriveMac('wire', 0) });
  t.after(() => a.close());
  const b = TapBridge.open(lb, { name: `ivb${tag}`, netns: nsB, address: '10.81.0.2/24', mac: deriveMac('wire', 1) });
  t.after(() => b.close());
  return { nsA, nsB, la, lb, a, b };
}

test('deriveMac is stable, unicast, locally administered, and differs per ID', () => {
  const m = deriveMac('link0', 0);
  assert.equal(m, deriveMac('link0', 0));
  assert.notEqual(m, deriveMac('link0', 1));
  assert.notEqual(m, deriveMac('link1', 0));
  const first = parseInt(m.slice(0, 2), 16);
  assert.equal(first & 1, 0);
  assert.equal(first & 2, 2);
});

test('bridge: carrier follows the link, ping both ways, oversized frames dropped with a log line', { timeout: 30000 }, async (t) => {
  if (skipUnlessPrivileged(t)) return;
  const { nsA, nsB, la, lb, a, b } = bridges(t);
  const logs: string[] = [];
  a.on('log', (l) => logs.push(l.message));
  assert.match(linkLine(nsA, a.tap.name), /NO-CARRIER/);
  la.setCarrier(true);
  lb.setCarrier(true);
  await until(() => /LOWER_UP/.test(linkLine(nsA, a.tap.name)) && /LOWER_UP/.test(linkLine(nsB, b.tap.name)), 'carrier on both');
  await run('ip', ['netns', 'exec', nsA, 'ping', '-c', '3', '-i', '0.05', '-W', '2', '10.81.0.2']);
  await run('ip', ['netns', 'exec', nsB, 'ping', '-c', '3', '-i', '0.05', '-W', '2', '10.81.0.1']);
  assert.ok(a.counters().tapRxFrames > 0 && a.counters().tapTxFrames > 0);

  // Raise the TAP MTU above the link's: the kernel now hands the bridge frames
  // the link cannot carry. They are dropped and counted; pings that fit still work.
  ip(['-n', nsA, 'link', 'set', a.tap.name, 'mtu', '20000']);
  await run('ip', ['netns', 'exec', nsA, 'ping', '-c', '1', '-W', '1', '-s', '19000', '10.81.0.2']).catch(() => undefined);
  await until(() => a.counters().dropOversize > 0, 'oversize drop');
  assert.ok(logs.some((l) => /larger than the link MTU/.test(l)), logs.join('\n'));
  await run('ip', ['netns', 'exec', nsA, 'ping', '-c', '1', '-W', '2', '10.81.0.2']);

  la.setCarrier(false);
  await until(() => /NO-CARRIER/.test(linkLine(nsA, a.tap.name)), 'NO-CARRIER after the link drops');
  assert.equal(a.counters().carrierChanges, 2);
});

test('bridge: back-pressure pauses TAP reading and resumes on writable without loss', { timeout: 30000 }, async (t) => {
  if (skipUnlessPrivileged(t)) return;
  const { nsA, la, lb, a } = bridges(t);
  la.setCarrier(true);
  lb.setCarrier(true);
  await until(() => /LOWER_UP/.test(linkLine(nsA, a.tap.name)), 'carrier');
  la.room = 0;
  const p = run('ip', ['netns', 'exec', nsA, 'ping', '-c', '1', '-W', '5', '10.81.0.2']);
  await until(() => a.counters().backpressurePauses > 0, 'a pause');
  la.room = Infinity;
  la.emit('writable');
  await p;
});

test('bridge: a TAP deleted under it stops the bridge with a clear event', { timeout: 30000 }, async (t) => {
  if (skipUnlessPrivileged(t)) return;
  const { nsA, la, a } = bridges(t);
  la.setCarrier(true);
  const gone = new Promise<Error>((r) => a.once('tap-gone', r));
  ip(['-n', nsA, 'link', 'delete', a.tap.name]);
  const err = await gone;
  assert.match(err.message, /vanished|no longer exists/);
  assert.equal(a.isClosed, true);
  la.setCarrier(false); // no throw after close
});
