// `ivshm check`: every mistake in a system file, reported at once with the
// file, the line, the path inside the file and the reason (docs/system.md).
// The rules live with what they are about: link parameters, sizes and names
// in the library (src/ivshmem/params.ts, src/units.ts), ivshmem-net sizing and
// MACs in src/net/; the parts here (check/) apply them to a file:
// check/parse.ts reads the text, check/cells.ts, check/links.ts and
// check/net.ts check by concern, check/limits.ts adds up shared memory.
//
// Jailhouse checks little of this: its configuration checker parses no
// ivshmem device and the hypervisor compares nothing between the peers of a
// link. Here a link is declared once; a member that repeats a parameter must
// agree with it; IDs are unique and below `peers`; sizes are page multiples;
// a zero-size R/W section is allowed (absent); there are no physical
// addresses to overlap, but net addresses can (docs/system.md "Rules").
import fs from 'node:fs';
import type { z } from 'zod';
import { nameProblem, sizeValue } from '../units.js';
import { checkCells } from './check/cells.js';
import { pathText, sortProblems, zodProblems, type Problem } from './check/format.js';
import { checkSharedMemory, shmFreeBytes } from './check/limits.js';
import { checkLink, type ResolvedLink } from './check/links.js';
import { NetLinkChecker } from './check/net.js';
import { parseSystemText, type Locate } from './check/parse.js';
import {
  cellSchema,
  linkShellSchema,
  memberSchema,
  systemShellSchema,
  type CellConfig,
  type LinkConfig,
  type MemberConfig,
  type RestartConfig,
} from './config-schema.js';

export { formatProblem, pathText, type Problem } from './check/format.js';
export { shmFreeBytes } from './check/limits.js';
export type { ResolvedLink, ResolvedMember } from './check/links.js';

export interface ResolvedCell extends Omit<CellConfig, 'restart'> {
  restart: RestartConfig;
}

export interface ResolvedSystem {
  name: string;
  file: string;
  runtimeDir?: string;
  sharedMemoryLimit: number;
  /** Bytes of shared memory all links need together. */
  sharedMemory: number;
  cells: ResolvedCell[];
  links: ResolvedLink[];
}

export interface CheckOptions {
  /** Override the file's limits.sharedMemory (bytes). */
  maxSharedMemory?: number;
  /** How messages name that override (default "maxSharedMemory"; the CLI passes its flag). */
  maxSharedMemoryName?: string;
  /** Free bytes on /dev/shm; default: statfs of /dev/shm; null skips the rule. */
  shmFree?: number | null;
}

/** The outcome of checking a system file: every problem found, or the resolved system. */
export interface CheckResult {
  file: string;
  problems: Problem[];
  /** Present when there are no problems. */
  system?: ResolvedSystem;
}

/** Check already-parsed data; `locate` maps a path to a line (optional). */
export function checkSystem(data: unknown, file: string, opts: CheckOptions = {}, locate: Locate = () => undefined): CheckResult {
  const problems: Problem[] = [];
  const add = (path: readonly PropertyKey[], message: string): void => {
    problems.push({ path: pathText(path), message, ...locate(path) });
  };
  const shell = systemShellSchema.safeParse(data, { reportInput: true });
  if (!shell.success) {
    reportIssues(shell.error, [], add);
    return { file, problems: sortProblems(problems) };
  }
  const { sys, cellPaths, linkPaths, memberPaths, knownCells } = parseParts(shell.data, add);

  // The system name names the runtime directory: a name, not a path.
  const badSystem = nameProblem(sys.name, 'system');
  if (badSystem) add(['name'], badSystem);
  const netnsOf = checkCells(sys.cells, cellPaths, add);

  const net = new NetLinkChecker(add);
  const linkIndex = new Map<string, number>();
  const links: ResolvedLink[] = [];
  let total = 0;
  sys.links.forEach((l, li) => {
    const lp: PropertyKey[] = ['links', linkPaths[li]!];
    const r = checkLink(l, lp, memberPaths[li]!, { add, knownCells, netnsOf, net });
    const first = linkIndex.get(l.name);
    if (first !== undefined) add([...lp, 'name'], `duplicate link name ${JSON.stringify(l.name)} (first at links[${linkPaths[first]}])`);
    else linkIndex.set(l.name, li);
    if (r.link) links.push(r.link);
    total += r.bytes;
  });

  const limit = opts.maxSharedMemory ?? sizeValue(sys.limits.sharedMemory)!;
  checkSharedMemory(total, {
    limit,
    name: opts.maxSharedMemory !== undefined ? (opts.maxSharedMemoryName ?? 'maxSharedMemory') : 'limits.sharedMemory',
    free: opts.shmFree === undefined ? shmFreeBytes() : opts.shmFree,
  }, add);

  if (problems.length) return { file, problems: sortProblems(problems) };
  return {
    file,
    problems,
    system: {
      name: sys.name,
      file,
      ...(sys.runtimeDir !== undefined ? { runtimeDir: sys.runtimeDir } : {}),
      sharedMemoryLimit: limit,
      sharedMemory: total,
      cells: sys.cells,
      links,
    },
  };
}

