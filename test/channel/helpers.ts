// Test helpers for channel tests (in-process links).
import { createHash } from 'node:crypto';
import { LocalLink } from '../../src/ivshmem/local-link.js';
import { IVSHM_PROTO_CHANNEL } from '../../src/channel/layout.js';

export function link(peers = 2, outputSize: string | number = '64K'): LocalLink {
  return new LocalLink({ peers, outputSize, vectors: 2, protocol: IVSHM_PROTO_CHANNEL });
}

/** Deterministic payload i of a stream: size varies so records wrap at every offset. */
export function payload(stream: number, i: number, maxSize = 3000): Buffer {
  const size = (i * 7919 + stream * 104729) % maxSize;
  const b = Buffer.alloc(size + 8);
  b.writeUInt32LE(stream, 0);
  b.writeUInt32LE(i, 4);
  for (let k = 8; k < b.length; k++) b[k] = (i + k * 31 + stream) & 0xff;
  return b;
}

export const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

export const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));
