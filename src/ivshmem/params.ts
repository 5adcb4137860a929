// The parameters of one ivshmem 2.0 link and their rules (docs/spec.md §1.1,
// §1.5): MAX_PEERS, vectors, protocol and the three section sizes. One
// function, checkLinkParams, returns every problem of a parameter set; the
// broker, the in-process link, `ivshm net`, `ivshm check` and `ivshm up` all
// go through it, and a peer checks the INIT it receives with it. Problems name
// the option key (`outputSize`); the CLI maps keys to its flags.
import { InvalidArgumentError } from '../errors.js';
import { hex4, integerProblem, integerValue, isPageMultiple, nameProblem, PAGE, pageRound, sectionSizeProblem, sizeProblem, sizeValue } from '../units.js';

export const MIN_PEERS = 2;
/** Broker limit; the specification allows up to 65536 peers, Jailhouse 12 (docs/spec.md §1.1). */
export const MAX_PEERS = 64;
/** Jailhouse's MSI-X vector limit per peer. */
export const MAX_VECTORS = 16;
export const MAX_PROTOCOL = 0xffff;
export const DEFAULT_STATE_SIZE = PAGE;

/** A link's parameters, resolved: numbers, sizes page multiples. */
export interface LinkParams {
  readonly name: string;
  /** MAX_PEERS. */
  readonly peers: number;
  /** Interrupt vectors per peer. */
  readonly vectors: number;
  readonly protocol: number;
  readonly stateSize: number;
  readonly rwSize: number;
  /** Bytes of each peer's output section. */
  readonly outputSize: number;
}

export type LinkParamKey = keyof LinkParams;

/** Link parameters as a user gives them: numbers, or text like "64K", "0x7F000". */
export interface LinkParamsInput {
  /** Link name, used in memfd names ivshm:NAME:state|rw|outK (default "link"). */
  name?: string;
  peers: number | string;
  /** Default 1. */
  vectors?: number | string;
  /** Default 0. */
  protocol?: number | string;
  /** Default 4096. */
  stateSize?: number | string;
  /** Default 0 (no R/W section). */
  rwSize?: number | string;
  outputSize: number | string;
}

/** One problem of a link parameter set: the option it concerns and what is wrong. */
export interface ParamProblem {
  key: LinkParamKey;
  message: string;
}

export interface ParamRules {
  /**
   * 'round' (library and CLI): sizes are rounded up to the page, a State
   * Table of 0 becomes one page. 'exact' (system files, INIT from a broker):
   * a size that is not a page multiple is a problem.
   */
  pages: 'round' | 'exact';
}

/** Every problem of a parameter set, and the resolved parameters when there is none. */
export function checkLinkParams(
  input: LinkParamsInput,
  rules: ParamRules = { pages: 'round' },
): { params?: LinkParams; problems: ParamProblem[] } {
  const problems: ParamProblem[] = [];
  const add = (key: LinkParamKey, message: string): void => {
    problems.push({ key, message });
  };
  const name = input.name ?? 'link';
  const badName = nameProblem(name, 'link');
  if (badName) add('name', badName);

  const integer = (key: LinkParamKey, v: unknown, min: number, max: number, show: (n: number) => string = String): number | undefined => {
    const problem = integerProblem(v, min, max, show);
    if (problem) add(key, problem);
    return problem ? undefined : integerValue(v);
  };
  const peers = integer('peers', input.peers, MIN_PEERS, MAX_PEERS);
  const vectors = integer('vectors', input.vectors ?? 1, 1, MAX_VECTORS);
  const protocol = integer('protocol', input.protocol ?? 0, 0, MAX_PROTOCOL, hex4);

  const size = (key: 'stateSize' | 'rwSize' | 'outputSize', v: number | string): number | undefined => {
    let n = sizeValue(v);
    if (n === undefined) {
      add(key, sizeProblem(v)!);
      return undefined;
    }
    if (rules.pages === 'round') n = pageRound(key === 'stateSize' ? Math.max(n, 1) : n);
    else if (!isPageMultiple(n)) {
      add(key, `${n} bytes is not a multiple of the ${PAGE}-byte page`);
      return undefined;
    }
    const tooBig = sectionSizeProblem(n);
    if (tooBig) add(key, tooBig);
    return tooBig ? undefined : n;
  };
  const stateSize = size('stateSize', input.stateSize ?? DEFAULT_STATE_SIZE);
  const rwSize = size('rwSize', input.rwSize ?? 0);
  const outputSize = size('outputSize', input.outputSize);
  // One 32-bit entry per peer (docs/spec.md §1.2).
  if (stateSize !== undefined && peers !== undefined && stateSize < peers * 4) {
    add('stateSize', `${stateSize} bytes cannot hold ${peers} 32-bit state entries`);
  }
  if (problems.length) return { problems };
  return { params: { name, peers: peers!, vectors: vectors!, protocol: protocol!, stateSize: stateSize!, rwSize: rwSize!, outputSize: outputSize! }, problems };
}

/** Every problem as one line, "key: message; key: message" (the CLI re-words keys as flags). */
export const problemText = (problems: readonly ParamProblem[]): string => problems.map((p) => `${p.key}: ${p.message}`).join('; ');

/** Resolve link parameters (rounding sizes up to the page); throws InvalidArgumentError listing every problem. */
export function resolveLinkParams(input: LinkParamsInput): LinkParams {
  const r = checkLinkParams(input);
  if (!r.params) throw new InvalidArgumentError(problemText(r.problems));
  return r.params;
}
