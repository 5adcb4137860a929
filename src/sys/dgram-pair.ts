// AF_UNIX datagram socket pairs (SOCK_DGRAM), non-blocking: the baseline a
// user would pick to move Ethernet-sized frames between two processes
// (bench/frames.ts). Send and receive one datagram with writeFd / readFd.
import { c, fail, K } from './libc.js';

export function unixDatagramPair(): [number, number] {
  const sv = [0, 0];
  if ((c.socketpair(K.AF_UNIX, K.SOCK_DGRAM | K.SOCK_CLOEXEC | K.SOCK_NONBLOCK, 0, sv) as number) < 0) fail('socketpair', 'AF_UNIX SOCK_DGRAM');
  return [sv[0]!, sv[1]!];
}
