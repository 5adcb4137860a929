// One MAC derivation (src/net/mac.ts, docs/spec-net.md §11): a net link's
// member gets the same MAC whether `ivshm up` starts it (the checker resolves
// the MAC and the supervisor passes it to the TAP bridge) or `ivshm net` does
// (it derives the MAC from the INIT's link name and its peer ID).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { deriveMac } from '../../src/net/mac.js';
import { checkSystemText } from '../../src/system/check.js';
import { hasEvent, socketPath, spawnCli } from '../fixtures/tap-cells.js';
import { makeNetns, skipUnlessPrivileged, uniqueTag } from '../fixtures/tap-netns.js';
import { until } from '../helpers/wait.js';

const system = (link: string, systemName = 's') => `
name: ${systemName}
cells: [{ name: a, command: x }, { name: b, command: y, netns: nb }]
links: [{ name: ${link}, kind: net, members: [{ cell: a }, { cell: b }] }]
`;

test('the MAC ivshm up resolves is deriveMac(link, id), whatever the system is called', () => {
  for (const name of ['s', 'other']) {
    const r = checkSystemText(system('n0', name), 't', { shmFree: null });
    assert.deepEqual(r.problems, []);
    assert.deepEqual(r.system!.links[0]!.members.map((m) => m.mac), [deriveMac('n0', 0), deriveMac('n0', 1)]);
  }
  const m = deriveMac('n0', 0);
  assert.match(m, /^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/);
  assert.equal(m, deriveMac('n0', 0));
  assert.notEqual(m, deriveMac('n0', 1));
  assert.notEqual(m, deriveMac('n1', 0));
});

test('ivshm net picks the MAC ivshm up resolves for the same link and peer', async (t) => {
  if (skipUnlessPrivileged(t)) return;
  const link = `mac${uniqueTag()}`;
  const socket = socketPath(t);
  const broker = spawnCli(t, ['broker', '--socket', socket, '--name', link, '--peers', '2', '--output-size', '0x7F000', '--vectors', '2', '--protocol', '1']);
  await until(() => fs.existsSync(socket) || broker.exitCode() !== undefined, `broker socket ${socket}`);
  const ns = makeNetns(t);
  const net = spawnCli(t, ['net', '--socket', socket, '--id', '1', '--tap', `ivm${uniqueTag()}`, '--netns', ns, '--json']);
  await until(() => hasEvent(net, 'ready') || net.exitCode() !== undefined, 'ivshm net ready');
  const ready = net.events.find((e) => e.event === 'ready');
  assert.ok(ready, net.text());
  const resolved = checkSystemText(system(link), 't', { shmFree: null }).system!.links[0]!.members[1]!;
  assert.equal(resolved.id, 1);
  assert.equal(ready.mac, resolved.mac);
});
