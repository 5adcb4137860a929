// Section layout of an ivshmem 2.0 shared memory region (docs/spec.md §1.1):
// State Table, R/W section, then one output section per peer, every size a
// page multiple so access can be enforced per section. Each section is its
// own memfd here, so the offsets below are the ones a Jailhouse guest would
// compute from the vendor capability; `ivshm peer`'s dump reports the sizes.
import type { LinkParams } from './params.js';

/** Offsets of each section in the virtual region (docs/spec.md §1.1). */
export function regionLayout(p: LinkParams): { state: number; rw: number; output: (k: number) => number; total: number } {
  return {
    state: 0,
    rw: p.stateSize,
    output: (k: number) => p.stateSize + p.rwSize + k * p.outputSize,
    total: p.stateSize + p.rwSize + p.peers * p.outputSize,
  };
}

export const memfdName = (link: string, section: 'state' | 'rw' | `out${number}`): string => `ivshm:${link}:${section}`;
