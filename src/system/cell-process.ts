// One supervised process: a cell, or a helper such as a TAP bridge. Runs in
// its own process group so that stopping it also stops whatever it spawned,
// and applies the restart policy when it exits on its own (the root cell
// monitoring the others, ivshmem-v2-notes.md e; issue 6 item 3).
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import type { RestartConfig } from './config-schema.js';

export type CellState = 'stopped' | 'starting' | 'running' | 'stopping' | 'restarting' | 'exited' | 'failed';

export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** Network namespace to run in (via `ip netns exec`). */
  netns?: string;
  restart: RestartConfig;
}

export interface ExitInfo {
  code: number | null;
  signal: string | null;
  at: number;
}

export interface CellProcessEvents {
  state: [{ state: CellState; previous: CellState }];
  output: [{ stream: 'stdout' | 'stderr'; line: string }];
  exit: [ExitInfo & { restarting: boolean }];
}

const STOP_GRACE_MS = 3000;
const PDEATHSIG = ['/usr/bin/setpriv', '/bin/setpriv'].some((p) => fs.existsSync(p));
const MAX_DELAY_MS = 30_000;
const LOG_LINES = 50;

export class CellProcess extends EventEmitter<CellProcessEvents> {
  state: CellState = 'stopped';
  child: ChildProcess | null = null;
  restarts = 0;
  startedAt: number | null = null;
  lastExit: ExitInfo | null = null;
  readonly log: string[] = [];
  private restartTimes: number[] = [];
  private restartTimer: NodeJS.Timeout | null = null;
  private exited: Promise<void> = Promise.resolve();

  constructor(readonly spec: ProcessSpec) {
    super();
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
    const command = s.command === 'node' ? process.execPath : s.command;
    let [file, args] = s.netns ? ['ip', ['netns', 'exec', s.netns, command, ...s.args]] : [command, s.args];
    // If the supervisor is killed outright (SIGKILL: no cleanup code runs),
    // the kernel kills the cell too (PR_SET_PDEATHSIG, kept across exec).
    if (PDEATHSIG) [file, args] = ['setpriv', ['--pdeathsig', 'KILL', '--', file, ...args]];
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
        this.pushLog('stderr', `cannot start ${command}: ${err.message}`);
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

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = null;
    // Whatever the cell left in its group goes with it.
    killGroup(child.pid, 'SIGKILL');
    const info: ExitInfo = { code, signal, at: Date.now() };
    this.lastExit = info;
    if (this.state === 'stopping') {
      this.setState('stopped');
      this.emit('exit', { ...info, restarting: false });
      return;
    }
    const failed = code !== 0 || signal !== null;
    const { policy, maxRestarts, windowMs, delayMs } = this.spec.restart;
    const wants = policy === 'always' || (policy === 'on-failure' && failed);
    const now = Date.now();
    this.restartTimes = this.restartTimes.filter((t) => now - t < windowMs);
    if (!wants) {
      this.setState(failed ? 'failed' : 'exited');
      this.emit('exit', { ...info, restarting: false });
      return;
    }
    if (this.restartTimes.length >= maxRestarts) {
      this.pushLog('stderr', `ivshm: ${this.spec.name} exited ${this.restartTimes.length} times within ${windowMs} ms; not restarting (restart.maxRestarts)`);
      this.setState('failed');
      this.emit('exit', { ...info, restarting: false });
      return;
    }
    const delay = Math.min(MAX_DELAY_MS, delayMs * 2 ** this.restartTimes.length);
    this.restartTimes.push(now);
    this.restarts++;
    this.setState('restarting');
    this.emit('exit', { ...info, restarting: true });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.state === 'restarting') this.start();
    }, delay);
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
    this.restartTimes = [];
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
