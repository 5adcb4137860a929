// AF_UNIX sockets with SCM_RIGHTS, which Node core cannot do (the broker's
// control protocol passes fds: docs/spec.md, "2. Broker control protocol").
// msghdr/iovec/cmsghdr are built by hand in one C block, reused for every
// call (the event loop is single-threaded).
import fs from 'node:fs';
import { InvalidArgumentError, OsError } from '../errors.js';
import { addressOf, allocBlock, c, errno, errnoName, E, fail, K, osError } from './libc.js';

export const MAX_FDS_PER_MESSAGE = 253; // SCM_MAX_FD
export const MAX_MESSAGE = 65536;

// x86-64 / arm64 offsets of the C structs (the same on both).
const MSG_OFF = 0; // struct msghdr, 56 bytes
const IOV_OFF = 64; // struct iovec, 16 bytes
const CMSG_OFF = 128;
const CMSG_SPACE_MAX = 16 + 4 * MAX_FDS_PER_MESSAGE + 4; // header + fds, 8-aligned
const DATA_OFF = 2048;
const block = allocBlock(DATA_OFF + MAX_MESSAGE);
const B = block.buf;
const dataAddr = addressOf(block.ptr, DATA_OFF);
const cmsgAddr = addressOf(block.ptr, CMSG_OFF);
const iovAddr = addressOf(block.ptr, IOV_OFF);

function setupMsghdr(dataLen: number, controlLen: number): void {
  B.fill(0, MSG_OFF, CMSG_OFF);
  B.writeBigUInt64LE(iovAddr, MSG_OFF + 16); // msg_iov
  B.writeBigUInt64LE(1n, MSG_OFF + 24); // msg_iovlen
  B.writeBigUInt64LE(controlLen ? cmsgAddr : 0n, MSG_OFF + 32); // msg_control
  B.writeBigUInt64LE(BigInt(controlLen), MSG_OFF + 40); // msg_controllen
  B.writeBigUInt64LE(dataAddr, IOV_OFF); // iov_base
  B.writeBigUInt64LE(BigInt(dataLen), IOV_OFF + 8); // iov_len
}

function sockaddrUn(path: string): Buffer {
  const p = Buffer.from(path);
  if (p.length >= 108) {
    throw new InvalidArgumentError(`socket path ${path} is ${p.length} bytes; a UNIX socket path holds at most 107: use a shorter path`);
  }
  const sa = Buffer.alloc(110);
  sa.writeUInt16LE(K.AF_UNIX, 0);
  p.copy(sa, 2);
  return sa;
}

export type SocketKind = 'seqpacket' | 'stream';
const typeOf = (kind: SocketKind) => (kind === 'seqpacket' ? K.SOCK_SEQPACKET : K.SOCK_STREAM);

function newSocket(kind: SocketKind, nonblock: boolean): number {
  const fd = c.socket(K.AF_UNIX, typeOf(kind) | K.SOCK_CLOEXEC | (nonblock ? K.SOCK_NONBLOCK : 0), 0) as number;
  if (fd < 0) fail('socket', `AF_UNIX ${kind}`);
  return fd;
}

/**
 * Listen on `path`. A stale socket file (nobody listening) is replaced; a live
 * one is refused so two brokers never share a path.
 */
export function unixListen(path: string, kind: SocketKind): number {
  if (fs.existsSync(path)) {
    const st = fs.lstatSync(path);
    if (!st.isSocket()) pathInUse(`${path} exists and is not a socket; choose another --socket path`);
    const probe = newSocket(kind, false);
    const sa = sockaddrUn(path);
    const r = c.connect(probe, sa, sa.length) as number;
    const e = errno();
    c.close(probe);
    if (r === 0 || e === E.EAGAIN) pathInUse(`${path} is in use by a running server; stop it or choose another --socket path`);
    fs.unlinkSync(path);
  }
  // bind() creates the file before listen(): a client connecting in between
  // would get ECONNREFUSED. Bind a temporary name, listen, then rename it
  // into place, so the path exists only once it accepts connections.
  const fd = newSocket(kind, true);
  const tmp = `${path}.${process.pid}.tmp`;
  const sa = sockaddrUn(tmp);
  fs.rmSync(tmp, { force: true });
  if ((c.bind(fd, sa, sa.length) as number) < 0) {
    c.close(fd);
    fail('bind', tmp);
  }
  if ((c.listen(fd, 128) as number) < 0) {
    c.close(fd);
    fs.rmSync(tmp, { force: true });
    fail('listen', path);
  }
  fs.renameSync(tmp, path);
  return fd;
}

/** Which file a path names: its device and inode. */
export interface FileId {
  dev: number;
  ino: number;
}

/** The socket file at `path` as it is now (after unixListen), to remove it later only if it is still that one. */
export function socketFileId(path: string): FileId {
  const st = fs.lstatSync(path);
  return { dev: st.dev, ino: st.ino };
}

/**
 * Remove the socket file at `path` only if it is still the one `id` names: a
 * path that was replaced meanwhile, or now leads through a link to another
 * file, is left alone (a server removes only what it created).
 */
export function unlinkSocketFile(path: string, id: FileId): boolean {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch {
    return false;
  }
  if (!st.isSocket() || st.dev !== id.dev || st.ino !== id.ino) return false;
  fs.unlinkSync(path);
  return true;
}

function pathInUse(msg: string): never {
  throw new OsError('bind', E.EADDRINUSE, msg);
}

