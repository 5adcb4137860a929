// The one place that loads koffi (docs/design.md §1): libc bindings and the
// constants of Linux x86-64/arm64 that Node does not expose.
import koffi from 'koffi';
import os from 'node:os';
import { OsError, PermissionError } from '../errors.js';

export const lib = koffi.load('libc.so.6');

export const c = {
  memfd_create: lib.func('int memfd_create(const char *name, unsigned int flags)'),
  ftruncate: lib.func('int ftruncate(int fd, long length)'),
  fcntl: lib.func('int fcntl(int fd, int cmd, int arg)'),
  mmap: lib.func('void *mmap(void *addr, unsigned long len, int prot, int flags, int fd, long off)'),
  munmap: lib.func('int munmap(void *addr, unsigned long len)'),
  mprotect: lib.func('int mprotect(void *addr, unsigned long len, int prot)'),
  close: lib.func('int close(int fd)'),
  lseek: lib.func('long lseek(int fd, long off, int whence)'),
  read: lib.func('long read(int fd, void *buf, unsigned long n)'),
  write: lib.func('long write(int fd, const void *buf, unsigned long n)'),
  readv: lib.func('long readv(int fd, void *iov, int iovcnt)'),
  writev: lib.func('long writev(int fd, void *iov, int iovcnt)'),
  eventfd: lib.func('int eventfd(unsigned int initval, int flags)'),
  socket: lib.func('int socket(int domain, int type, int protocol)'),
  socketpair: lib.func('int socketpair(int domain, int type, int protocol, _Out_ int *sv)'),
  bind: lib.func('int bind(int fd, const void *addr, unsigned int len)'),
  listen: lib.func('int listen(int fd, int backlog)'),
  accept4: lib.func('int accept4(int fd, void *addr, void *len, int flags)'),
  connect: lib.func('int connect(int fd, const void *addr, unsigned int len)'),
  sendmsg: lib.func('long sendmsg(int fd, void *msg, int flags)'),
  recvmsg: lib.func('long recvmsg(int fd, void *msg, int flags)'),
  shutdown: lib.func('int shutdown(int fd, int how)'),
  getsockopt: lib.func('int getsockopt(int fd, int level, int name, void *val, _Inout_ unsigned int *len)'),
  open: lib.func('int open(const char *path, int flags, int mode)'),
  ioctl_ptr: lib.func('int ioctl(int fd, unsigned long req, void *arg)'),
  ioctl_int: lib.func('int ioctl(int fd, unsigned long req, long arg)'),
  setns: lib.func('int setns(int fd, int nstype)'),
  unshare: lib.func('int unshare(int flags)'),
  getpid: lib.func('int getpid()'),
  sched_yield: lib.func('int sched_yield()'),
  strerror: lib.func('const char *strerror(int errnum)'),
};

export const K = {
  // fcntl.h / memfd
  MFD_CLOEXEC: 0x1,
  MFD_ALLOW_SEALING: 0x2,
  F_GETFL: 3,
  F_SETFL: 4,
  F_ADD_SEALS: 1033,
  F_GET_SEALS: 1034,
  F_SEAL_SEAL: 0x1,
  F_SEAL_SHRINK: 0x2,
  F_SEAL_GROW: 0x4,
  F_SEAL_WRITE: 0x8,
  F_SEAL_FUTURE_WRITE: 0x10,
  O_RDONLY: 0,
  O_WRONLY: 1,
  O_RDWR: 2,
  O_NONBLOCK: 0x800,
  O_CLOEXEC: 0x80000,
  // mman.h
  PROT_READ: 1,
  PROT_WRITE: 2,
  MAP_SHARED: 1,
  MAP_PRIVATE: 2,
  MAP_FIXED: 0x10,
  MAP_ANONYMOUS: 0x20,
  // eventfd.h
  EFD_NONBLOCK: 0x800,
  EFD_CLOEXEC: 0x80000,
  // socket.h
  AF_UNIX: 1,
  SOCK_STREAM: 1,
  SOCK_DGRAM: 2,
  SOCK_SEQPACKET: 5,
  SOCK_NONBLOCK: 0x800,
  SOCK_CLOEXEC: 0x80000,
  SOL_SOCKET: 1,
  SO_PEERCRED: 17,
  SO_SNDBUF: 7,
  SCM_RIGHTS: 1,
  MSG_DONTWAIT: 0x40,
  MSG_NOSIGNAL: 0x4000,
  MSG_CMSG_CLOEXEC: 0x40000000,
  MSG_TRUNC: 0x20,
  MSG_CTRUNC: 0x8,
  SHUT_RDWR: 2,
  // sched.h
  CLONE_NEWNET: 0x40000000,
} as const;

export const errno = (): number => koffi.errno();

export const E = os.constants.errno;

/** Name of an errno value, e.g. 11 -> 'EAGAIN'. */
export function errnoName(code: number): string {
  for (const [name, value] of Object.entries(E)) if (value === code) return name;
  return `errno ${code}`;
}

/** The error for a failed call: a PermissionError for EPERM and EACCES, else an OsError. */
export function osError(syscall: string, errnoValue: number, message: string): OsError {
  return errnoValue === E.EPERM || errnoValue === E.EACCES
    ? new PermissionError(syscall, errnoValue, message)
    : new OsError(syscall, errnoValue, message);
}

/** Throw an OsError for the current errno, naming the call and its object. */
export function fail(syscall: string, what: string, hint = ''): never {
  const code = errno();
  const text = c.strerror(code) as string;
  throw osError(syscall, code, `${syscall}(${what}) failed: ${errnoName(code)} (${text})${hint ? `; ${hint}` : ''}`);
}

/** A raw pointer as koffi hands it out (a BigInt address in koffi 3). */
export type Pointer = bigint;

export const MAP_FAILED = 0xffffffffffffffffn;

/** A C heap block with an ArrayBuffer view on it, for hand-built structs (msghdr, ifreq). */
export function allocBlock(size: number): { ptr: Pointer; buf: Buffer } {
  const ptr = koffi.alloc('uint8_t', size) as unknown as Pointer;
  const buf = Buffer.from(koffi.view(ptr, size));
  buf.fill(0);
  return { ptr, buf };
}

/** The address of a block's byte `offset`, for pointers stored inside structs. */
export const addressOf = (ptr: Pointer, offset = 0): bigint => koffi.address(ptr) + BigInt(offset);

/** A zero-copy ArrayBuffer over mapped memory. */
export const viewOf = (ptr: Pointer, len: number): ArrayBuffer => koffi.view(ptr, len);

/** Level-triggered readiness callbacks on the libuv loop (koffi.node.poll). */
export type PollHandle = ReturnType<typeof koffi.node.poll>;
export const pollFd = (
  fd: number,
  opts: { readable?: boolean; writable?: boolean; disconnect?: boolean },
  cb: (status: number, ev: { readable: boolean; writable: boolean; disconnect: boolean }) => void,
): PollHandle => koffi.node.poll(fd, opts, cb as unknown as (ev: { readable: boolean; writable: boolean; disconnect: boolean }) => void);
