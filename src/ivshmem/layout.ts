// Section layout of an ivshmem 2.0 shared memory region (ivshmem-v2-notes.md
// a.6): State Table, R/W section, then one output section per peer, every
// size rounded up to the page so access can be enforced per section. Each
// section is its own memfd here, so the offsets below are the ones a
// Jailhouse guest would compute from the vendor capability; they are
// reported by `dump` and pinned in docs/spec.md.
import { InvalidArgumentError } from '../errors.js';
import { checkName, PAGE, pageRound, parseInteger, parseSize, sectionSizeProblem } from '../units.js';

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
  checkName(name, 'link');
  const peers = parseInteger(p.peers, MIN_PEERS, MAX_PEERS_LIMIT, '--peers');
  const vectors = parseInteger(p.vectors ?? 1, 1, MAX_VECTORS, '--vectors');
  const protocol = parseInteger(p.protocol ?? 0, 0, 0xffff, '--protocol');
  const stateSize = pageRound(Math.max(parseSize(p.stateSize ?? DEFAULT_STATE_SIZE, '--state-size'), 1));
  if (stateSize < peers * 4) throw new InvalidArgumentError(`--state-size ${stateSize} cannot hold ${peers} 32-bit state entries`);
  const rwSize = pageRound(parseSize(p.rwSize ?? 0, '--rw-size'));
  const outputSize = pageRound(parseSize(p.outputSize, '--output-size'));
  for (const [what, n] of [['--state-size', stateSize], ['--rw-size', rwSize], ['--output-size', outputSize]] as const) {
    const problem = sectionSizeProblem(n);
    if (problem) throw new InvalidArgumentError(`${what}: ${problem}`);
  }
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