/** Connect (blocking, immediate for AF_UNIX), then switch to non-blocking. */
export function unixConnect(path: string, kind: SocketKind): number {
  const fd = newSocket(kind, false);
  const sa = sockaddrUn(path);
  if ((c.connect(fd, sa, sa.length) as number) < 0) {
    const e = errno();
    c.close(fd);
    const hint =
      e === E.ENOENT || e === E.ECONNREFUSED ? 'is the broker running on this socket?' : e === E.EPROTOTYPE ? 'the server speaks another socket type (QEMU servers use --qemu)' : '';
    throw connectError(path, e, hint);
  }
  const fl = c.fcntl(fd, K.F_GETFL, 0) as number;
  c.fcntl(fd, K.F_SETFL, fl | K.O_NONBLOCK);
  return fd;
}

function connectError(path: string, e: number, hint: string): OsError {
  return osError('connect', e, `connect(${path}) failed: ${errnoName(e)}${hint ? `; ${hint}` : ''}`);
}

/** Accept one pending connection; -1 when none is pending. */
export function unixAccept(listenFd: number): number {
  const fd = c.accept4(listenFd, null, null, K.SOCK_NONBLOCK | K.SOCK_CLOEXEC) as number;
  if (fd >= 0) return fd;
  const e = errno();
  if (e === E.EAGAIN || e === E.ECONNABORTED || e === E.EINTR) return -1;
  if (e === E.EMFILE || e === E.ENFILE) return -2;
  fail('accept4', `listening fd ${listenFd}`);
}

export function unixSocketPair(kind: SocketKind): [number, number] {
  const sv = [0, 0];
  if ((c.socketpair(K.AF_UNIX, typeOf(kind) | K.SOCK_CLOEXEC | K.SOCK_NONBLOCK, 0, sv) as number) < 0) fail('socketpair', kind);
  return [sv[0]!, sv[1]!];
}

/** sendmsg with optional fds. Returns 0, or the errno (EAGAIN, EPIPE, ...). */
export function sendMessage(fd: number, data: Uint8Array, fds: readonly number[] = []): number {
  if (data.byteLength > MAX_MESSAGE) throw new InvalidArgumentError(`message of ${data.byteLength} bytes exceeds ${MAX_MESSAGE}`);
  if (fds.length > MAX_FDS_PER_MESSAGE) throw new InvalidArgumentError(`${fds.length} fds exceed SCM_MAX_FD`);
  B.set(data, DATA_OFF);
  let controlLen = 0;
  if (fds.length) {
    const len = 16 + 4 * fds.length;
    controlLen = (len + 7) & ~7;
    B.writeBigUInt64LE(BigInt(len), CMSG_OFF); // cmsg_len = CMSG_LEN(4n)
    B.writeInt32LE(K.SOL_SOCKET, CMSG_OFF + 8);
    B.writeInt32LE(K.SCM_RIGHTS, CMSG_OFF + 12);
    fds.forEach((f, i) => B.writeInt32LE(f, CMSG_OFF + 16 + 4 * i));
  }
  setupMsghdr(data.byteLength, controlLen);
  const n = c.sendmsg(fd, block.ptr, K.MSG_NOSIGNAL | K.MSG_DONTWAIT) as number;
  if (n < 0) return errno();
  return n === data.byteLength ? 0 : E.EMSGSIZE;
}

export type Received =
  | { kind: 'message'; data: Buffer; fds: number[]; truncated: boolean }
  | { kind: 'eof' }
  | { kind: 'again' }
  | { kind: 'error'; errno: number };

/**
 * recvmsg of at most `maxLen` bytes (8 for the QEMU stream protocol, so each
 * fd stays with its own message). Received fds are close-on-exec.
 */
export function receiveMessage(fd: number, maxLen = MAX_MESSAGE): Received {
  setupMsghdr(Math.min(maxLen, MAX_MESSAGE), CMSG_SPACE_MAX);
  const n = c.recvmsg(fd, block.ptr, K.MSG_CMSG_CLOEXEC | K.MSG_DONTWAIT) as number;
  if (n < 0) {
    const e = errno();
    if (e === E.EAGAIN || e === E.EINTR) return { kind: 'again' };
    if (e === E.ECONNRESET) return { kind: 'eof' };
    return { kind: 'error', errno: e };
  }
  const flags = B.readInt32LE(MSG_OFF + 48);
  const controlLen = Number(B.readBigUInt64LE(MSG_OFF + 40));
  const fds: number[] = [];
  let off = 0;
  while (off + 16 <= controlLen) {
    const len = Number(B.readBigUInt64LE(CMSG_OFF + off));
    if (len < 16 || off + len > controlLen) break;
    const level = B.readInt32LE(CMSG_OFF + off + 8);
    const type = B.readInt32LE(CMSG_OFF + off + 12);
    if (level === K.SOL_SOCKET && type === K.SCM_RIGHTS) {
      for (let p = 16; p + 4 <= len; p += 4) fds.push(B.readInt32LE(CMSG_OFF + off + p));
    }
    off += (len + 7) & ~7;
  }
  if (n === 0 && fds.length === 0) return { kind: 'eof' };
  const data = Buffer.from(B.subarray(DATA_OFF, DATA_OFF + n));
  return { kind: 'message', data, fds, truncated: (flags & (K.MSG_TRUNC | K.MSG_CTRUNC)) !== 0 };
}

/** The pid/uid/gid of the process on the other end (SO_PEERCRED), for logs. */
export function peerCredentials(fd: number): { pid: number; uid: number; gid: number } | null {
  const buf = Buffer.alloc(12);
  const len = [12];
  if ((c.getsockopt(fd, K.SOL_SOCKET, K.SO_PEERCRED, buf, len) as number) < 0) return null;
  return { pid: buf.readInt32LE(0), uid: buf.readUInt32LE(4), gid: buf.readUInt32LE(8) };
}

export function shutdownSocket(fd: number): void {
  c.shutdown(fd, K.SHUT_RDWR);
}
