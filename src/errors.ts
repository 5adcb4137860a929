// One error base class with stable codes, one subclass per code (the table is
// in the README, "Errors"; undici pairs its classes and codes the same way).
//
// `instanceof` must work across duplicated copies of this package (two
// versions in one node_modules tree), so each class answers `instanceof`
// through a Symbol.for brand that lists the kinds an error is, instead of its
// prototype chain.

const KINDS = Symbol.for('ivshm.error.kinds');

/** The stable code of every error the library throws (one class per code; README "Errors"). */
export type IvshmErrorCode =
  | 'IVSHM_ERR_CONFIG'
  | 'IVSHM_ERR_INVALID_ARGUMENT'
  | 'IVSHM_ERR_OS'
  | 'IVSHM_ERR_PERMISSION'
  | 'IVSHM_ERR_NOT_SUPPORTED'
  | 'IVSHM_ERR_PROTOCOL'
  | 'IVSHM_ERR_PEER_VIOLATION'
  | 'IVSHM_ERR_REFUSED'
  | 'IVSHM_ERR_PEER_GONE'
  | 'IVSHM_ERR_CLOSED'
  | 'IVSHM_ERR_TIMEOUT'
  | 'IVSHM_ERR_BUSY';

function hasKind(kind: string, value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const kinds = (value as Record<symbol, unknown>)[KINDS];
  return Array.isArray(kinds) && kinds.includes(kind);
}

interface ErrorClass {
  readonly kind: string;
  readonly code: IvshmErrorCode;
}

/** The base of every error the library throws; `code` is stable, the message names the object and what to do. */
export abstract class IvshmError extends Error {
  readonly code: IvshmErrorCode;
  declare readonly [KINDS]: readonly string[];

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = (new.target as unknown as ErrorClass).code;
    this.name = (new.target as unknown as ErrorClass).kind;
    const kinds: string[] = [];
    for (let c: unknown = new.target; typeof c === 'function' && c !== Error; c = Object.getPrototypeOf(c)) {
      kinds.push((c as unknown as ErrorClass).kind);
    }
    Object.defineProperty(this, KINDS, { value: Object.freeze(kinds) });
  }

  /** @internal */
  static readonly kind: string = 'IvshmError';
  /** @internal */
  declare static readonly code: IvshmErrorCode;
  /** Answers `instanceof` by brand, so errors from another copy of the package match too. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return hasKind(this.kind, value);
  }
}

/** IVSHM_ERR_CONFIG: a system file or link configuration is wrong; the message names the key and the fix. */
export class ConfigError extends IvshmError {
  static override readonly kind: string = 'ConfigError';
  static override readonly code: IvshmErrorCode = 'IVSHM_ERR_CONFIG';
}

/** IVSHM_ERR_INVALID_ARGUMENT: a function was called with a value it cannot use. */
export class InvalidArgumentError extends IvshmError {
  static override readonly kind: string = 'InvalidArgumentError';
  static override readonly code: IvshmErrorCode = 'IVSHM_ERR_INVALID_ARGUMENT';
}

/** IVSHM_ERR_OS: a failed OS call; `errno` and `syscall` name it. */
export class OsError extends IvshmError {
  static override readonly kind: string = 'OsError';
  static override readonly code: IvshmErrorCode = 'IVSHM_ERR_OS';
  readonly errno: number;
  readonly syscall: string;
  constructor(syscall: string, errno: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.errno = errno;
    this.syscall = syscall;
  }
}

/** IVSHM_ERR_PERMISSION: an OS call refused for lack of privilege (EPERM, EACCES); also an OsError. */
export class PermissionError extends OsError {
  static override readonly kind: string = 'PermissionError';
  static override readonly code: IvshmErrorCode = 'IVSHM_ERR_PERMISSION';
}

/** IVSHM_ERR_NOT_SUPPORTED: this host, device or peer lacks what the operation needs. */
export class NotSupportedError extends IvshmError {
  static override readonly kind: string = 'NotSupportedError';
  static override readonly code: IvshmErrorCode = 'IVSHM_ERR_NOT_SUPPORTED';
}

/** IVSHM_ERR_PROTOCOL: a malformed or unexpected message on a control socket (ours or QEMU's). */
export class ProtocolError extends IvshmError {
  static override readonly kind: string = 'ProtocolError';
  static override readonly code: IvshmErrorCode = 'IVSHM_ERR_PROTOCOL';
}

/** IVSHM_ERR_PEER_VIOLATION: a peer broke the shared-memory protocol; `reason` is a stable reason code. */
export class PeerViolationError extends IvshmError {
  static override readonly kind: string = 'PeerViolationError';
  static override readonly code: IvshmErrorCode = 'IVSHM_ERR_PEER_VIOLATION';
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** IVSHM_ERR_REFUSED: the broker (or server) refused what we asked: ID taken, link full, bad token. */
export class RefusedError extends IvshmError {
  static override readonly kind: string = 'RefusedError';
  static override readonly code: IvshmErrorCode = 'IVSHM_ERR_REFUSED';
}

/** IVSHM_ERR_PEER_GONE: the other side went away. */
export class PeerGoneError extends IvshmError {
  static override readonly kind: string = 'PeerGoneError';
  static override readonly code: IvshmErrorCode = 'IVSHM_ERR_PEER_GONE';
}

/** IVSHM_ERR_CLOSED: the object was closed before or during the operation. */
export class ClosedError extends IvshmError {
  static override readonly kind: string = 'ClosedError';
  static override readonly code: IvshmErrorCode = 'IVSHM_ERR_CLOSED';
}

/** IVSHM_ERR_TIMEOUT: an answer did not come within the time allowed. */
export class TimeoutError extends IvshmError {
  static override readonly kind: string = 'TimeoutError';
  static override readonly code: IvshmErrorCode = 'IVSHM_ERR_TIMEOUT';
}

/** IVSHM_ERR_BUSY: the object is in use (a loan open, a server already started, every ID taken). */
export class BusyError extends IvshmError {
  static override readonly kind: string = 'BusyError';
  static override readonly code: IvshmErrorCode = 'IVSHM_ERR_BUSY';
}

/** Every code and its class, for the README table and tests. */
export const ERROR_CLASSES = {
  IVSHM_ERR_CONFIG: ConfigError,
  IVSHM_ERR_INVALID_ARGUMENT: InvalidArgumentError,
  IVSHM_ERR_OS: OsError,
  IVSHM_ERR_PERMISSION: PermissionError,
  IVSHM_ERR_NOT_SUPPORTED: NotSupportedError,
  IVSHM_ERR_PROTOCOL: ProtocolError,
  IVSHM_ERR_PEER_VIOLATION: PeerViolationError,
  IVSHM_ERR_REFUSED: RefusedError,
  IVSHM_ERR_PEER_GONE: PeerGoneError,
  IVSHM_ERR_CLOSED: ClosedError,
  IVSHM_ERR_TIMEOUT: TimeoutError,
  IVSHM_ERR_BUSY: BusyError,
} as const satisfies Record<IvshmErrorCode, unknown>;
