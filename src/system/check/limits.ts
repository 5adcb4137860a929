// Shared memory: all links together against the file's limit (or the
// caller's override) and against the free space of /dev/shm.
import fs from 'node:fs';
import { formatBytes } from '../../units.js';
import type { AddProblem } from './format.js';

export interface ShmLimits {
  /** Bytes allowed; `name` says where the limit came from, for the message. */
  limit: number;
  name: string;
  /** Free bytes on /dev/shm, or null to skip that rule. */
  free: number | null;
}

export function checkSharedMemory(total: number, l: ShmLimits, add: AddProblem): void {
  if (total > l.limit) {
    add(['links'], `the links need ${formatBytes(total)} of shared memory, above the limit of ${formatBytes(l.limit)}; shrink the links or raise ${l.name}`);
  }
  if (l.free !== null && total > l.free) {
    add(['links'], `the links need ${formatBytes(total)} of shared memory but /dev/shm has only ${formatBytes(l.free)} free`);
  }
}

/** Free bytes of /dev/shm (shared memory backing), or null when it cannot be measured. */
export function shmFreeBytes(): number | null {
  try {
    const s = fs.statfsSync('/dev/shm');
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}
