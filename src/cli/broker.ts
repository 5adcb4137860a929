// `ivshm broker`: run one link's broker in the foreground (README, "Command line").
import type { Command } from 'commander';
import { Broker } from '../ivshmem/broker.js';
import { withFlagNames } from './flags.js';
import { onStopSignals, timestamp } from './util.js';

export function register(program: Command): void {
  program
    .command('broker')
    .description('run the broker (the hypervisor part) of one ivshmem 2.0 link in the foreground')
    .requiredOption('--socket <path>', 'control socket path')
    .requiredOption('--peers <n>', 'MAX_PEERS, 2..64')
    .requiredOption('--output-size <bytes>', 'bytes per output section (K/M suffixes, rounded up to the page)')
    .option('--name <link>', 'link name, used in memfd names ivshm:LINK:state|rw|outK (default: from the socket name)')
    .option('--vectors <v>', 'interrupt vectors per peer, 1..16', '1')
    .option('--state-size <bytes>', 'State Table bytes', '4K')
    .option('--rw-size <bytes>', 'R/W section bytes', '0')
    .option('--protocol <p>', 'protocol ID 0..0xFFFF', '0')
    .option('--json', 'log one JSON object per line')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const broker = withFlagNames(['name', 'peers', 'outputSize', 'vectors', 'stateSize', 'rwSize', 'protocol'], () =>
        new Broker({
          socket: o.socket as string,
          peers: o.peers as string,
          outputSize: o.outputSize as string,
          name: o.name as string | undefined,
          vectors: o.vectors as string,
          stateSize: o.stateSize as string,
          rwSize: o.rwSize as string,
          protocol: o.protocol as string,
        }));
      broker.on('log', (l) => {
        if (o.json) console.log(JSON.stringify({ time: new Date().toISOString(), level: l.level, message: l.message }));
        else console.log(`${timestamp()} ${l.level === 'warn' ? 'WARN ' : ''}${l.message}`);
      });
      // Handlers first: a supervisor may signal as soon as it reads "listening".
      onStopSignals(async () => {
        await broker.stop();
      });
      await broker.start();
    });
}
