// Shared by the supervisor and dashboard tests: run `ivshm up` as a real
// child process with a private runtime directory and talk to it through the
// real CLI and control socket.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { controlRequest, controlSocket } from '../../src/system/runtime-dir.js';
import type { SystemStatus } from '../../src/system/supervisor.js';
import { until } from '../helpers/wait.js';

export const root = new URL('../../../', import.meta.url).pathname;
export const cli = path.join(root, 'dist/src/cli/main.js');

export interface UpProcess {
  child: ChildProcess;
  base: string;
  dir: string;
  output: () => string;
  status(): Promise<SystemStatus>;
  ivshm(...args: string[]): { status: number | null; stdout: string; stderr: string };
  waitFor<T>(what: string, probe: (st: SystemStatus) => T | undefined | false, timeoutMs?: number): Promise<T>;
  stop(): Promise<number | null>;
}

export async function startUp(file: string, system: string, extra: string[] = [], base = fs.mkdtempSync(path.join(os.tmpdir(), 'ivshm-test-'))): Promise<UpProcess> {
  const env = { ...process.env, IVSHM_RUNTIME_DIR: base };
  const child = spawn(process.execPath, [cli, 'up', file, ...extra], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const dir = path.join(base, system);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const up: UpProcess = {
    child,
    base,
    dir,
    output: () => out,
    status: () => controlRequest<SystemStatus>(controlSocket(dir), { op: 'status' }),
    ivshm: (...args) => {
      const r = spawnSync(process.execPath, [cli, ...args], { env, encoding: 'utf8', timeout: 30_000 });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    },
    async waitFor(what, probe, timeoutMs = 20000) {
      let last: SystemStatus | null = null;
      const v = await until(
        async () => {
          try {
            last = await up.status();
            const hit = probe(last);
            return hit === undefined || hit === false ? undefined : { hit };
          } catch {
            return undefined; // not listening yet
          }
        },
        what,
        {
          timeoutMs,
          intervalMs: 100,
          state: () => `status ${JSON.stringify(last?.cells)}\n${out}`,
          abort: () => child.exitCode !== null && `ivshm up exited (${child.exitCode})`,
        },
      );
      return v.hit;
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const code = await exited;
      fs.rmSync(base, { recursive: true, force: true });
      return code;
    },
  };
  await up.waitFor('the control socket', (st) => st.cells.length > 0);
  return up;
}

/** Pids of live processes whose command line contains `needle`. */
export function processesWith(needle: string): number[] {
  const pids: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(needle)) pids.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return pids;
}

/** Open memfds named ivshm:<link>:... in any process. */
export function memfdsOf(link: string): string[] {
  const found: string[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${p}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const target = fs.readlinkSync(`/proc/${p}/fd/${fd}`);
        if (target.startsWith(`/memfd:ivshm:${link}:`)) found.push(`${p}:${target}`);
      } catch {
        /* closed */
      }
    }
  }
  return found;
}

export const isRoot = (): boolean => process.getuid?.() === 0;

/**
 * A copy of a fixture with its names changed, so test files that run in
 * parallel never share link names (memfd names) or systems. Relative cell
 * paths are made absolute.
 */
export function fixtureCopy(name: string, replace: Record<string, string>): string {
  let text = fs.readFileSync(path.join(root, 'test/fixtures', name), 'utf8');
  text = text.replaceAll('../../dist/', `${path.join(root, 'dist')}/`);
  for (const [from, to] of Object.entries(replace)) text = text.replaceAll(from, to);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ivshm-fixture-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}
