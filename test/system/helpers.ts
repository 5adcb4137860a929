// Shared by the supervisor and dashboard tests: run `ivshm up` as a real
// child process with a private runtime directory and talk to it through the
// real CLI and control socket.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { checkSystemText } from '../../src/system/check.js';
import { controlRequest } from '../../src/system/control-client.js';
import { controlSocket } from '../../src/system/runtime-dir.js';
import type { SystemStatus } from '../../src/system/status.js';
import { Supervisor } from '../../src/system/supervisor.js';
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
    status: () => controlRequest(controlSocket(dir), { op: 'status' }),
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

/**
 * A Supervisor in this process (the library, not the CLI) for a system of
 * three idle cells a, b, c and links <prefix>-ab, <prefix>-bc; `done` stops it
 * and removes its scratch directory.
 */
export async function startSupervisor(name: string, prefix: string): Promise<{ sup: Supervisor; done: () => Promise<void> }> {
  const text = `
name: ${name}
cells:
  - { name: a, command: "true", autostart: false }
  - { name: b, command: "true", autostart: false }
  - { name: c, command: "true", autostart: false }
links:
  - { name: ${prefix}-ab, kind: raw, outputSize: 4K, members: [{ cell: a }, { cell: b }] }
  - { name: ${prefix}-bc, kind: raw, outputSize: 4K, members: [{ cell: b }, { cell: c }] }
`;
  const r = checkSystemText(text, path.join(os.tmpdir(), `${name}.yaml`), { shmFree: null });
  assert.deepEqual(r.problems, []);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'ivshm-lib-'));
  const sup = new Supervisor(r.system!, { dir: path.join(scratch, name), log: () => {} });
  await sup.start();
  return {
    sup,
    done: async () => {
      await sup.stop();
      fs.rmSync(scratch, { recursive: true, force: true });
    },
  };
}

/** Connect to a UNIX socket, send `data`, close; resolves when the connection is gone. */
export function sendRaw(socket: string, data: string): Promise<void> {
  return new Promise((resolve) => {
    const s = net.createConnection(socket, () => s.end(data));
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
}

/** Send one line and resolve with the first line that comes back. */
export function askRaw(socket: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const s = net.createConnection(socket, () => s.write(`${line}\n`));
    s.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\n')) {
        s.end();
        resolve(buf.slice(0, buf.indexOf('\n')));
      }
    });
    s.on('error', reject);
  });
}
