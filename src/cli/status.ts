// `ivshm status`: cells, states, links and counters of a running system.
import type { Command } from 'commander';
import { controlRequest } from '../system/control-client.js';
import { findControlSocket } from '../system/runtime-dir.js';
import { formatStatus } from '../system/status-format.js';

export interface TargetOptions {
  system?: string;
  control?: string;
  runtimeDir?: string;
}

export const targetOptions = (cmd: Command): Command =>
  cmd
    .option('--system <name>', 'the system to talk to (default: the only one running)')
    .option('--control <path>', 'control socket of the supervisor')
    .option('--runtime-dir <dir>', 'runtime base directory (default /run/ivshm as root)');

export function register(program: Command): void {
  targetOptions(program.command('status').description('show the cells, links and counters of a running system (ivshm up)'))
    .option('--json', 'print JSON')
    .action(async (o: TargetOptions & { json?: boolean }) => {
      const st = await controlRequest(findControlSocket(o), { op: 'status' });
      if (o.json) {
        const { history: _h, ...rest } = st;
        console.log(JSON.stringify(rest, null, 2));
      } else console.log(formatStatus(st));
    });
}
