// Test helpers: real `ivshm peer --json` processes driven through stdin and
// read through their JSON event lines, and unique temporary socket paths.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { until, Waker } from './wait.js';

/** dist/test/helpers -> dist/src/cli/main.js */
export const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;
export const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;

let seq = 0;
const tmpDirs: string[] = [];
process.on('exit', () => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});
/** A fresh socket path in a private temp dir, removed at exit. */
export function tmpSocket(tag: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ivshm-${tag}-`));
  tmpDirs.push(dir);
  return path.join(dir, `s${seq++}.sock`);
}

export type PeerEvent = Record<string, unknown> & { event: string };

export class PeerProc {
  readonly child: ChildProcess;
  readonly events: PeerEvent[] = [];
  readonly stderr: string[] = [];
  private readonly waker = new Waker();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(child: ChildProcess) {
    this.child = child;
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line) as PeerEvent);
      } catch {
        this.events.push({ event: 'non-json', line });
      }
      this.waker.wake();
    });
    child.stderr!.on('data', (d: Buffer) => this.stderr.push(d.toString()));
    this.exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
    void this.exited.then(() => this.waker.wake());
  }

  /** Start `ivshm peer --json` (or another CLI command line) and wait for its 'joined' line. */
  static async start(socket: string, opts: { id?: number; args?: string[]; wait?: boolean } = {}): Promise<PeerProc> {
    const args = opts.args ?? ['peer', '--socket', socket, '--json', ...(opts.id === undefined ? [] : ['--id', String(opts.id)])];
    const p = new PeerProc(spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] }));
    live.add(p);
    if (opts.wait !== false) await p.waitFor((e) => e.event === 'joined', 'joined');
    return p;
  }

  get id(): number {
    return this.events.find((e) => e.event === 'joined')!.id as number;
  }

  cmd(line: string): void {
    this.child.stdin!.write(line + '\n');
  }

  /** Wait for the first event at or after `from` that satisfies `pred`. */
  async waitFor(pred: (e: PeerEvent) => boolean, what: string, timeoutMs = 10000, from = 0): Promise<PeerEvent> {
    return until(() => this.events.slice(from).find(pred), what, {
      timeoutMs,
      waker: this.waker,
      state: () => ({ events: this.events.slice(-8) }),
      abort: () => (this.child.exitCode !== null || this.child.signalCode !== null) && `peer process exited (${this.child.exitCode ?? this.child.signalCode}); stderr: ${this.stderr.join('')}`,
    });
  }

  /** Send a command and wait for its reply line (ok / read / dump / error). */
  async run(line: string): Promise<PeerEvent> {
    const from = this.events.length;
    this.cmd(line);
    return this.waitFor((e) => ['ok', 'read', 'dump', 'error', 'help'].includes(e.event), `reply to "${line}"`, 10000, from);
  }

  count(pred: (e: PeerEvent) => boolean): number {
    return this.events.filter(pred).length;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 3000);
      await this.exited;
      clearTimeout(t);
    }
    live.delete(this);
  }
}

const live = new Set<PeerProc>();
/** Kill every peer process a test started (use in t.after / after()). */
export async function stopAllPeers(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop()));
}
