// ivshmem-net queue sizing, only as far as the checker needs it: does an
// output section of L bytes hold a ring, and which MTUs does it allow.
// ivshmem-v2-notes.md c.2 (including the 32-entry quirk).

const ETH_MIN_MTU = 68;
const ALIGN = 64;
const roundUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/** Split-virtqueue size for N entries (c.2). */
const vringSize = (n: number, align: number): number => roundUp(16 * n + 2 * (3 + n), align) + 2 * 3 + 8 * n;

export interface NetQueueSizing {
  entries: number;
  /** Ring header bytes, i.e. the data area offset H. */
  header: number;
  /** Data area bytes Q = L - H. */
  data: number;
  defaultMtu: number;
  maxMtu: number;
}

/** Sizing for an output section of `sectionSize` bytes, or null when it cannot hold a queue. */
export function netQueueSizing(sectionSize: number): NetQueueSizing | null {
  let n = 4096;
  let h = 0;
  // Try N = 4096, 2048, ... while N > 32; stop at the first header below L/8.
  // If none fits, N ends at 32 with H still computed for 64 (the quirk, c.2).
  for (; n > 32; n >>= 1) {
    h = roundUp(vringSize(n, ALIGN), ALIGN);
    if (h < sectionSize / 8) break;
  }
  if (h > sectionSize || sectionSize - h < 4 * ETH_MIN_MTU) return null;
  const q = sectionSize - h;
  return { entries: n, header: h, data: q, defaultMtu: Math.min(16384, Math.floor(q / 16)), maxMtu: Math.min(65535, Math.floor(q / 4)) };
}
