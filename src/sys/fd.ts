// Plain file-descriptor helpers.
import { c, fail, K, E, errno } from './libc.js';

export function closeFd(fd: number): void {
  if (fd >= 0) c.close(fd);
}

/** Open a path (used to reopen /proc/self/fd/N in isolation tests and for /dev/net/tun). */
export function openPath(path: string, flags: number): number {
  const fd = c.open(path, flags | K.O_CLOEXEC, 0) as number;
  if (fd < 0) fail('open', path);
  return fd;
}

/** Try to open; returns the errno on failure instead of throwing. */
export function tryOpen(path: string, flags: number): { fd: number; errno: number } {
  const fd = c.open(path, flags | K.O_CLOEXEC, 0) as number;
  return { fd, errno: fd < 0 ? errno() : 0 };
}

/** write(2) of a whole buffer; returns the errno on failure (EAGAIN etc.), 0 on success. */
export function writeFd(fd: number, data: Uint8Array, length = data.byteLength): number {
  const n = c.write(fd, data, length) as number;
  return n < 0 ? errno() : 0;
}

/** read(2) into a buffer; returns bytes read, or -errno. */
export function readFd(fd: number, into: Uint8Array, length = into.byteLength): number {
  const n = c.read(fd, into, length) as number;
  return n < 0 ? -errno() : n;
}

export function setNonBlocking(fd: number): void {
  const fl = c.fcntl(fd, K.F_GETFL, 0) as number;
  if (fl < 0 || (c.fcntl(fd, K.F_SETFL, fl | K.O_NONBLOCK) as number) < 0) fail('fcntl', `fd ${fd}, O_NONBLOCK`);
}

export { E };
