// Shared benchmark helpers: the one HDR histogram set-up and its
// percentiles, run spreads, a description of the machine for every results
// file, and writing the result files.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as hdr from 'hdr-histogram-js';

/** Nanosecond values up to 120 s, 3 significant digits; pure JS build (no WASM init). */
export function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120e9, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

/** Nanoseconds to microseconds, two decimals. */
export const nsToUs = (ns: number): number => Math.round(ns / 10) / 100;

export interface Summary {
  n: number;
  medianUs: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
}

export function summarize(h: hdr.Histogram): Summary {
  return {
    n: h.totalCount,
    medianUs: nsToUs(h.getValueAtPercentile(50)),
    p99Us: nsToUs(h.getValueAtPercentile(99)),
    p999Us: nsToUs(h.getValueAtPercentile(99.9)),
    maxUs: nsToUs(h.maxValue),
  };
}

/** Median and min-max of per-run values. */
export function spread(values: number[]): { median: number; min: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]! };
}

export interface Machine {
  cpu: string;
  cores: number;
  memGiB: number;
  kernel: string;
  arch: string;
  node: string;
  /** When machine() was called. */
  date: string;
  /** 1, 5 and 15 minute load averages at the call (make it before the runs). */
  load: number[];
}

export function machine(): Machine {
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    arch: os.arch(),
    node: process.version,
    date: new Date().toISOString(),
    load: loadavg(),
  };
}

export const loadavg = (): number[] => os.loadavg().map((x) => Math.round(x * 100) / 100);

/** "CPU, N cores, M GiB, Linux K, Node V" for a results table. */
export const machineLine = (m: Machine): string => `${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, Linux ${m.kernel}, Node ${m.node}`;

export const fmt = (s: { median: number; min: number; max: number }, digits = 1): string =>
  `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;

/** Write result files (name -> content) into `dir`, creating it; returns their paths and says where they went. */
export function writeResults(dir: string, files: Record<string, string>): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const paths = Object.entries(files).map(([name, text]) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text.endsWith('\n') ? text : `${text}\n`);
    return p;
  });
  const show = (p: string) => (path.relative(process.cwd(), p).startsWith('..') ? p : path.relative(process.cwd(), p));
  console.error(`wrote ${paths.map(show).join(', ')}`);
  return paths;
}
