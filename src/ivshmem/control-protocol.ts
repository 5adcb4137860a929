// Broker control protocol, version 1 (docs/spec.md §2).
//
// Modelled on the messages of the ivshmem 2.0 server QEMU proposed (INIT,
// EVENT_FD, PEER_GONE with `{u32 type, u32 len}` headers and fds by
// SCM_RIGHTS), extended with one fd per section, per-(sender, receiver,
// vector) doorbells and STATE requests, because here the broker, not the
// peer, writes the State Table. Transport: AF_UNIX SOCK_SEQPACKET, one
// message per packet, all integers little-endian.
import { ProtocolError } from '../errors.js';
import type { LinkParams } from './params.js';

export const CONTROL_VERSION = 1;
/** "IVSM" little-endian: first word of HELLO, so a stray client is told apart from an old one. */
export const HELLO_MAGIC = 0x4d535649;
export const HEADER_SIZE = 8;
export const MAX_TOKEN = 256;
export const MAX_TEXT = 1024;

export const MSG = {
  // peer -> broker
  HELLO: 0x01,
  MAPPED: 0x02,
  SET_STATE: 0x03,
  // broker -> peer
  INIT: 0x81,
  PEER_JOINED: 0x82,
  PEER_GONE: 0x83,
  REFUSED: 0x84,
  SYNCED: 0x85,
} as const;

/** Reason codes carried by REFUSED. */
export const REFUSE = {
  BAD_VERSION: 1,
  ID_TAKEN: 2,
  ID_OUT_OF_RANGE: 3,
  LINK_FULL: 4,
  NOT_ALLOWED: 5,
  PROTOCOL: 6,
} as const;

/** Reason codes carried by PEER_GONE. */
export const GONE = {
  LEFT: 0,
  PROTOCOL_VIOLATION: 1,
  TIMEOUT: 2,
  BROKER_STOPPING: 3,
} as const;

export const goneReasonText = (code: number): string =>
  ({ 0: 'left', 1: 'thrown out for a protocol violation', 2: 'thrown out after a timeout', 3: 'broker stopping' })[code] ?? `reason ${code}`;

function frame(type: number, body: Buffer): Buffer {
  const b = Buffer.alloc(HEADER_SIZE + body.length);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(body.length, 4);
  body.copy(b, HEADER_SIZE);
  return b;
}

// ---- peer -> broker ----

export interface Hello {
  version: number;
  /** Requested ID, or -1 for the lowest free one. */
  id: number;
  token: string;
}

export function encodeHello(h: Hello): Buffer {
  const token = Buffer.from(h.token, 'utf8');
  const body = Buffer.alloc(16 + token.length);
  body.writeUInt32LE(HELLO_MAGIC, 0);
  body.writeUInt16LE(h.version, 4);
  body.writeInt32LE(h.id, 8);
  body.writeUInt32LE(token.length, 12);
  token.copy(body, 16);
  return frame(MSG.HELLO, body);
}

export const encodeMapped = (): Buffer => frame(MSG.MAPPED, Buffer.alloc(0));

export function encodeSetState(value: number): Buffer {
  const body = Buffer.alloc(4);
  body.writeUInt32LE(value >>> 0, 0);
  return frame(MSG.SET_STATE, body);
}

// ---- broker -> peer ----

/** INIT: the link's parameters (`peers` is MAX_PEERS) and the joining peer's ID. */
export interface Init extends LinkParams {
  version: number;
  id: number;
}

/** INIT fds, in order: state (RO), own output (RW), state doorbell, self doorbells x vectors, [rw (RW) if rwSize > 0]. */
export const initFdCount = (vectors: number, rwSize: number): number => 3 + vectors + (rwSize > 0 ? 1 : 0);

export function encodeInit(m: Init): Buffer {
  const name = Buffer.from(m.name, 'utf8');
  const body = Buffer.alloc(48 + name.length);
  body.writeUInt16LE(m.version, 0);
  body.writeUInt32LE(m.id, 4);
  body.writeUInt32LE(m.peers, 8);
  body.writeUInt32LE(m.vectors, 12);
  body.writeUInt32LE(m.protocol, 16);
  body.writeBigUInt64LE(BigInt(m.stateSize), 24);
  body.writeBigUInt64LE(BigInt(m.rwSize), 32);
  body.writeBigUInt64LE(BigInt(m.outputSize), 40);
  name.copy(body, 48);
  return frame(MSG.INIT, body);
}

/** PEER_JOINED fds: peer's output (RO), doorbells to it x vectors, doorbells from it x vectors. */
export const peerJoinedFdCount = (vectors: number): number => 1 + 2 * vectors;

