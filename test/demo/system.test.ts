// The built-in demo (npm start): runs, shows traffic, status and the
// dashboard URL, and leaves nothing behind; as root with namespaces and TAP,
// and (when we can drop privileges) without root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { isRoot, root } from '../system/helpers.js';
import { unprivilegedBlocked } from '../helpers/unprivileged.js';

const script = `import { runDemo } from ${JSON.stringify(path.join(root, 'dist/src/demo/system.js'))};
await runDemo({ durationMs: 6000, statusEverySeconds: 2 });`;

function lastChatRate(out: string): number {
  const rows = [...out.matchAll(/^chat\s+channel\s+0x4348\s+0:alpha \S+, 1:beta \S+\s+\d+\s+(\d+)/gm)];
  return rows.length ? Number(rows[rows.length - 1]![1]) : 0;
}

test('demo: runs, traffic flows, status and dashboard shown, nothing left', { timeout: 60_000 }, () => {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  const out = r.stdout + r.stderr;
  assert.equal(r.status, 0, out);
  assert.match(out, /dashboard: http:\/\/127\.0\.0\.1:\d+\//);
  assert.ok(lastChatRate(out) > 0, out);
  assert.match(out, /demo stopped; nothing left behind/);
  if (isRoot()) {
    assert.match(out, /running as root/);
    assert.match(out, /^net0\s+net\s+0x0001\s+0:alpha 3, 1:beta 3/m, 'ivshmem-net reached RUN on both sides');
    assert.doesNotMatch(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }), /ivshm-demo/);
  }
});

test('demo: without root it says so and runs the rest', { timeout: 60_000 }, (t) => {
  if (!isRoot() || !fs.existsSync('/usr/bin/setpriv')) return t.skip('needs root (to drop to nobody with setpriv) to test the unprivileged path');
  const blocked = unprivilegedBlocked();
  if (blocked) return t.skip(blocked);
  const env = { ...process.env };
  delete env.XDG_RUNTIME_DIR;
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8', env, cwd: '/tmp' });
  const out = r.stdout + r.stderr;
  assert.equal(r.status, 0, out);
  assert.match(out, /not running as root, so no network namespaces and no TAP devices/);
  assert.ok(lastChatRate(out) > 0, out);
});
