// `ivshm peer`: join a link and stay there, printing events and taking
// commands on stdin (README, "Command line").
import type { Command } from 'commander';
import { connect } from '../ivshmem/device.js';
import { connectQemu } from '../ivshmem/qemu/client.js';
import { InvalidArgumentError } from '../errors.js';
import { parseInteger } from '../units.js';
import { PeerShell } from './peer-shell.js';
import { onStopSignals } from './util.js';

export function register(program: Command): void {
  program
    .command('peer')
    .description('join an ivshmem link as a peer; events on stdout, commands on stdin')
    .requiredOption('--socket <path>', 'broker control socket')
    .option('--id <k>', 'requested peer ID (default: lowest free)')
    .option('--json', 'one JSON object per line')
    .option('--qemu', "join a QEMU ivshmem server (protocol v0; one shared region, PEER of read is ignored) instead of a broker")
    .action(async (o: { socket: string; id?: string; json?: boolean; qemu?: boolean }) => {
      if (o.qemu && o.id !== undefined) throw new InvalidArgumentError('--id cannot be used with --qemu: a QEMU ivshmem server assigns peer IDs itself');
      const dev = o.qemu
        ? await connectQemu({ socket: o.socket })
        : await connect({ socket: o.socket, id: o.id === undefined ? undefined : parseInteger(o.id, 0, 0xffff, '--id') });
      const shell = new PeerShell(dev, { json: !!o.json, counters: () => dev.counters });
      const quit = () => {
        dev.close();
        process.exit(0);
      };
      shell.start(quit);
      onStopSignals(() => dev.close());
    });
}
