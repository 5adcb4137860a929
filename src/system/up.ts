// `ivshm up` as a library call: check the file, start the supervisor and, if
// asked, the dashboard; one stop() for both.
import { ConfigError } from '../errors.js';
import { checkSystemFile, formatProblem, type CheckOptions } from './check.js';
import { parseListen, StatusServer } from './status-server.js';
import { Supervisor, type SupervisorOptions } from './supervisor.js';

/** Options of `upSystem`. */
export interface UpOptions extends CheckOptions, SupervisorOptions {
  /** Serve the dashboard on HOST:PORT (port 0 picks a free one). */
  http?: string;
}

/** A system started by `upSystem`: its supervisor and how to stop it. */
export interface RunningSystem {
  supervisor: Supervisor;
  server: StatusServer | null;
  stop(): Promise<void>;
}

/** Check a system file and start it: brokers, namespaces, TAP bridges and cells (what `ivshm up` runs). */
export async function upSystem(file: string, opts: UpOptions = {}): Promise<RunningSystem> {
  const r = checkSystemFile(file, opts);
  if (!r.system) {
    throw new ConfigError(`${file} has ${r.problems.length} problem(s); nothing was started:\n${r.problems.map((p) => formatProblem(file, p)).join('\n')}`);
  }
  const supervisor = new Supervisor(r.system, opts);
  await supervisor.start();
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
