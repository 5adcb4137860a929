// `npm run bench`: every link-level benchmark in turn (doorbells, then
// ivshmem-net frames when present). Channel and network paths have their
// own scripts: `npm run bench:ipc`, `npm run bench:net`.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

const here = new URL('.', import.meta.url).pathname;
const passArgs = process.argv.slice(2);
let failed = false;
for (const script of ['doorbell.js', 'frames.js']) {
  if (!fs.existsSync(here + script)) continue;
  console.log(`\n== ${script.replace('.js', '')} ==`);
  const r = spawnSync(process.execPath, [here + script, ...passArgs], { stdio: 'inherit' });
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
