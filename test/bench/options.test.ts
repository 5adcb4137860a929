// Every benchmark script takes --help and refuses what it does not know,
// before it measures anything (spawned as a user would run it).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

const BENCH = new URL('../../bench/', import.meta.url).pathname;
const SCRIPTS = ['run', 'doorbell', 'frames', 'ipc', 'net-paths', 'ipc-plot'];
const run = (script: string, ...args: string[]) => spawnSync(process.execPath, [`${BENCH}${script}.js`, ...args], { encoding: 'utf8', timeout: 30_000 });

for (const script of SCRIPTS) {
  test(`bench/${script}: --help lists --out; an unknown flag or a stray argument is a usage error`, () => {
    const help = run(script, '--help');
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, new RegExp(`^usage: node dist/bench/${script}\\.js`));
    assert.match(help.stdout, /--out DIR +folder for the result files/);
    const bad = run(script, '--no-such-flag');
    assert.equal(bad.status, 2);
    assert.equal(bad.stderr, `${script}: unknown option '--no-such-flag' (try --help)\n`);
    if (script !== 'ipc-plot') {
      const stray = run(script, 'stray');
      assert.equal(stray.status, 2);
      assert.match(stray.stderr, new RegExp(`^${script}: unexpected argument 'stray'`));
    }
  });
}

test('bench: a bad number names the option and the range', () => {
  const r = run('doorbell', '--runs', '0');
  assert.equal(r.status, 2);
  assert.equal(r.stderr, 'doorbell: --runs must be an integer from 1 to 100, not "0" (try --help)\n');
  const p = run('ipc-plot');
  assert.equal(p.status, 2);
  assert.match(p.stderr, /^ipc-plot: expected one FILE\.json, got 0/);
});
