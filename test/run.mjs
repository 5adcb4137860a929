// Runs every compiled test file (dist/test/**/*.test.js) with node's test
// runner. `npm test -- net channel` runs only files whose path contains one
// of the words. Kept as .mjs so it needs no build step itself.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('../dist/test/', import.meta.url).pathname;
const walk = (dir) =>
  readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.test.js') ? [p] : [];
  });
const words = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const files = walk(root)
  .filter((f) => words.length === 0 || words.some((w) => relative(root, f).includes(w)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${words.join(' ')}`);
  process.exit(1);
}
// A watchdog per test file: a hang fails that file with a message naming it
// instead of stalling the whole run (tests set tighter timeouts of their own).
const FILE_WATCHDOG_MS = 600_000;
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', `--test-timeout=${FILE_WATCHDOG_MS}`, '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
