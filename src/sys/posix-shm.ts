// POSIX shared memory objects (/dev/shm/NAME), for `ivshm qemu-server --shm`:
// QEMU's own ivshmem-server keeps its memory in such an object so other tools
// can open it by name (docs/qemu.md §6, §8). glibc's shm_open is
// open(2) under /dev/shm, so no extra binding is needed.
import fs from 'node:fs';
import { checkName } from '../units.js';
import { c, fail, K } from './libc.js';

const O_CREAT = 0o100;
const O_EXCL = 0o200;
const F_DUPFD_CLOEXEC = 1030;

/** Validate a shm object name (the one name rule, src/units.ts; shm_open's leading '/' is allowed). */
export function shmPath(name: string): string {
  const bare = name.startsWith('/') ? name.slice(1) : name;
  checkName(bare, 'shared memory object');
  return `/dev/shm/${bare}`;
}

/**
 * Create /dev/shm/NAME exclusively (mode 0600) and size it. An existing object
 * is refused rather than reused: it may belong to a running server.
 */
export function shmCreate(name: string, size: number): { fd: number; path: string } {
  const path = shmPath(name);
  const fd = c.open(path, K.O_RDWR | O_CREAT | O_EXCL | K.O_CLOEXEC, 0o600) as number;
  if (fd < 0) fail('open', path, 'if a stale object is left over, remove it or choose another name');
  if ((c.ftruncate(fd, size) as number) < 0) {
    c.close(fd);
    fs.rmSync(path, { force: true });
    fail('ftruncate', `${path}, ${size} bytes`, 'is /dev/shm full?');
  }
  return { fd, path };
}

/** A second fd for the same open file description (close-on-exec). */
export function dupFd(fd: number): number {
  const d = c.fcntl(fd, F_DUPFD_CLOEXEC, 0) as number;
  if (d < 0) fail('fcntl', `F_DUPFD_CLOEXEC of fd ${fd}`);
  return d;
}

/** What an fd refers to, as /proc/self/fd shows it ("anon_inode:[eventfd]", "/memfd:x (deleted)"), or null. */
export function fdTarget(fd: number): string | null {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
}
