// memfd sections with seals (docs/spec.md §1.1, docs/design.md §2: one memfd per
// section; F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL on all, F_SEAL_FUTURE_WRITE
// once the owner has mapped).
import { c, errno, fail, K } from './libc.js';

export const SEAL = {
  SEAL: K.F_SEAL_SEAL,
  SHRINK: K.F_SEAL_SHRINK,
  GROW: K.F_SEAL_GROW,
  WRITE: K.F_SEAL_WRITE,
  FUTURE_WRITE: K.F_SEAL_FUTURE_WRITE,
} as const;


/** Create a zero-filled sealable memfd of `size` bytes, named for /proc/PID/fd. */
export function memfdCreate(name: string, size: number): number {
  // The kernel limits memfd names to 249 bytes; longer names fail with EINVAL.
  const fd = c.memfd_create(name.slice(0, 249), K.MFD_CLOEXEC | K.MFD_ALLOW_SEALING) as number;
  if (fd < 0) fail('memfd_create', name);
  if ((c.ftruncate(fd, size) as number) < 0) {
    c.close(fd);
    fail('ftruncate', `${name}, ${size} bytes`, 'is /dev/shm or memory full?');
  }
  return fd;
}

export function addSeals(fd: number, seals: number): void {
  if ((c.fcntl(fd, K.F_ADD_SEALS, seals) as number) < 0) fail('fcntl', `F_ADD_SEALS 0x${seals.toString(16)} on fd ${fd}`);
}

export function getSeals(fd: number): number {
  const s = c.fcntl(fd, K.F_GET_SEALS, 0) as number;
  if (s < 0) fail('fcntl', `F_GET_SEALS on fd ${fd}`);
  return s;
}

/** Resize (used by isolation tests to prove the seals hold); returns errno or 0. */
export function tryTruncate(fd: number, size: number): number {
  return (c.ftruncate(fd, size) as number) < 0 ? errno() : 0;
}

/** Size of a file (an shm fd received from a QEMU server), via lseek(SEEK_END). */
export function fdSize(fd: number): number {
  const n = Number(c.lseek(fd, 0, 2));
  if (n < 0) fail('lseek', `fd ${fd}, SEEK_END`);
  return n;
}

/**
 * A read-only fd for the same memfd (a new open file description through
 * /proc/self/fd). Alone it does not stop a holder from reopening the file
 * read-write; F_SEAL_FUTURE_WRITE does (docs/design.md §3).
 */
export function readOnlyFd(fd: number): number {
  const ro = c.open(`/proc/self/fd/${fd}`, K.O_RDONLY | K.O_CLOEXEC, 0) as number;
  if (ro < 0) fail('open', `/proc/self/fd/${fd} read-only`);
  return ro;
}
