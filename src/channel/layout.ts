// Wire layout of an ivshm channel section, version 1 (docs/spec-channel.md
// §2-§5; every constant here is pinned against that document's tables by
// test/channel/layout.test.ts).
//
// Every peer lays out its OWN output section (the only memory it may write,
// docs/spec.md §1.1) as:
//
//   0x000  header line   magic, version, session, ring geometry, role
//   0x040  tail line     producer position of this section's ring (writer: owner)
//   0x080  head line     oldest position still valid (publishers; readers of samples check it)
//   0x100  slots         one 64-byte line per peer k: what THIS peer says about peer k's ring
//                        (consumer position, wake request) and about its own ring towards k
//                        (which session of k it is attached to, where that stream starts)
//   ring   power-of-two byte ring of 16-byte-aligned records, at a page boundary
//
// So each direction is a single-producer single-consumer ring (as Agrona's
// IPC ring buffer) whose data and producer index live in the writer's
// section and whose consumer index lives in the reader's section: both peers
// write only their own section, as an ivshmem v2 link enforces.
import { endianness } from 'node:os';
import { ConfigError, InvalidArgumentError } from '../errors.js';

if (endianness() !== 'LE') throw new ConfigError('ivshm channels use little-endian layouts; this host is big-endian');

/** User protocol range of ivshmem v2 (docs/spec-channel.md §1: 0x4000-0x7FFF). */
export const IVSHM_PROTO_USER_MIN = 0x4000;
/** The last protocol number of the user range (0x4000-0x7FFF). */
export const IVSHM_PROTO_USER_MAX = 0x7fff;
/** Default protocol ID for ivshm channels and pub-sub. */
export const IVSHM_PROTO_CHANNEL = 0x4348; // "CH"

/** 'IVCH' little-endian. */
export const CH_MAGIC = 0x48435649;
export const CH_VERSION = 1;

/** STATE register (docs/spec-channel.md §6): low byte is the phase, the upper 24 bits the session, so a reset always changes STATE. */
export const CH_STATE_RESET = 0;
export const CH_STATE_READY = 1;
export const CH_STATE_PHASE_MASK = 0xff;

export const CH_ROLE_NONE = 0;
export const CH_ROLE_CHANNEL = 1;
export const CH_ROLE_PUBLISHER = 2;

// Header fields (docs/spec-channel.md §3; u32 index into the section viewed as Int32Array).
export const H_MAGIC = 0;
export const H_VERSION = 1;
export const H_SESSION = 2;
export const H_RING_OFFSET = 3;
export const H_RING_SIZE = 4;
export const H_ROLE = 5;
export const H_SLOTS = 6; // number of slots (MAX_PEERS of the link)
export const H_MAX_PAYLOAD = 7;
/** Producer position (bytes, wraps at 2^32), own cache line. */
export const H_TAIL = 0x40 >> 2;
/** Oldest valid position (publishers), own cache line. */
export const H_HEAD = 0x80 >> 2;

export const SLOTS_OFFSET = 0x100;
export const SLOT_SIZE = 64;
// Slot fields (docs/spec-channel.md §4), u32 index relative to the slot.
/** Session of peer k whose ring we consume (0: none). */
export const S_RX_SESSION = 0;
/** Our consumer position in peer k's ring. */
export const S_RX_HEAD = 1;
/** Sequence number of the last record we consumed from peer k. */
export const S_RX_SEQ = 2;
/** 1 when we want a doorbell once k's tail moves past S_RX_WAKE_AT. */
export const S_RX_ARMED = 3;
export const S_RX_WAKE_AT = 4;
/** Session of peer k our ring is attached to (channels). */
export const S_TX_SESSION = 8;
/** Position in our ring where the stream to that session starts. */
export const S_TX_START = 9;
/** Sequence number of the first record at S_TX_START. */
export const S_TX_START_SEQ = 10;
/** 1 when we (the writer) want a doorbell once k's consumer position moves past S_TX_WAKE_AT. */
export const S_TX_ARMED = 11;
export const S_TX_WAKE_AT = 12;

// Records (docs/spec-channel.md §5): 16-byte header then payload, padded to 16 bytes.
export const REC_ALIGN = 16;
export const REC_HEADER = 16;
export const R_LENGTH = 0; // payload bytes
export const R_TYPE = 1; // record type (low 16 bits), flags (high 16, must be 0)
export const R_SEQ = 2;
export const R_CORR = 3; // correlation ID (requests/responses), else 0

export const REC_PAD = 1;
export const REC_DATA = 2;
export const REC_REQUEST = 3;
export const REC_RESPONSE = 4;
export const REC_SAMPLE = 5;

export const MIN_RING = 4096;