export function encodePeerJoined(id: number): Buffer {
  const body = Buffer.alloc(4);
  body.writeUInt32LE(id, 0);
  return frame(MSG.PEER_JOINED, body);
}

export function encodePeerGone(id: number, reason: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt32LE(id, 0);
  body.writeUInt32LE(reason, 4);
  return frame(MSG.PEER_GONE, body);
}

export function encodeRefused(code: number, text: string): Buffer {
  const t = Buffer.from(text.slice(0, MAX_TEXT), 'utf8');
  const body = Buffer.alloc(4 + t.length);
  body.writeUInt32LE(code, 0);
  t.copy(body, 4);
  return frame(MSG.REFUSED, body);
}

export const encodeSynced = (): Buffer => frame(MSG.SYNCED, Buffer.alloc(0));

// ---- decoding (both directions); every field is checked ----

export type Message =
  | { type: typeof MSG.HELLO; hello: Hello }
  | { type: typeof MSG.MAPPED }
  | { type: typeof MSG.SET_STATE; value: number }
  | { type: typeof MSG.INIT; init: Init }
  | { type: typeof MSG.PEER_JOINED; id: number }
  | { type: typeof MSG.PEER_GONE; id: number; reason: number }
  | { type: typeof MSG.REFUSED; code: number; text: string }
  | { type: typeof MSG.SYNCED };

function need(body: Buffer, n: number, what: string): void {
  if (body.length < n) throw new ProtocolError(`${what} message is ${body.length} bytes; expected at least ${n}`);
}
function exact(body: Buffer, n: number, what: string): void {
  if (body.length !== n) throw new ProtocolError(`${what} message is ${body.length} bytes; expected ${n}`);
}

/** Decode one packet. Throws ProtocolError naming what was wrong. */
export function decodeMessage(packet: Buffer): Message {
  if (packet.length < HEADER_SIZE) throw new ProtocolError(`message of ${packet.length} bytes is shorter than the 8-byte header`);
  const type = packet.readUInt32LE(0);
  const len = packet.readUInt32LE(4);
  if (len !== packet.length - HEADER_SIZE) {
    throw new ProtocolError(`message type 0x${type.toString(16)} declares ${len} body bytes but carries ${packet.length - HEADER_SIZE}`);
  }
  const body = packet.subarray(HEADER_SIZE);
  switch (type) {
    case MSG.HELLO: {
      need(body, 16, 'HELLO');
      if (body.readUInt32LE(0) !== HELLO_MAGIC) throw new ProtocolError('HELLO has a bad magic number; is this an ivshm peer?');
      const tlen = body.readUInt32LE(12);
      if (tlen > MAX_TOKEN || body.length !== 16 + tlen) throw new ProtocolError(`HELLO token length ${tlen} does not match the message`);
      return { type, hello: { version: body.readUInt16LE(4), id: body.readInt32LE(8), token: body.subarray(16).toString('utf8') } };
    }
    case MSG.MAPPED:
      exact(body, 0, 'MAPPED');
      return { type };
    case MSG.SET_STATE:
      exact(body, 4, 'SET_STATE');
      return { type, value: body.readUInt32LE(0) };
    case MSG.INIT: {
      need(body, 48, 'INIT');
      const big = (o: number) => {
        const v = body.readBigUInt64LE(o);
        if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError(`INIT size ${v} is out of range`);
        return Number(v);
      };
      return {
        type,
        init: {
          version: body.readUInt16LE(0),
          id: body.readUInt32LE(4),
          peers: body.readUInt32LE(8),
          vectors: body.readUInt32LE(12),
          protocol: body.readUInt32LE(16),
          stateSize: big(24),
          rwSize: big(32),
          outputSize: big(40),
          name: body.subarray(48).toString('utf8'),
        },
      };
    }
    case MSG.PEER_JOINED:
      exact(body, 4, 'PEER_JOINED');
      return { type, id: body.readUInt32LE(0) };
    case MSG.PEER_GONE:
      exact(body, 8, 'PEER_GONE');
      return { type, id: body.readUInt32LE(0), reason: body.readUInt32LE(4) };
    case MSG.REFUSED:
      need(body, 4, 'REFUSED');
      return { type, code: body.readUInt32LE(0), text: body.subarray(4, 4 + MAX_TEXT).toString('utf8') };
    case MSG.SYNCED:
      exact(body, 0, 'SYNCED');
      return { type };
    default:
      throw new ProtocolError(`unknown message type 0x${type.toString(16)}`);
  }
}
