// Command-line options of the benchmarks, through node:util parseArgs in
// strict mode: every benchmark takes --help (its options and defaults) and
// --out (the folder its result files go to), and refuses an unknown flag, a
// stray argument or a bad number with a message and exit status 2.
//
// Results go to a scratch folder unless --out names another, so a trial run
// never rewrites the tracked bench/results/: `--out bench/results` does that,
// on purpose.
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

/** Where results go without --out. */
export const SCRATCH_DIR = path.join(os.tmpdir(), 'ivshm-bench');

export interface BenchOption {
  type: 'string' | 'boolean';
  /** One line for --help. */
  help: string;
  /** The value's placeholder in --help (strings), e.g. 'N' or 'LIST'. */
  arg?: string;
  default?: string;
}

export interface NumRange {
  min: number;
  max: number;
  integer?: boolean;
  fallback?: number;
}

type Values<O extends Record<string, BenchOption>> = {
  [K in keyof O]: O[K]['type'] extends 'boolean' ? boolean : O[K] extends { default: string } ? string : string | undefined;
};

export interface BenchArgs<O extends Record<string, BenchOption>> {
  values: Values<O>;
  /** The one positional argument, when `positional` named it. */
  positional: string;
  /** The folder for result files (absolute). */
  out: string;
  /**
   * The number in option `name` (or `fallback` when it was not given), an
   * integer in [min, max] unless `integer` is false; a usage error otherwise.
   */
  num(name: keyof O & string, range: NumRange): number;
  /** Ends the process with a usage error naming the benchmark. */
  fail(message: string): never;
}

/**
 * Parse `argv` for the benchmark `script` (its file name without .js).
 * `about` is the first paragraph of --help. Adds --out and --help. With
 * `positional` (its placeholder, e.g. 'FILE'), exactly one positional argument
 * is required; otherwise none is allowed.
 */
export function benchArgs<const O extends Record<string, BenchOption>>(
  script: string,
  about: string,
  options: O,
  { positional, argv = process.argv.slice(2) }: { positional?: string; argv?: string[] } = {},
): BenchArgs<O> {
  const all: Record<string, BenchOption> = {
    ...options,
    out: { type: 'string', arg: 'DIR', default: SCRATCH_DIR, help: 'folder for the result files (`--out bench/results` updates the tracked results)' },
    help: { type: 'boolean', help: 'print this help' },
  };
  const fail = (message: string): never => {
    console.error(`${script}: ${message} (try --help)`);
    process.exit(2);
  };
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: positional !== undefined,
      options: Object.fromEntries(Object.entries(all).map(([k, o]) => [k, o.default === undefined ? { type: o.type } : { type: o.type, default: o.default }])),
    }));
  } catch (err) {
    const first = (err as Error).message.split('\n')[0]!.replace(/\. To specify a positional argument.*$/, '');
    return fail(first.charAt(0).toLowerCase() + first.slice(1));
  }
  if (values.help) {
    const flag = (k: string, o: BenchOption) => `--${k}${o.type === 'string' ? ` ${o.arg ?? 'VALUE'}` : ''}`;
    const width = Math.max(...Object.entries(all).map(([k, o]) => flag(k, o).length));
    console.log(
      [
        `usage: node dist/bench/${script}.js [options]${positional ? ` ${positional}` : ''}`,
        '',
        about,
        '',
        ...Object.entries(all).map(([k, o]) => `  ${flag(k, o).padEnd(width)}  ${o.help}${o.default === undefined ? '' : ` (default ${o.default})`}`),
      ].join('\n'),
    );
    process.exit(0);
  }
  if (positional !== undefined && positionals.length !== 1) fail(`expected one ${positional}, got ${positionals.length}`);
  const num = (name: string, { min, max, integer = true, fallback }: NumRange): number => {
    const text = values[name];
    if (text === undefined && fallback !== undefined) return fallback;
    const n = typeof text === 'string' && text.trim() !== '' ? Number(text) : NaN;
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
      fail(`--${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, not ${JSON.stringify(text)}`);
    }
    return n;
  };
  return { values: values as Values<O>, positional: positionals[0] ?? '', out: path.resolve(values.out as string), num, fail };
}
