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

/** Fill `b` as pub-sub sample `seq` of the cross-process tests: seq at both ends, (seq & 0xff) between. */
export function pubSample(b: Buffer, seq: number): void {
  b.fill(seq & 0xff);
  b.writeUInt32LE(seq, 0);
  b.writeUInt32LE(seq, b.length - 4);
}

/** Is `b` intact sample `seq` (pubSample)? Checks both ends and every 256th byte between. */
export function isPubSample(b: Uint8Array, seq: number): boolean {
  const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (v.readUInt32LE(0) !== seq || v.readUInt32LE(v.length - 4) !== seq) return false;
  for (let i = 4; i < v.length - 4; i += 256) if (v[i] !== (seq & 0xff)) return false;
  return true;
}

/**
 * An assertion that fails inside a listener is an exception the channel
 * layer reports as an 'error' event (it never rethrows a listener's
 * exception): collect them, and assert the array is empty at the end.
 */
export function listenerErrors(...emitters: Array<{ on(event: 'error', fn: (e: unknown) => void): unknown }>): unknown[] {
  const errors: unknown[] = [];
  for (const e of emitters) e.on('error', (err) => errors.push(err));
  return errors;
}

export const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

export const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));
