// `ivshm check FILE...`: report every problem of system files, exit 1 if any.
import type { Command } from 'commander';
import { checkSystemFile, formatProblem } from '../system/check.js';
import { formatBytes, parseSize } from '../units.js';
import { InvalidArgumentError } from '../errors.js';
import { systemJsonSchema } from '../system/config-schema.js';

export function register(program: Command): void {
  program
    .command('check')
    .description('check system files (cells, links) and report every problem at once')
    .argument('[files...]', 'system files (.yaml, .yml or .json)')
    .option('--schema', 'print the JSON Schema of system files (for editors) and exit')
    .option('--max-shm <size>', 'limit for the shared memory of all links (overrides limits.sharedMemory)')
    .option('--no-shm-free', 'do not compare with the free space of /dev/shm')
    .option('-q, --quiet', 'print problems only')
    .action((files: string[], o: { maxShm?: string; shmFree: boolean; quiet?: boolean; schema?: boolean }) => {
      if (o.schema) {
        console.log(JSON.stringify(systemJsonSchema(), null, 2));
        return;
      }
      if (!files.length) throw new InvalidArgumentError('give one or more system files to check (or --schema)');
      let bad = 0;
      for (const file of files) {
        const r = checkSystemFile(file, {
          ...(o.maxShm !== undefined ? { maxSharedMemory: parseSize(o.maxShm, '--max-shm'), maxSharedMemoryName: '--max-shm' } : {}),
          ...(o.shmFree ? {} : { shmFree: null }),
        });
        for (const p of r.problems) console.error(formatProblem(file, p));
        if (r.problems.length) {
          bad++;
          console.error(`${file}: ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}`);
        } else if (!o.quiet && r.system) {
          const s = r.system;
          console.log(`${file}: ok: ${s.cells.length} cells, ${s.links.length} links, ${formatBytes(s.sharedMemory)} of shared memory`);
        }
      }
      if (bad) process.exitCode = 1;
    });
}
