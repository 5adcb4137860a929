// `ivshm peer`: join a link and stay there, printing events and taking
// commands on stdin (issue 2 CLI contract).
import type { Command } from 'commander';
import { connect, type Device } from '../ivshmem/device.js';
import { parseIntIn } from '../ivshmem/layout.js';
import { PeerShell } from './peer-shell.js';
import { onStopSignals } from './util.js';

export function register(program: Command): void {
  program
    .command('peer')
    .description('join an ivshmem link as a peer; events on stdout, commands on stdin')
    .requiredOption('--socket <path>', 'broker control socket')
    .option('--id <k>', 'requested peer ID (default: lowest free)')
    .option('--json', 'one JSON object per line')
    .action(async (o: { socket: string; id?: string; json?: boolean }) => {
      const dev: Device = await connect({ socket: o.socket, id: o.id === undefined ? undefined : parseIntIn(o.id, 0, 0xffff, '--id') });
      const shell = new PeerShell(dev, { json: !!o.json, counters: () => dev.counters });
      const quit = () => {
        dev.close();
        process.exit(0);
      };
      shell.start(quit);
      onStopSignals(() => dev.close());
    });
}
