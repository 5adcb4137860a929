// `npm run bench`: every link-level benchmark in turn (doorbells, then
// ivshmem-net frames). Channel and network paths have their own scripts:
// `npm run bench:ipc`, `npm run bench:net`. --runs, --quick and --out are
// passed on to each.
import { spawnSync } from 'node:child_process';
import { benchArgs } from './args.js';

const args = benchArgs('run', 'Runs bench/doorbell.js and bench/frames.js in turn; see their --help for the rest of their options.', {
  runs: { type: 'string', arg: 'N', help: "runs of each benchmark (default: each benchmark's own)" },
  quick: { type: 'boolean', help: 'a short run of each, to see that they work' },
});
const pass = ['--out', args.out, ...(args.values.runs ? ['--runs', args.values.runs] : []), ...(args.values.quick ? ['--quick'] : [])];
const here = new URL('.', import.meta.url).pathname;
let failed = false;
for (const script of ['doorbell', 'frames']) {
  console.log(`\n== ${script} ==`);
  const r = spawnSync(process.execPath, [`${here}${script}.js`, ...pass], { stdio: 'inherit' });
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
