// Network namespaces: create and delete named ones (/run/netns/NAME, through
// iproute2's `ip netns`, so they interoperate with every other tool), the
// command line that runs a program inside one, and a short synchronous
// section of code run inside one before coming back.
//
// Why this works from Node: setns(CLONE_NEWNET) changes the namespace of the
// calling *thread* only, and is allowed in multi-threaded processes (unlike
// user or mount namespaces). Sockets and TAP fds keep the namespace they were
// created in, so the fds opened inside `withNetns` stay valid there after the
// main thread has switched back. Nothing asynchronous may run inside: the
// section must be synchronous, so no other JavaScript runs in the wrong
// namespace.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { InvalidArgumentError, NotSupportedError, OsError } from '../errors.js';
import { checkName } from '../units.js';
import { c, errno, errnoName, E, fail, K, osError } from './libc.js';
import { closeFd } from './fd.js';

export const NETNS_RUN_DIR = '/run/netns';

// A namespace name becomes a path under /run/netns: the one name rule.
export function checkNetnsName(name: string): void {
  checkName(name, 'network namespace');
}

export const netnsPath = (name: string): string => `${NETNS_RUN_DIR}/${name}`;

export function netnsExists(name: string): boolean {
  checkNetnsName(name);
  return fs.existsSync(netnsPath(name));
}

/** Run `ip ARGS`; a failure names the command and what `ip` said. */
function ip(args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string; status?: number };
    if (e.code === 'ENOENT') throw new NotSupportedError('the `ip` command (iproute2) is needed for network namespaces: install iproute2');
    const said = (e.stderr ?? e.message).toString().trim();
    const code = /permission denied|operation not permitted/i.test(said) ? E.EPERM : 0;
    throw osError(`ip ${args[0]}`, code, `ip ${args.join(' ')} failed: ${said}${code ? '; network namespaces need root' : ''}`);
  }
}

/**
 * Create network namespace `name` with its loopback up. An existing one is
 * refused: it belongs to someone else, and whoever creates a namespace is the
 * one who deletes it.
 */
export function createNetns(name: string): void {
  if (netnsExists(name)) {
    throw new InvalidArgumentError(`network namespace ${name} already exists; remove it (ip netns del ${name}) or choose another name`);
  }
  ip(['netns', 'add', name]);
  try {
    ip(['-n', name, 'link', 'set', 'lo', 'up']);
  } catch (err) {
    deleteNetns(name);
    throw err;
  }
}

/** Delete network namespace `name` (its interfaces go with it). */
export function deleteNetns(name: string): void {
  checkNetnsName(name);
  ip(['netns', 'del', name]);
}

/** The command line that runs `argv` inside network namespace `name`. */
export function inNetnsArgv(name: string, argv: readonly string[]): string[] {
  checkNetnsName(name);
  return ['ip', 'netns', 'exec', name, ...argv];
}

function openNs(path: string, what: string, hint: string): number {
  const fd = c.open(path, K.O_RDONLY | K.O_CLOEXEC, 0) as number;
  if (fd < 0) {
    const e = errno();
    if (e === E.ENOENT) {
      throw new InvalidArgumentError(`${what} does not exist (${path}); ${hint}`);
    }
    fail('open', path, hint);
  }
  return fd;
}

/**
 * Run `fn` with the calling thread inside network namespace `name` (or in the
 * current one when `name` is undefined), then switch back, also on throw.
 */
export function withNetns<T>(name: string | undefined, fn: () => T): T {
  if (name === undefined) return fn();
  checkNetnsName(name);
  const home = openNs('/proc/thread-self/ns/net', 'this thread\'s network namespace', 'is /proc mounted?');
  let target = -1;
  try {
    target = openNs(netnsPath(name), `network namespace ${name}`, `create it with: ip netns add ${name}`);
    if ((c.setns(target, K.CLONE_NEWNET) as number) < 0) {
      const code = errno();
      const hint = code === E.EPERM ? 'entering a network namespace needs root (CAP_SYS_ADMIN)' : '';
      throw osError('setns', code, `setns(${netnsPath(name)}) failed: ${errnoName(code)}${hint ? `; ${hint}` : ''}`);
    }
    try {
      return fn();
    } finally {
      // Failing to return would leave the whole main thread in the wrong
      // namespace: nothing sensible can continue, so say so loudly.
      if ((c.setns(home, K.CLONE_NEWNET) as number) < 0) {
        const code = errno();
        process.emitWarning(`ivshm: could not return to the original network namespace: ${errnoName(code)}`);
        throw new OsError('setns', code, `setns back to the original network namespace failed: ${errnoName(code)}`);
      }
    }
  } finally {
    closeFd(target);
    closeFd(home);
  }
}
