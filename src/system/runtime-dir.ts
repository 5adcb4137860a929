// Where a running system keeps its sockets, and how a client finds it
// (docs/supervisor.md, "Runtime directory"):
//   <base>/<system>/owner.json           what the supervisor created (see owned-dir.ts)
//   <base>/<system>/control.sock         admin requests (status, cell stop/start/restart)
//   <base>/<system>/report.sock          counters reported by cells
//   <base>/<system>/links/<link>.sock    one broker per link
// <base> is /run/ivshm as root, else $XDG_RUNTIME_DIR/ivshm or /tmp/ivshm-<uid>;
// IVSHM_RUNTIME_DIR overrides it (tests use a private one).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../errors.js';

export function runtimeBase(env: NodeJS.ProcessEnv = process.env): string {
  if (env.IVSHM_RUNTIME_DIR) return env.IVSHM_RUNTIME_DIR;
  if (process.getuid?.() === 0) return '/run/ivshm';
  if (env.XDG_RUNTIME_DIR) return path.join(env.XDG_RUNTIME_DIR, 'ivshm');
  return path.join(os.tmpdir(), `ivshm-${process.getuid?.() ?? 'user'}`);
}

/**
 * Whether `name` can name an entry of a directory: one path component, not
 * "." or "..", so the path made from it stays inside that directory.
 */
export const isPathComponent = (name: string): boolean =>
  name.length > 0 && name.length <= 255 && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');

export function systemDir(name: string, base = runtimeBase()): string {
  if (!isPathComponent(name)) {
    throw new ConfigError(`system name ${JSON.stringify(name)} cannot name a runtime directory: it must be one path component (no "/", not "." or "..")`);
  }
  return path.join(base, name);
}

export const CONTROL_SOCKET = 'control.sock';
export const REPORT_SOCKET = 'report.sock';
export const LINKS_DIR = 'links';
export const linkSocketName = (link: string): string => `${LINKS_DIR}/${link}.sock`;

export const controlSocket = (dir: string): string => path.join(dir, CONTROL_SOCKET);
export const reportSocket = (dir: string): string => path.join(dir, REPORT_SOCKET);
export const linkSocket = (dir: string, link: string): string => path.join(dir, linkSocketName(link));

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
