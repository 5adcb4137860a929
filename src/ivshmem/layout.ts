// Section layout of an ivshmem 2.0 shared memory region (ivshmem-v2-notes.md
// a.6): State Table, R/W section, then one output section per peer, every
// size rounded up to the page so access can be enforced per section. Each
// section is its own memfd here, so the offsets below are the ones a
// Jailhouse guest would compute from the vendor capability; they are
// reported by `dump` and pinned in docs/spec.md.
import { ConfigError, InvalidArgumentError } from '../errors.js';

export const PAGE = 4096;
export const MIN_PEERS = 2;
/** Broker limit; the spec allows 65536, Jailhouse 12 (a.1). */
export const MAX_PEERS_LIMIT = 64;
/** Jailhouse's MSI-X vector limit (a.4). */
export const MAX_VECTORS = 16;
export const DEFAULT_STATE_SIZE = PAGE;

export interface LinkParams {
  name: string;
  peers: number;
  vectors: number;
  protocol: number;
  stateSize: number;
  rwSize: number;
  outputSize: number;
}

export const pageRound = (n: number): number => Math.ceil(n / PAGE) * PAGE;

/** Parse "64K", "1M", "4096", "0x7f000" into bytes; throws ConfigError naming the flag. */
export function parseSize(text: string | number, what: string): number {
  if (typeof text === 'number') {
    if (!Number.isSafeInteger(text) || text < 0) throw new InvalidArgumentError(`${what}: ${text} is not a byte count`);
    return text;
  }
  const m = /^\s*(0x[0-9a-f]+|\d+)\s*([kKmMgG]?)(i?[bB])?\s*$/.exec(text);
  if (!m) throw new InvalidArgumentError(`${what}: "${text}" is not a size; write bytes with an optional K, M or G suffix, e.g. 64K`);
  const base = Number(m[1]);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  const n = base * mult;
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`${what}: "${text}" is too large`);
  return n;
}

/** Parse an integer flag ("16", "0x4001") in [min, max]. */
export function parseIntIn(text: string | number, min: number, max: number, what: string): number {
  const n = typeof text === 'number' ? text : /^\s*(0x[0-9a-f]+|\d+)\s*$/i.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new InvalidArgumentError(`${what}: "${text}" must be an integer in ${min}..${max}`);
  }
  return n;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Validate and page-round link parameters (limits of issue 2: 2<=N<=64, 1<=V<=16, protocol 0..0xFFFF). */
export function resolveLinkParams(p: {
  name?: string;
  peers: number | string;
  vectors?: number | string;
  protocol?: number | string;
  stateSize?: number | string;
  rwSize?: number | string;
  outputSize: number | string;
}): LinkParams {
  const name = p.name ?? 'link';
  if (!NAME_RE.test(name)) {
    throw new InvalidArgumentError(`link name "${name}" must be 1-64 characters of letters, digits, '.', '_' or '-'`);
  }
  const peers = parseIntIn(p.peers, MIN_PEERS, MAX_PEERS_LIMIT, '--peers');
  const vectors = parseIntIn(p.vectors ?? 1, 1, MAX_VECTORS, '--vectors');
  const protocol = parseIntIn(p.protocol ?? 0, 0, 0xffff, '--protocol');
  const stateSize = pageRound(Math.max(parseSize(p.stateSize ?? DEFAULT_STATE_SIZE, '--state-size'), 1));
  if (stateSize < peers * 4) throw new InvalidArgumentError(`--state-size ${stateSize} cannot hold ${peers} 32-bit state entries`);
  const rwSize = pageRound(parseSize(p.rwSize ?? 0, '--rw-size'));
  const outputSize = pageRound(parseSize(p.outputSize, '--output-size'));
  const total = stateSize + rwSize + peers * outputSize;
  if (total > 2 ** 40) throw new InvalidArgumentError(`link ${name} would need ${total} bytes of shared memory; reduce the sizes`);
  return { name, peers, vectors, protocol, stateSize, rwSize, outputSize };
}

/** Offsets of each section in the virtual region (a.6). */
export function regionLayout(p: LinkParams): { state: number; rw: number; output: (k: number) => number; total: number } {
  return {
    state: 0,
    rw: p.stateSize,
    output: (k: number) => p.stateSize + p.rwSize + k * p.outputSize,
    total: p.stateSize + p.rwSize + p.peers * p.outputSize,
  };
}

export const memfdName = (link: string, section: 'state' | 'rw' | `out${number}`): string => `ivshm:${link}:${section}`;
