// One error base class with stable codes (DESIGN.md "Errors").
//
// `instanceof` must work across duplicated copies of this package (two
// versions in one node_modules tree), so each class answers `instanceof`
// through a Symbol.for brand instead of its prototype chain, as undici does.

const BRAND = Symbol.for('ivshm.error');
const FAMILY = Symbol.for('ivshm.error.family');

export type IvshmErrorCode =
  | 'IVSHM_ERR_CONFIG'
  | 'IVSHM_ERR_INVALID_ARGUMENT'
  | 'IVSHM_ERR_OS'
  | 'IVSHM_ERR_NOT_SUPPORTED'
  | 'IVSHM_ERR_PERMISSION'
  | 'IVSHM_ERR_PROTOCOL'
  | 'IVSHM_ERR_PEER_VIOLATION'
  | 'IVSHM_ERR_REFUSED'
  | 'IVSHM_ERR_PEER_GONE'
  | 'IVSHM_ERR_CLOSED'
  | 'IVSHM_ERR_TIMEOUT'
  | 'IVSHM_ERR_BUSY';

export type ErrorFamily =
  | 'config'
  | 'os'
  | 'protocol'
  | 'peer-violation'
  | 'refused'
  | 'peer-gone'
  | 'closed'
  | 'base';

function brandedHasInstance(family: ErrorFamily) {
  return (value: unknown): boolean => {
    if (typeof value !== 'object' || value === null) return false;
    const v = value as Record<symbol, unknown>;
    if (v[BRAND] !== true) return false;
    return family === 'base' || v[FAMILY] === family;
  };
}

export class IvshmError extends Error {
  readonly code: IvshmErrorCode;
  declare readonly [BRAND]: true;
  declare readonly [FAMILY]: ErrorFamily;

  constructor(code: IvshmErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
    Object.defineProperty(this, BRAND, { value: true });
    Object.defineProperty(this, FAMILY, { value: (new.target as unknown as { family: ErrorFamily }).family });
  }

  static readonly family: ErrorFamily = 'base';
  static override [Symbol.hasInstance] = brandedHasInstance('base');
}

/** Bad configuration or bad argument from a user: names what was wrong and what to do. */
export class ConfigError extends IvshmError {
  static override readonly family: ErrorFamily = 'config';
  static override [Symbol.hasInstance] = brandedHasInstance('config');
  constructor(message: string, code: 'IVSHM_ERR_CONFIG' | 'IVSHM_ERR_INVALID_ARGUMENT' = 'IVSHM_ERR_CONFIG') {
    super(code, message);
  }
}

/** A failed OS call; `errno` and `syscall` name it. */
export class OsError extends IvshmError {
  static override readonly family: ErrorFamily = 'os';
  static override [Symbol.hasInstance] = brandedHasInstance('os');
  readonly errno: number;
  readonly syscall: string;
  constructor(syscall: string, errno: number, message: string, code: IvshmErrorCode = 'IVSHM_ERR_OS') {
    super(code, message);
    this.errno = errno;
    this.syscall = syscall;
  }
}

/** Malformed or unexpected message on a control socket (ours or QEMU's). */
export class ProtocolError extends IvshmError {
  static override readonly family: ErrorFamily = 'protocol';
  static override [Symbol.hasInstance] = brandedHasInstance('protocol');
  constructor(message: string) {
    super('IVSHM_ERR_PROTOCOL', message);
  }
}

/** A peer broke the shared-memory protocol; `reason` is a stable reason code. */
export class PeerViolationError extends IvshmError {
  static override readonly family: ErrorFamily = 'peer-violation';
  static override [Symbol.hasInstance] = brandedHasInstance('peer-violation');
  readonly reason: string;
  constructor(reason: string, message: string) {
    super('IVSHM_ERR_PEER_VIOLATION', message);
    this.reason = reason;
  }
}

/** The broker (or server) refused what we asked: duplicate ID, link full, ... */
export class RefusedError extends IvshmError {
  static override readonly family: ErrorFamily = 'refused';
  static override [Symbol.hasInstance] = brandedHasInstance('refused');
  constructor(message: string) {
    super('IVSHM_ERR_REFUSED', message);
  }
}

/** The other side went away. */
export class PeerGoneError extends IvshmError {
  static override readonly family: ErrorFamily = 'peer-gone';
  static override [Symbol.hasInstance] = brandedHasInstance('peer-gone');
  constructor(message: string) {
    super('IVSHM_ERR_PEER_GONE', message);
  }
}

/** The object was closed before or during the operation. */
export class ClosedError extends IvshmError {
  static override readonly family: ErrorFamily = 'closed';
  static override [Symbol.hasInstance] = brandedHasInstance('closed');
  constructor(message: string) {
    super('IVSHM_ERR_CLOSED', message);
  }
}
