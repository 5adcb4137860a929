// Shared mappings of section fds as zero-copy ArrayBuffers (koffi.view).
import { InvalidArgumentError } from '../errors.js';
import { sectionSizeProblem } from '../units.js';
import { c, fail, K, MAP_FAILED, viewOf, errno, type Pointer } from './libc.js';

export interface Mapping {
  readonly ptr: Pointer;
  readonly size: number;
  readonly writable: boolean;
  /** The mapped bytes. For a read-only mapping a write through this buffer is SIGSEGV: never hand it to users. */
  readonly buffer: ArrayBuffer;
  unmap(): void;
}

/** mmap(MAP_SHARED) of a whole section fd. */
export function mapShared(fd: number, size: number, writable: boolean, what: string): Mapping {
  // koffi.view above 4 GiB aborts the process instead of throwing: the last
  // guard, behind the checks of every caller (docs/spec.md §1.5).
  const problem = sectionSizeProblem(size);
  if (problem) throw new InvalidArgumentError(`cannot map ${what}: ${problem}`);
  const prot = writable ? K.PROT_READ | K.PROT_WRITE : K.PROT_READ;
  const ptr = c.mmap(null, size, prot, K.MAP_SHARED, fd, 0) as Pointer;
  if (ptr === MAP_FAILED) fail('mmap', `${what}, ${size} bytes, ${writable ? 'read-write' : 'read-only'}`);
  let live = true;
  return {
    ptr,
    size,
    writable,
    buffer: viewOf(ptr, size),
    unmap() {
      // JS views of this memory may outlive the mapping (a user's Buffer, a
      // protocol layer mid-read). munmap would turn their next access into
      // SIGSEGV, so the shared pages are replaced in place by private
      // anonymous zero pages with the same protection: the shared memory is
      // released, stale views read zeroes, and nothing crashes.
      if (!live) return;
      live = false;
      const r = c.mmap(ptr, size, prot, K.MAP_PRIVATE | K.MAP_ANONYMOUS | K.MAP_FIXED, -1, 0) as Pointer;
      if (r === MAP_FAILED) c.munmap(ptr, size);
    },
  };
}

/** Attempt a mapping for isolation tests; returns errno or 0 (and unmaps on success). */
export function tryMapShared(fd: number, size: number, prot: number): number {
  const ptr = c.mmap(null, size, prot, K.MAP_SHARED, fd, 0) as Pointer;
  if (ptr === MAP_FAILED) return errno();
  c.munmap(ptr, size);
  return 0;
}

/** Attempt mprotect on an existing mapping; returns errno or 0. */
export function tryProtect(m: Mapping, prot: number): number {
  return (c.mprotect(m.ptr, m.size, prot) as number) < 0 ? errno() : 0;
}
