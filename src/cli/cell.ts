// `ivshm cell stop|start|restart NAME`: act on one cell while the rest run,
// like `jailhouse cell shutdown/start`.
import type { Command } from 'commander';
import { controlRequest } from '../system/control-client.js';
import { findControlSocket } from '../system/runtime-dir.js';
import { targetOptions, type TargetOptions } from './status.js';

export function register(program: Command): void {
  const cell = program.command('cell').description('stop, start or restart one cell of a running system');
  for (const op of ['stop', 'start', 'restart'] as const) {
    targetOptions(cell.command(op).description(`${op} cell NAME`).argument('<name>', 'cell name')).action(
      async (name: string, o: TargetOptions) => {
        const st = await controlRequest(findControlSocket(o), { op: `cell-${op}`, cell: name });
        const c = st.cells.find((x) => x.name === name);
        console.log(`cell ${name}: ${c?.state ?? 'unknown'}${c?.pid ? ` (pid ${c.pid})` : ''}`);
      },
    );
  }
}
