// ivshmem-net queue sizing (ivshmem-v2-notes.md c.2). Both peers compute it
// from the output section size alone and must agree bit for bit with
// Jailhouse's Linux driver (ivshm_net_calc_qsize) and Zephyr's
// eth_ivshmem_queue (calc_vring_size), including their quirk: when no ring of
// 64 or more entries fits in an eighth of the section, the loop ends with
// N = 32 while the header size is still the one computed for N = 64.
import { ConfigError } from '../errors.js';
import { alignUp, splitRingLayout, vringSize, type SplitRingLayout } from '../virtio/split-ring.js';

export const IVSHM_NET_PROTOCOL = 0x0001;
export const IVSHM_NET_VQ_ALIGN = 64;
/** SMP_CACHE_BYTES / Zephyr's L1 line: slot alignment of the frame FIFO. */
export const IVSHM_NET_FRAME_ALIGN = 64;
/** Slot overhead: 14-byte Ethernet header + 4-byte VLAN tag. */
export const IVSHM_NET_FRAME_OVERHEAD = 18;
export const IVSHM_NET_MTU_DEF = 16384;
export const ETH_MIN_MTU = 68;
export const ETH_MAX_MTU = 65535;
/** The Ethernet header, defined once with the TAP device that reads and writes it. */
export { ETH_HLEN } from '../sys/tap.js';
/** Largest ring tried; the loop halves while N > 32. */
export const IVSHM_NET_MAX_QLEN = 4096;
/** Completions carry this length (ivshmem v2 marks them with 1). */
export const IVSHM_NET_USED_LEN = 1;

/** round_up(18 + len, 64): bytes a frame of `len` occupies in the FIFO. */
export const ivshmNetFrameSize = (len: number): number => alignUp(IVSHM_NET_FRAME_OVERHEAD + len, IVSHM_NET_FRAME_ALIGN);

/** The queue geometry both ivshmem-net peers derive from the output section size (docs/spec-net.md §2). */
export interface NetSizing {
  /** Output section size L. */
  readonly sectionSize: number;
  /** Ring length N. */
  readonly num: number;
  /** Header size H = data area offset. */
  readonly dataOffset: number;
  /** Data area size Q = L - H. */
  readonly dataSize: number;
  /** Ring placement inside a section (vring_init with align 64). */
  readonly ring: SplitRingLayout;
  readonly defaultMtu: number;
  readonly minMtu: number;
  readonly maxMtu: number;
}

/** ivshm_net_calc_qsize: throws ConfigError when the section cannot hold a queue. */
export function ivshmNetSizing(sectionSize: number): NetSizing {
  const L = sectionSize;
  if (!Number.isSafeInteger(L) || L <= 0) {
    throw new ConfigError(`ivshmem-net needs an output section; the link has ${L} bytes per output section (give the link --output-size, e.g. 0x7F000)`);
  }
  let num = IVSHM_NET_MAX_QLEN;
  let header = 0;
  // Reproduce the C loop exactly (including its exit value of N = 32).
  for (num = IVSHM_NET_MAX_QLEN; num > 32; num >>= 1) {
    header = alignUp(vringSize(num, IVSHM_NET_VQ_ALIGN), IVSHM_NET_VQ_ALIGN);
    if (header < Math.floor(L / 8)) break;
  }
  if (header > L) {
    throw new ConfigError(`ivshmem-net: an output section of ${L} bytes cannot hold the ${header}-byte ring header; use at least 8 KiB`);
  }
  const Q = L - header;
  if (Q < 4 * ETH_MIN_MTU) {
    throw new ConfigError(`ivshmem-net: an output section of ${L} bytes leaves ${Q} data bytes, fewer than 4 minimum frames (${4 * ETH_MIN_MTU}); use a larger section`);
  }
  return {
    sectionSize: L,
    num,
    dataOffset: header,
    dataSize: Q,
    ring: splitRingLayout(num, IVSHM_NET_VQ_ALIGN),
    // Linux sets min(16384, Q/16); for sections under ~1.3 KiB of data that
    // is below ETH_MIN_MTU, so it is clamped to the legal range here.
    defaultMtu: Math.max(ETH_MIN_MTU, Math.min(IVSHM_NET_MTU_DEF, Math.floor(Q / 16))),
    minMtu: ETH_MIN_MTU,
    maxMtu: Math.min(ETH_MAX_MTU, Math.floor(Q / 4)),
  };
}
