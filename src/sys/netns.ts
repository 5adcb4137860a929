// Network namespaces: run a short synchronous section of code inside a named
// namespace (/run/netns/NAME, as `ip netns add` creates them) and come back.
//
// Why this works from Node: setns(CLONE_NEWNET) changes the namespace of the
// calling *thread* only, and is allowed in multi-threaded processes (unlike
// user or mount namespaces). Sockets and TAP fds keep the namespace they were
// created in, so the fds opened inside `withNetns` stay valid there after the
// main thread has switched back. Nothing asynchronous may run inside: the
// section must be synchronous, so no other JavaScript runs in the wrong
// namespace.
import fs from 'node:fs';
import { InvalidArgumentError, OsError } from '../errors.js';
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
