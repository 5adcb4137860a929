// Units and names: how a size, an integer or a name is written, and the
// limits every layer shares (docs/spec.md §1.5 "Sizes, limits and names"). Each rule
// is written here once; the CLI, the library, the system checker, the
// supervisor and the OS layer call it. Nothing here knows a CLI flag: the
// caller says what the value is (`what`), e.g. "outputSize" or "--output-size".
import { InvalidArgumentError } from './errors.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** Every section is mapped and protected per page, so its size is a page multiple. */
export const PAGE = 4096;

/**
 * The largest section (State Table, R/W or output section) we map. Node 20
 * with koffi 3 aborts the whole process (a FATAL napi error, not an
 * exception) when asked for a view above 4 GiB; 1 GiB leaves a wide margin
 * below that and above any section a Jailhouse configuration uses
 * (docs/spec.md §1.5).
 */
export const MAX_SECTION_SIZE = GiB;

export const pageRound = (n: number): number => Math.ceil(n / PAGE) * PAGE;
export const isPageMultiple = (n: number): boolean => n % PAGE === 0;

// Decimal or 0x hex, then an optional K, M or G (binary multiples) with an
// optional B or iB, or a bare B: 4096, 64K, 64KiB, 1M, 0x7F000, 512B.
// Written without the i flag so that JSON Schema (`ivshm check --schema`) can use it as is.
export const SIZE_PATTERN = '^\\s*(0[xX][0-9a-fA-F]+|\\d+)\\s*(?:([kmgKMG])(?:[iI]?[bB])?|[bB])?\\s*$';
const SIZE_RE = new RegExp(SIZE_PATTERN);
const MULT: Record<string, number> = { '': 1, k: KiB, m: MiB, g: GiB };
/** What a size may look like, for messages. */
export const SIZE_FORMS = 'a number or a string like "4096", "64K", "1M" or "0x7F000"';

/** The bytes a size denotes (a number or text like "64K"), or undefined when it is not a size. */
export function sizeValue(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = SIZE_RE.exec(v);
  if (!m) return undefined;
  const n = Number(m[1]) * MULT[(m[2] ?? '').toLowerCase()]!;
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Why `v` is not a size, or undefined when it is one. */
export function sizeProblem(v: unknown): string | undefined {
  if (sizeValue(v) !== undefined) return undefined;
  return `${JSON.stringify(v)} is not a size; write bytes with an optional K, M or G suffix, or in hex: 64K, 1M, 0x7F000`;
}

/** Parse a size; throws InvalidArgumentError naming `what`. */
export function parseSize(v: number | string, what: string): number {
  const problem = sizeProblem(v);
  if (problem) throw new InvalidArgumentError(`${what}: ${problem}`);
  return sizeValue(v)!;
}

/** Why `bytes` cannot be a section, or undefined when it can (the caller rounds to the page first). */
export function sectionSizeProblem(bytes: number): string | undefined {
  if (bytes > MAX_SECTION_SIZE) {
    return `${bytes} bytes is above the largest section size, ${formatBytes(MAX_SECTION_SIZE)} (${MAX_SECTION_SIZE} bytes)`;
  }
  return undefined;
}

export const INTEGER_PATTERN = '^\\s*(0[xX][0-9a-fA-F]+|\\d+)\\s*$';
const INT_RE = new RegExp(INTEGER_PATTERN);

/** A non-negative integer written as a number, decimal or 0x hex text; undefined when it is none. */
export function integerValue(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && INT_RE.test(v) ? Number(v) : NaN;
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Why `v` is not an integer in [min, max], or undefined; `show` formats numbers (e.g. as hex). */
export function integerProblem(v: unknown, min: number, max: number, show: (n: number) => string = String): string | undefined {
  const n = integerValue(v);
  if (n === undefined) return `${JSON.stringify(v)} is not an integer (decimal or 0x hex)`;
  if (n < min || n > max) return `${show(n)} is outside ${show(min)}..${show(max)}`;
  return undefined;
}

/** Parse an integer ("16", "0x4001") in [min, max]; throws InvalidArgumentError naming `what`. */
export function parseInteger(v: number | string, min: number, max: number, what: string): number {
  const problem = integerProblem(v, min, max);
  if (problem) throw new InvalidArgumentError(`${what}: ${problem}`);
  return integerValue(v)!;
}

/** 0x0001, 0x4348: how protocol numbers are shown. */
export const hex4 = (n: number): string => `0x${n.toString(16).toUpperCase().padStart(4, '0')}`;

/** "4 KiB", "1.5 MiB", "1 GiB": for messages and status lines. */
export function formatBytes(n: number): string {
  if (n >= GiB && n % GiB === 0) return `${n / GiB} GiB`;
  if (n >= MiB) return `${+(n / MiB).toFixed(1)} MiB`;
  if (n >= KiB) return `${+(n / KiB).toFixed(1)} KiB`;
  return `${n} bytes`;
}

// ---- names ----

// Every name that becomes part of a path or an OS object (system, cell, link,
// network namespace, memfd): no '/', never '.' or '..', nothing a shell or
// `ip` would read differently, bounded length.
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const NAME_RULE = "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit";

// Linux IFNAMSIZ is 16 bytes including the NUL; '/', ':' and whitespace are
// refused by the kernel or by ip, so the same alphabet as other names.
const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$/;
export const IFNAME_RULE = "use 1-15 letters, digits, '.', '_' or '-', starting with a letter or digit";

export const isName = (s: unknown): s is string => typeof s === 'string' && NAME_RE.test(s);
export const isInterfaceName = (s: unknown): s is string => typeof s === 'string' && IFNAME_RE.test(s);

/** Why `name` is not a valid name of a `kind` ("cell", "link", "network namespace"), or undefined. */
export function nameProblem(name: unknown, kind: string): string | undefined {
  return isName(name) ? undefined : `${JSON.stringify(name)} is not a valid ${kind} name: ${NAME_RULE}`;
}

/** Why `name` is not a valid network interface name, or undefined. */
export function interfaceNameProblem(name: unknown): string | undefined {
  return isInterfaceName(name) ? undefined : `${JSON.stringify(name)} is not a valid interface name: ${IFNAME_RULE}`;
}

/** Throw InvalidArgumentError unless `name` is a valid name of a `kind`. */
export function checkName(name: unknown, kind: string): string {
  const problem = nameProblem(name, kind);
  if (problem) throw new InvalidArgumentError(problem);
  return name as string;
}

/** Throw InvalidArgumentError unless `name` is a valid network interface name. */
export function checkInterfaceName(name: unknown): string {
  const problem = interfaceNameProblem(name);
  if (problem) throw new InvalidArgumentError(problem);
  return name as string;
}
