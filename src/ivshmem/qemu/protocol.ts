// QEMU's ivshmem server protocol, version 0 (docs/qemu.md §1):
// AF_UNIX SOCK_STREAM, server -> client only, every message exactly 8 bytes
// (a signed 64-bit little-endian integer) carrying at most one fd.
import { closeFd, receiveMessage, sendMessage } from '../../sys/index.js';

/** IVSHMEM_PROTOCOL_VERSION of QEMU's include/hw/misc/ivshmem.h (docs/qemu.md §2). */
export const IVSHMEM_PROTOCOL_VERSION = 0;
export const IVSHMEM_MSG_SIZE = 8;
/** The message value that carries the shared memory fd (docs/qemu.md §2, step 3). */
export const IVSHMEM_SHM_MSG = -1;
/** Peer IDs fit the 16-bit peer field of the Doorbell register (docs/qemu.md §4). */
export const IVSHMEM_MAX_ID = 0xffff;
/** Vectors per peer: the contrib server's limit (docs/qemu.md §8). */
export const IVSHMEM_MAX_VECTORS = 64;

const out = Buffer.alloc(IVSHMEM_MSG_SIZE);

/** One sendmsg of an 8-byte message with at most one fd; returns 0 or an errno. */
export function sendQemuMessage(sock: number, value: number, fd = -1): number {
  out.writeBigInt64LE(BigInt(value));
  return sendMessage(sock, out, fd >= 0 ? [fd] : []);
}

export interface QemuMessage {
  readonly value: bigint;
  readonly fds: number[];
}

export type ReadResult = { kind: 'message'; msg: QemuMessage } | { kind: 'again' } | { kind: 'eof' } | { kind: 'error'; errno: number } | { kind: 'fds-lost' };

/**
 * Reassembles 8-byte messages from a non-blocking stream socket. Each recvmsg
 * asks only for the bytes missing from the current message, so an fd always
 * stays with the message it came with (docs/qemu.md §1); a sender that splits a message is tolerated, and the fds of every
 * piece belong to that message.
 */
export class QemuMessageReader {
  private readonly pending = Buffer.alloc(IVSHMEM_MSG_SIZE);
  private have = 0;
  private fds: number[] = [];

  constructor(private readonly sock: number) {}

  next(): ReadResult {
    for (;;) {
      const r = receiveMessage(this.sock, IVSHMEM_MSG_SIZE - this.have);
      if (r.kind !== 'message') return r;
      this.fds.push(...r.fds);
      // MSG_CTRUNC: the kernel dropped fds (our limit of open files, or more
      // than fit the control buffer); the message can no longer be trusted.
      if (r.truncated) return { kind: 'fds-lost' };
      r.data.copy(this.pending, this.have);
      this.have += r.data.length;
      if (r.data.length === 0) continue; // fds without bytes: keep them with the message
      if (this.have < IVSHMEM_MSG_SIZE) continue;
      const msg = { value: this.pending.readBigInt64LE(0), fds: this.fds };
      this.have = 0;
      this.fds = [];
      return { kind: 'message', msg };
    }
  }

  /** Close fds of a half-read message (on close). */
  dispose(): void {
    for (const fd of this.fds) closeFd(fd);
    this.fds = [];
  }
}
