// `ivshm up FILE`: start a system (brokers, namespaces, TAP bridges, cells)
// in the foreground; Ctrl-C stops everything.
import type { Command } from 'commander';
import { parseSize } from '../units.js';
import { terminalProgress } from '../system/progress.js';
import { formatStatus } from '../system/status-format.js';
import { upSystem, type RunningSystem, type UpOptions } from '../system/up.js';

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
        ...(o.maxShm ? { maxSharedMemory: parseSize(o.maxShm, '--max-shm'), maxSharedMemoryName: '--max-shm' } : {}),
        ...(o.runtimeDir ? { runtimeBase: o.runtimeDir } : {}),
        ...(o.quiet ? { cellOutput: false } : {}),
      });
    });
}

/** Start a system with a progress line on the terminal. */
async function upWithProgress(file: string, opts: UpOptions): Promise<RunningSystem> {
  const progress = terminalProgress();
  try {
    return await upSystem(file, { progress: (n, t, w) => progress.step(n, t, w), ...opts });
  } finally {
    progress.done();
  }
}

/** Foreground `ivshm up`: run until SIGINT/SIGTERM, then leave nothing behind. */
async function upForeground(file: string, opts: UpOptions): Promise<void> {
  const log = (l: string): void => console.log(l);
  // Signals are caught from the first moment: one that arrives while the
  // system is still starting stops it as soon as start() returns.
  let signalled: (() => void) | null = null;
  let signals = 0;
  const stopRequested = new Promise<void>((resolve) => (signalled = resolve));
  const onSignal = (sig: NodeJS.Signals): void => {
    if (++signals > 1) {
      log(`second ${sig}: exiting now`);
      process.exit(130);
    }
    log(`${sig}: stopping cells, bridges, brokers and namespaces`);
    signalled!();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  const sys = await upWithProgress(file, opts);
  if (!signals) {
    // Give the peers a moment to join so the first table shows them.
    for (let i = 0; i < 30 && !signals && !sys.supervisor.status().links.every((l) => l.members.every((m) => m.joined)); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    log(formatStatus(sys.supervisor.status()));
    if (sys.supervisor.dashboardUrl) log(`dashboard: ${sys.supervisor.dashboardUrl}`);
    log(`running; ivshm status / ivshm cell stop|start|restart NAME from another terminal; Ctrl-C stops everything`);
  }
  await Promise.race([stopRequested, new Promise<void>((r) => sys.supervisor.once('stopped', () => r()))]);
  await sys.stop();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.off('SIGHUP', onSignal);
  log('stopped; nothing left behind');
}
