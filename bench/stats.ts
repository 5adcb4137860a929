// Shared benchmark helpers: percentiles from an HDR histogram, run spreads,
// and a description of the machine for every results file.
import os from 'node:os';
import * as hdr from 'hdr-histogram-js';

export function newHistogram(): hdr.Histogram {
  // Nanosecond values up to 10 s, 3 significant digits; pure JS build (no WASM init).
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 10_000_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

export interface Summary {
  n: number;
  medianUs: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
}

export function summarize(h: hdr.Histogram): Summary {
  const us = (ns: number) => Math.round(ns / 10) / 100;
  return {
    n: h.totalCount,
    medianUs: us(h.getValueAtPercentile(50)),
    p99Us: us(h.getValueAtPercentile(99)),
    p999Us: us(h.getValueAtPercentile(99.9)),
    maxUs: us(h.maxValue),
  };
}

/** Median and min-max of per-run values. */
export function spread(values: number[]): { median: number; min: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]! };
}

export function machine(): { cpu: string; cores: number; memGiB: number; kernel: string; node: string; date: string } {
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    date: new Date().toISOString(),
  };
}

export const fmt = (s: { median: number; min: number; max: number }, digits = 1): string =>
  `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
