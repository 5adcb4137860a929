// One supervised process: a cell, or a helper such as a TAP bridge. Runs in
// its own process group so that stopping it also stops whatever it spawned,
// records how it ended, and applies its restart policy when it exits on its
// own (docs/supervisor.md, "Cells").
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { RestartConfig } from './config-schema.js';
import { launchArgv, programOf, type LaunchSpec } from './cell-launch.js';
import { RestartBudget } from './restart-policy.js';

export type CellState = 'stopped' | 'starting' | 'running' | 'stopping' | 'restarting' | 'exited' | 'failed';

export interface ProcessSpec extends LaunchSpec {
  name: string;
  env: NodeJS.ProcessEnv;
  cwd?: string;
  restart: RestartConfig;
}

/** How a process ended: recorded in one place, CellProcess.recordExit. */
export interface ExitInfo {
  code: number | null;
  signal: string | null;
  at: number;
}

/** "code 3" or "signal SIGKILL". */
export const exitText = (e: ExitInfo): string => (e.signal ? `signal ${e.signal}` : `code ${e.code}`);

export interface CellProcessEvents {
  state: [{ state: CellState; previous: CellState }];
  output: [{ stream: 'stdout' | 'stderr'; line: string }];
  exit: [ExitInfo & { restarting: boolean }];
}

const STOP_GRACE_MS = 3000;
const LOG_LINES = 50;

export class CellProcess extends EventEmitter<CellProcessEvents> {
  state: CellState = 'stopped';
  child: ChildProcess | null = null;
  restarts = 0;
  startedAt: number | null = null;
  lastExit: ExitInfo | null = null;
  readonly log: string[] = [];
  private readonly budget: RestartBudget;
  private restartTimer: NodeJS.Timeout | null = null;
  private exited: Promise<void> = Promise.resolve();

  constructor(readonly spec: ProcessSpec) {
    super();
    this.budget = new RestartBudget(spec.restart);
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  private setState(state: CellState): void {
    const previous = this.state;
    if (previous === state) return;
    this.state = state;
    this.emit('state', { state, previous });
  }

  start(): void {
    if (this.child) return;
    this.clearRestart();
    const s = this.spec;
    const [file, ...args] = launchArgv(s);
    this.setState('starting');
    const child = spawn(file, args, {
      env: s.env,
      ...(s.cwd !== undefined ? { cwd: s.cwd } : {}),
      stdio: ['ignore', 'pipe', 'pipe'],
      // Own process group: stop() signals the whole group, grandchildren included.
      detached: true,
    });
    this.child = child;
    this.startedAt = Date.now();
    let spawnError: Error | null = null;
    this.exited = new Promise<void>((resolve) => {
      child.once('error', (err) => {
        // ENOENT etc.: the child never ran; 'close' follows.
        spawnError = err;
        this.pushLog('stderr', `cannot start ${programOf(s)}: ${err.message}`);
      });
      child.once('close', (code, signal) => {
        this.onExit(child, spawnError ? 127 : code, signal);
        resolve();
      });
    });
    for (const stream of ['stdout', 'stderr'] as const) {
      let partial = '';
      child[stream]!.setEncoding('utf8');
      child[stream]!.on('data', (d: string) => {
        const lines = (partial + d).split('\n');
        partial = lines.pop()!;
        for (const line of lines) this.pushLog(stream, line);
      });
    }
    child.once('spawn', () => {
      if (this.child === child && this.state === 'starting') this.setState('running');
    });
  }

  private pushLog(stream: 'stdout' | 'stderr', line: string): void {
    this.log.push(line);
    if (this.log.length > LOG_LINES) this.log.shift();
    this.emit('output', { stream, line });
  }

  /** The one place an exit is recorded (status shows it as the last exit). */
  private recordExit(code: number | null, signal: NodeJS.Signals | null): ExitInfo {
    this.lastExit = { code, signal, at: Date.now() };
    return this.lastExit;
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = null;
    // Whatever the cell left in its group goes with it.
    killGroup(child.pid, 'SIGKILL');
    const info = this.recordExit(code, signal);
    if (this.state === 'stopping') {
      this.setState('stopped');
      this.emit('exit', { ...info, restarting: false });
      return;
    }
    const failed = code !== 0 || signal !== null;
    const decision = this.budget.decide(failed, info.at);
    if (!decision.restart) {
      if (decision.why === 'budget') {
        const { windowMs } = this.spec.restart;
        this.pushLog('stderr', `ivshm: ${this.spec.name} exited ${this.budget.recent} times within ${windowMs} ms; not restarting (restart.maxRestarts)`);
      }
      this.setState(failed || decision.why === 'budget' ? 'failed' : 'exited');
      this.emit('exit', { ...info, restarting: false });
      return;
    }
    this.restarts++;
    this.setState('restarting');
    this.emit('exit', { ...info, restarting: true });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.state === 'restarting') this.start();
    }, decision.delayMs);
  }

  private clearRestart(): void {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
  }

  /** SIGTERM the group, SIGKILL after a grace period; resolves when it is gone. */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    this.clearRestart();
    const child = this.child;
    if (!child) {
      if (this.state !== 'stopped') this.setState('stopped');
      return;
    }
    this.setState('stopping');
    killGroup(child.pid, 'SIGTERM');
    const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Clear the restart history (a manual start or restart gives a fresh budget). */
  resetBudget(): void {
    this.budget.reset();
  }
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    /* group already gone */
  }
}
