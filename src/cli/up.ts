// `ivshm up FILE`: start a system (brokers, namespaces, TAP bridges, cells)
// in the foreground; Ctrl-C stops everything.
import type { Command } from 'commander';
import { parseSize } from '../units.js';
import { upForeground } from '../system/up.js';

export function register(program: Command): void {
  program
    .command('up')
    .description('start the cells and links of a system file and supervise them until Ctrl-C')
    .argument('<file>', 'system file (.yaml or .json)')
    .option('--http <host:port>', 'serve the live dashboard, e.g. 127.0.0.1:8080')
    .option('--runtime-dir <dir>', 'directory for sockets (default /run/ivshm/<system> as root)')
    .option('--max-shm <size>', 'limit for the shared memory of all links (overrides limits.sharedMemory)')
    .option('--quiet', "do not print the cells' output")
    .action(async (file: string, o: { http?: string; runtimeDir?: string; maxShm?: string; quiet?: boolean }) => {
      await upForeground(file, {
        ...(o.http ? { http: o.http } : {}),
        ...(o.maxShm ? { maxSharedMemory: parseSize(o.maxShm, '--max-shm') } : {}),
        ...(o.runtimeDir ? { runtimeBase: o.runtimeDir } : {}),
        ...(o.quiet ? { cellOutput: false } : {}),
      });
    });
}
