// `ivshm qemu-server`: a server for QEMU's ivshmem protocol v0, so
// ivshmem-doorbell VMs and `ivshm peer --qemu` peers share one memory region
// (docs/qemu.md). Thin: the logic is QemuServer.
import type { Command } from 'commander';
import { QemuServer } from '../ivshmem/qemu/server.js';
import { withFlagNames } from './flags.js';
import { onStopSignals, timestamp } from './util.js';

export function register(program: Command): void {
  program
    .command('qemu-server')
    .description("serve QEMU's ivshmem protocol (like QEMU's contrib ivshmem-server): no isolation, one read-write region for all peers")
    .requiredOption('--socket <path>', 'UNIX socket for -chardev socket,path=PATH')
    .option('--size <bytes>', 'shared memory size (K/M/G suffixes), rounded up to a power of two', '4M')
    .option('--vectors <n>', 'interrupt vectors per peer, 1..64; must equal vectors= of every QEMU device', '1')
    .option('--shm <name>', 'keep the memory in /dev/shm/NAME (removed on exit) instead of an anonymous memfd')
    .option('--json', 'log one JSON object per line')
    .action(async (o: { socket: string; size: string; vectors: string; shm?: string; json?: boolean }) => {
      const server = withFlagNames(['socket', 'size', 'vectors', 'shm'], () =>
        new QemuServer({
          socket: o.socket,
          size: o.size,
          vectors: o.vectors,
          shm: o.shm,
          log: (message) => console.log(o.json ? JSON.stringify({ time: new Date().toISOString(), message }) : `${timestamp()} ${message}`),
        }));
      await server.start();
      onStopSignals(() => server.stop());
    });
}