function reportIssues(error: z.ZodError, at: readonly PropertyKey[], add: (path: readonly PropertyKey[], message: string) => void): void {
  for (const issue of error.issues) for (const p of zodProblems(issue)) add([...at, ...p.path], p.message);
}

/**
 * The schema, in layers: the shell first, then each cell, link and member on
 * its own, so a broken one is reported and left out of the cross checks and
 * does not hide the problems of the others.
 */
function parseParts(shell: z.infer<typeof systemShellSchema>, add: (path: readonly PropertyKey[], message: string) => void) {
  const parseAt = <T>(schema: z.ZodType<T>, value: unknown, at: PropertyKey[]): T | undefined => {
    const r = schema.safeParse(value, { reportInput: true });
    if (r.success) return r.data;
    reportIssues(r.error, at, add);
    return undefined;
  };
  const sys = { ...shell, cells: [] as CellConfig[], links: [] as LinkConfig[] };
  const cellPaths: number[] = [];
  const linkPaths: number[] = [];
  const memberPaths: number[][] = [];
  const knownCells = new Set<string>();
  shell.cells.forEach((raw, i) => {
    const c = parseAt(cellSchema, raw, ['cells', i]);
    if (c) {
      sys.cells.push(c);
      cellPaths.push(i);
    }
    // A cell with other faults still exists for the references to it.
    const name = (raw as { name?: unknown } | null)?.name;
    if (typeof name === 'string') knownCells.add(name);
  });
  shell.links.forEach((raw, i) => {
    const l = parseAt(linkShellSchema, raw, ['links', i]);
    if (!l) return;
    const members: MemberConfig[] = [];
    const paths: number[] = [];
    l.members.forEach((m, mi) => {
      const pm = parseAt(memberSchema, m, ['links', i, 'members', mi]);
      if (pm) {
        members.push(pm);
        paths.push(mi);
      } else {
        const cell = (m as { cell?: unknown } | null)?.cell;
        if (typeof cell === 'string' && !knownCells.has(cell)) {
          add(['links', i, 'members', mi, 'cell'], `unknown cell ${JSON.stringify(cell)}; the cells are ${[...knownCells].join(', ')}`);
        }
      }
    });
    sys.links.push({ ...l, members });
    memberPaths.push(paths);
    linkPaths.push(i);
  });
  return { sys, cellPaths, linkPaths, memberPaths, knownCells };
}

/** Check the text of a system file: JSON when `file` ends in .json, else YAML. */
export function checkSystemText(text: string, file: string, opts: CheckOptions = {}): CheckResult {
  const parsed = parseSystemText(text, file);
  if (parsed.problems) return { file, problems: parsed.problems };
  return checkSystem(parsed.data, file, opts, parsed.locate);
}

/** Read and check a system file. */
export function checkSystemFile(path: string, opts: CheckOptions = {}): CheckResult {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    return { file: path, problems: [{ path: '', message: `cannot read the file (${code}); give the path of a .yaml or .json system file` }] };
  }
  return checkSystemText(text, path, opts);
}