export const align = (n: number, a: number): number => Math.ceil(n / a) * a;
export const recordSize = (payload: number): number => align(REC_HEADER + payload, REC_ALIGN);

/** The need_event rule (docs/spec-channel.md §7, as virtio's vring_need_event): did the move old -> new cross `event`? All u32. */
export const needEvent = (event: number, next: number, old: number): boolean => ((next - event - 1) >>> 0) < ((next - old) >>> 0);

export interface SectionGeometry {
  ringOffset: number;
  ringSize: number;
  slots: number;
  /** Largest payload one record may carry: half the ring minus a header, so a record always fits after a wrap. */
  maxPayload: number;
}

/** Where the ring goes in a section of `sectionSize` bytes on a link of `maxPeers` peers (docs/spec-channel.md §2). */
export function geometry(sectionSize: number, maxPeers: number): SectionGeometry {
  const ringOffset = align(SLOTS_OFFSET + maxPeers * SLOT_SIZE, 4096);
  const room = sectionSize - ringOffset;
  if (room < MIN_RING) {
    throw new InvalidArgumentError(
      `output section of ${sectionSize} bytes is too small for a channel on a ${maxPeers}-peer link: ` +
        `need at least ${ringOffset + MIN_RING} bytes (header ${ringOffset} + ring ${MIN_RING}); give the link a larger outputSize (outputSizeFor() computes one)`);
  }
  const ringSize = 2 ** Math.floor(Math.log2(room));
  return { ringOffset, ringSize, slots: maxPeers, maxPayload: ringSize / 2 - REC_HEADER };
}

/** The smallest output section size (a link's outputSize) for messages up to `maxMessage` bytes (docs/spec-channel.md §11). */
export function outputSizeFor(maxMessage: number, maxPeers = 2): number {
  const ringOffset = align(SLOTS_OFFSET + maxPeers * SLOT_SIZE, 4096);
  const ring = Math.max(MIN_RING, 2 ** Math.ceil(Math.log2(2 * (maxMessage + REC_HEADER))));
  return ringOffset + ring;
}

/** An Int32Array over a section (Atomics need 4-byte alignment). */
export function words(view: Uint8Array, what: string): Int32Array {
  if (view.byteOffset % 4 !== 0) throw new InvalidArgumentError(`${what}: section view is not 4-byte aligned`);
  return new Int32Array(view.buffer, view.byteOffset, view.byteLength >>> 2);
}

export const slotIndex = (peer: number, field: number): number => (SLOTS_OFFSET >> 2) + peer * (SLOT_SIZE >> 2) + field;

export interface PeerHeader {
  session: number;
  ringOffset: number;
  ringSize: number;
  role: number;
  slots: number;
  maxPayload: number;
}

/**
 * Read and validate the header of a peer's section (every field read once;
 * the rules of docs/spec-channel.md §3).
 * Returns a reason string on a violation, so the caller latches it.
 */
export function readPeerHeader(w: Int32Array, sectionSize: number, maxPeers: number): PeerHeader | string {
  if (w.length < SLOTS_OFFSET >> 2) return 'section-too-small';
  const magic = Atomics.load(w, H_MAGIC) >>> 0;
  if (magic !== CH_MAGIC) return 'bad-magic';
  const version = Atomics.load(w, H_VERSION) >>> 0;
  if (version !== CH_VERSION) return 'bad-version';
  const session = Atomics.load(w, H_SESSION) >>> 0;
  const ringOffset = Atomics.load(w, H_RING_OFFSET) >>> 0;
  const ringSize = Atomics.load(w, H_RING_SIZE) >>> 0;
  const role = Atomics.load(w, H_ROLE) >>> 0;
  const slots = Atomics.load(w, H_SLOTS) >>> 0;
  const maxPayload = Atomics.load(w, H_MAX_PAYLOAD) >>> 0;
  if (session === 0 || (session & CH_STATE_PHASE_MASK) !== 0) return 'bad-session';
  if (slots !== maxPeers) return 'bad-slot-count';
  // Overflow-safe: all values are < 2^32, sums are exact in doubles.
  if (ringOffset < SLOTS_OFFSET + slots * SLOT_SIZE || ringOffset % 4096 !== 0) return 'bad-ring-offset';
  if (ringSize !== 0 && (ringSize < MIN_RING || (ringSize & (ringSize - 1)) !== 0)) return 'bad-ring-size';
  if (ringOffset + ringSize > sectionSize) return 'ring-outside-section';
  if (maxPayload !== (ringSize ? ringSize / 2 - REC_HEADER : 0)) return 'bad-max-payload';
  if (role !== CH_ROLE_NONE && role !== CH_ROLE_CHANNEL && role !== CH_ROLE_PUBLISHER) return 'bad-role';
  return { session, ringOffset, ringSize, role, slots, maxPayload };
}
