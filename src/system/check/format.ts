// How `ivshm check` words a problem: FILE:LINE:COL: PATH: REASON, and the
// schema's (zod's) issues in the same words as the checker's own rules.
import type { z } from 'zod';

/** One problem of a system file: the path inside it, the reason and where it is. */
export interface Problem {
  /** Path inside the file, e.g. links[0].members[1].id. */
  path: string;
  message: string;
  line?: number;
  column?: number;
}

/** Record a problem at a path inside the file. */
export type AddProblem = (path: readonly PropertyKey[], message: string) => void;

export const pathText = (path: readonly PropertyKey[]): string =>
  path.reduce<string>((s, k) => (typeof k === 'number' ? `${s}[${k}]` : s ? `${s}.${String(k)}` : String(k)), '');

/** One line per problem: FILE:LINE:COL: PATH: REASON (line omitted when unknown). */
export function formatProblem(file: string, p: Problem): string {
  const where = p.line !== undefined ? `${file}:${p.line}:${p.column ?? 1}` : file;
  return p.path ? `${where}: ${p.path}: ${p.message}` : `${where}: ${p.message}`;
}

/** In file order, so the list reads top to bottom (the sort is stable for equal positions). */
export const sortProblems = (problems: Problem[]): Problem[] =>
  problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));

/** A schema issue as problems (an unknown-keys issue names each key). */
export function zodProblems(issue: z.core.$ZodIssue): { path: PropertyKey[]; message: string }[] {
  const path = issue.path as PropertyKey[];
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((k) => ({ path: [...path, k], message: 'unknown key; check the spelling against examples/ and docs/system.md' }));
    case 'invalid_type':
      if (issue.input === undefined) return [{ path, message: 'is required' }];
      return [{ path, message: `must be ${issue.expected === 'int' ? 'an integer' : `a${/^[aeiou]/.test(issue.expected) ? 'n' : ''} ${issue.expected}`}, not ${describe(issue.input)}` }];
    case 'invalid_value':
      return [{ path, message: `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, not ${describe(issue.input)}` }];
    case 'invalid_union':
      return [{ path, message: `has an unexpected form (${describe(issue.input)}); see docs/system.md` }];
    case 'too_small':
      if (issue.origin === 'array') return [{ path, message: `needs at least ${issue.minimum as number} entr${issue.minimum === 1 ? 'y' : 'ies'}` }];
      return [{ path, message: `must be at least ${issue.minimum as number}` }];
    case 'too_big':
      return [{ path, message: `must be at most ${issue.maximum as number}` }];
    default:
      return [{ path, message: issue.message }];
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  return String(v);
}
