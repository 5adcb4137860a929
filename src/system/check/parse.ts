// Reading a system file's text: YAML, or JSON when the file is named .json
// (docs/system.md "File format"). Hostile or broken input gets a problem, never
// a crash: aliases are bounded (an alias bomb expands exponentially) and so is
// nesting (a deep file exhausts the stack of a recursive reader).
import { isCollection, isPair, LineCounter, parseDocument, type Document } from 'yaml';
import type { Problem } from './format.js';

/** Nesting a system file may use; it needs four (links[].members[].key: mapping, list, mapping, list, mapping). */
export const MAX_DEPTH = 32;
/** Alias uses toJS may expand, counting nested ones (yaml's maxAliasCount). */
export const MAX_ALIASES = 100;

export type Locate = (path: readonly PropertyKey[]) => { line: number; column: number } | undefined;

export type Parsed = { data: unknown; locate: Locate; problems?: undefined } | { problems: Problem[] };

const isJsonFile = (file: string): boolean => /\.json$/i.test(file);

/** Parse a system file's text; `file` decides JSON (.json) or YAML. */
export function parseSystemText(text: string, file: string): Parsed {
  const json = isJsonFile(file);
  const lineCounter = new LineCounter();
  const at = (offset: number, message: string): Problem => {
    const pos = lineCounter.linePos(offset);
    return { path: '', message, line: pos.line, column: pos.col };
  };
  if (json) {
    const problem = jsonSyntaxProblem(text);
    if (problem) {
      // JSON.parse gives an offset for some errors only.
      if (problem.offset === undefined) return { problems: [{ path: '', message: problem.message }] };
      const before = text.slice(0, problem.offset);
      const line = before.split('\n').length;
      return { problems: [{ path: '', message: problem.message, line, column: problem.offset - before.lastIndexOf('\n') }] };
    }
  }
  const notValid = json ? 'not valid JSON' : 'not valid YAML or JSON';
  let doc: Document;
  try {
    doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  } catch (err) {
    return { problems: [{ path: '', message: `${notValid}: ${(err as Error).message}` }] };
  }
  if (doc.errors.length) {
    // The reader ran out of stack (where depends on the stack size): say
    // why, without a position, instead of "Maximum call stack size exceeded".
    if (doc.errors.some((e) => e.code === 'RESOURCE_EXHAUSTION')) return { problems: [{ path: '', message: tooDeep() }] };
    return { problems: doc.errors.map((e) => at(e.pos[0], `${notValid}: ${e.message.split('\n')[0]}`)) };
  }
  const deep = firstTooDeep(doc.contents);
  if (deep !== undefined) return { problems: [at(deep, tooDeep())] };
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (err) {
    const message = err instanceof ReferenceError
      ? `aliases expand to too much (more than ${MAX_ALIASES} alias uses, counting nested ones); write the repeated parts out`
      : `cannot be read: ${(err as Error).message}`;
    return { problems: [{ path: '', message }] };
  }
  const locate: Locate = (path) => {
    // Walk up until a node exists (a missing key is reported at its parent).
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n) as (string | number)[], true) as { range?: [number, number, number] } | undefined;
      if (node && typeof node === 'object' && node.range) {
        // For a key's value, point at the key when we can find it.
        const pos = lineCounter.linePos(keyStart(doc, path.slice(0, n)) ?? node.range[0]);
        return { line: pos.line, column: pos.col };
      }
    }
    return undefined;
  };
  return { data, locate };
}

const tooDeep = (): string => `nested more than ${MAX_DEPTH} levels deep; a system file needs no more than 5 (see docs/system.md)`;

/** Offset of the first collection nested deeper than MAX_DEPTH, walking without recursion. */
function firstTooDeep(root: unknown): number | undefined {
  const stack: [unknown, number][] = [[root, 0]];
  while (stack.length) {
    const [node, depth] = stack.pop()!;
    if (!isCollection(node)) continue;
    if (depth >= MAX_DEPTH) return node.range?.[0] ?? 0;
    for (const item of node.items as unknown[]) {
      if (isPair(item)) {
        stack.push([item.key, depth + 1], [item.value, depth + 1]);
      } else stack.push([item, depth + 1]);
    }
  }
  return undefined;
}

/** JSON.parse's verdict, its message without the echo of the text, and its offset when it gives one. */
function jsonSyntaxProblem(text: string): { message: string; offset?: number } | undefined {
  try {
    JSON.parse(text);
    return undefined;
  } catch (err) {
    let message = (err as Error).message.replace(/, ".*" is not valid JSON$/s, '');
    const m = / in JSON at position (\d+)/.exec(message);
    message = message.replace(/ in JSON at position \d+.*$/s, '');
    return { message: `not valid JSON: ${message}`, ...(m ? { offset: Number(m[1]) } : {}) };
  }
}

function keyStart(doc: Document, path: readonly PropertyKey[]): number | undefined {
  const last = path[path.length - 1];
  if (typeof last !== 'string') return undefined;
  const parent = doc.getIn(path.slice(0, -1) as (string | number)[], true) as { items?: { key?: { value?: unknown; range?: [number, number, number] } }[] } | undefined;
  const pair = parent?.items?.find((p) => p.key?.value === last);
  return pair?.key?.range?.[0];
}
