// Where a running system keeps its sockets, and how the CLI finds it.
//   <base>/<system>/control.sock   admin requests (status, cell stop/start/restart)
//   <base>/<system>/report.sock    counters reported by cells
//   <base>/<system>/links/<link>.sock   one broker per link
// <base> is /run/ivshm as root, else $XDG_RUNTIME_DIR/ivshm or /tmp/ivshm-<uid>;
// IVSHM_RUNTIME_DIR overrides it (tests use a private one).
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, ProtocolError, TimeoutError } from '../errors.js';

export function runtimeBase(env: NodeJS.ProcessEnv = process.env): string {
  if (env.IVSHM_RUNTIME_DIR) return env.IVSHM_RUNTIME_DIR;
  if (process.getuid?.() === 0) return '/run/ivshm';
  if (env.XDG_RUNTIME_DIR) return path.join(env.XDG_RUNTIME_DIR, 'ivshm');
  return path.join(os.tmpdir(), `ivshm-${process.getuid?.() ?? 'user'}`);
}

export const systemDir = (name: string, base = runtimeBase()): string => path.join(base, name);
export const controlSocket = (dir: string): string => path.join(dir, 'control.sock');
export const reportSocket = (dir: string): string => path.join(dir, 'report.sock');
export const linkSocket = (dir: string, link: string): string => path.join(dir, 'links', `${link}.sock`);

/** Systems with a control socket under the base directory. */
export function runningSystems(base = runtimeBase()): string[] {
  try {
    return fs
      .readdirSync(base)
      .filter((n) => fs.existsSync(controlSocket(path.join(base, n))))
      .sort();
  } catch {
    return [];
  }
}

/** The control socket of the named system, or of the only one running. */
export function findControlSocket(opts: { system?: string; control?: string; runtimeDir?: string }): string {
  if (opts.control) return opts.control;
  const base = opts.runtimeDir ?? runtimeBase();
  if (opts.system) return controlSocket(systemDir(opts.system, base));
  const names = runningSystems(base);
  if (names.length === 1) return controlSocket(systemDir(names[0]!, base));
  if (names.length === 0) throw new ConfigError(`no system is running (nothing in ${base}); start one with ivshm up FILE`);
  throw new ConfigError(`several systems are running (${names.join(', ')}); choose one with --system NAME`);
}

/** One request on the control socket: a JSON line out, a JSON line back. */
export function controlRequest<T = unknown>(socket: string, request: Record<string, unknown>, timeoutMs = 15000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const s = net.createConnection(socket);
    let buf = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new TimeoutError(`the supervisor at ${socket} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    s.on('connect', () => s.write(`${JSON.stringify(request)}\n`));
    s.on('data', (d) => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      s.end();
      try {
        const reply = JSON.parse(buf.slice(0, nl)) as { ok: boolean; error?: string; result?: T };
        if (reply.ok) resolve(reply.result as T);
        else reject(new ConfigError(reply.error ?? 'the supervisor refused the request'));
      } catch {
        reject(new ProtocolError(`the supervisor at ${socket} sent an unreadable answer`));
      }
    });
    s.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? 'is not running' : `cannot be reached (${err.code})`;
      reject(new ConfigError(`the supervisor at ${socket} ${why}; start the system with ivshm up FILE`));
    });
  });
}
