// The one command line of a supervised process (docs/supervisor.md, "Cells"):
// the program (node = this Node), inside its namespace, under the parent-death
// signal, in that order; and it really runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { InvalidArgumentError } from '../../src/errors.js';
import { launchArgv, programOf } from '../../src/system/cell-launch.js';
import { parentDeathSignalAvailable } from '../../src/sys/parent-death.js';

const PDEATH = parentDeathSignalAvailable ? ['--pdeathsig', 'KILL', '--'] : [];

test('cell launch: node is this Node; the netns wraps the program, the parent-death signal wraps both', (t) => {
  if (!parentDeathSignalAvailable) t.diagnostic('setpriv (util-linux) is not installed: no parent-death wrapper here');
  assert.equal(programOf({ command: 'node', args: [] }), process.execPath);
  assert.equal(programOf({ command: '/bin/echo', args: [] }), '/bin/echo');
  const plain = launchArgv({ command: 'node', args: ['cell.js', '--x'] });
  assert.deepEqual(plain.slice(1), [...PDEATH, process.execPath, 'cell.js', '--x']);
  const inNs = launchArgv({ command: 'prog', args: ['a'], netns: 'ns-1' });
  assert.deepEqual(inNs.slice(1), [...PDEATH, 'ip', 'netns', 'exec', 'ns-1', 'prog', 'a']);
  assert.throws(() => launchArgv({ command: 'prog', args: [], netns: '../x' }), InvalidArgumentError);
});

test('cell launch: the command line runs the program with its arguments', () => {
  const [file, ...args] = launchArgv({ command: 'node', args: ['-e', 'console.log(process.argv.slice(1).join(","))', 'a b', 'c'] });
  const r = spawnSync(file, args, { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'a b,c');
});
