// `ivshm up` as a library call: check the file, start the supervisor and,
// if asked, the dashboard; stop both on SIGINT/SIGTERM.
import { ConfigError } from '../errors.js';
import { checkSystemFile, formatProblem, type CheckOptions } from './check.js';
import { terminalProgress } from './progress.js';
import { parseListen, StatusServer } from './status-server.js';
import { formatStatus } from './status-format.js';
import { Supervisor, type SupervisorOptions } from './supervisor.js';

export interface UpOptions extends CheckOptions, SupervisorOptions {
  http?: string;
}

export interface RunningSystem {
  supervisor: Supervisor;
  server: StatusServer | null;
  stop(): Promise<void>;
}

export async function upSystem(file: string, opts: UpOptions = {}): Promise<RunningSystem> {
  const r = checkSystemFile(file, opts);
  if (!r.system) {
    throw new ConfigError(`${file} has ${r.problems.length} problem(s); nothing was started:\n${r.problems.map((p) => formatProblem(file, p)).join('\n')}`);
  }
  const progress = terminalProgress();
  const supervisor = new Supervisor(r.system, { progress: (n, t, w) => progress.step(n, t, w), ...opts });
  try {
    await supervisor.start();
  } finally {
    progress.done();
  }
  let server: StatusServer | null = null;
  if (opts.http) {
    const { host, port } = parseListen(opts.http);
    server = new StatusServer(supervisor);
    try {
      supervisor.dashboardUrl = await server.listen(host, port);
    } catch (err) {
      await supervisor.stop();
      throw err;
    }
  }
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => (stopping ??= (async () => {
    await server?.close();
    await supervisor.stop();
  })());
  return { supervisor, server, stop };
}

/** Foreground `ivshm up`: run until SIGINT/SIGTERM, then leave nothing behind. */
export async function upForeground(file: string, opts: UpOptions = {}): Promise<void> {
  const log = opts.log ?? ((l: string) => console.log(l));
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
  const sys = await upSystem(file, opts);
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
