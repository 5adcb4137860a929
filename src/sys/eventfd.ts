// eventfd doorbells: write a u64 1 to ring, drain by reading until EAGAIN.
import { c, fail, K, errno, E } from './libc.js';

const ONE = new BigUint64Array([1n]);
const ONE_BYTES = new Uint8Array(ONE.buffer);
const scratch = new Uint8Array(8);
const scratchView = new BigUint64Array(scratch.buffer);

export function eventfdCreate(): number {
  const fd = c.eventfd(0, K.EFD_NONBLOCK | K.EFD_CLOEXEC) as number;
  if (fd < 0) fail('eventfd', 'doorbell', 'too many open files? raise ulimit -n');
  return fd;
}

/** Ring: add 1 to the counter. Returns false when the fd is gone (EBADF) or saturated. */
export function eventfdSignal(fd: number): boolean {
  return (c.write(fd, ONE_BYTES, 8) as number) === 8;
}

/** Read and reset the counter; 0 when nothing was pending (EAGAIN). */
export function eventfdDrain(fd: number): number {
  const n = c.read(fd, scratch, 8) as number;
  if (n === 8) return Number(scratchView[0]);
  const e = errno();
  if (e === E.EAGAIN) return 0;
  return 0;
}
