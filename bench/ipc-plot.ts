// SVG plot of bench/ipc.ts results, written by hand (no plotting service):
// round-trip median and throughput against payload size, log-log.
// `node dist/bench/ipc-plot.js bench/results/ipc.json --out bench/results`
// re-renders a file.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './args.js';
import { writeResults } from './stats.js';

interface Row {
  transport: string;
  label: string;
  size: number;
  latency?: { p50: number; p99: number };
  throughput?: { GBps: number };
}
interface Data {
  meta: { date: string; node: string; cpu: string; cpus: number; platform: string; quick: boolean };
  results: Row[];
}

const COLORS = ['#d62728', '#ff7f0e', '#bcbd22', '#9467bd', '#e377c2', '#1f77b4', '#17becf', '#2ca02c', '#7f7f7f', '#8c564b'];
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const sizeLabel = (n: number) => (n >= 1 << 20 ? `${n / (1 << 20)}M` : n >= 1024 ? `${n / 1024}K` : `${n}`);

function panel(rows: Row[], series: string[], value: (r: Row) => number | undefined, title: string, unit: string, x0: number, y0: number, w: number, h: number): string {
  const sizes = [...new Set(rows.map((r) => r.size))].sort((a, b) => a - b);
  const vals = rows.map(value).filter((v): v is number => v !== undefined && v > 0);
  if (!vals.length || !sizes.length) return '';
  const lo = Math.floor(Math.log10(Math.min(...vals)));
  const hi = Math.ceil(Math.log10(Math.max(...vals)));
  const lx = (s: number) => x0 + (sizes.length === 1 ? w / 2 : (sizes.indexOf(s) / (sizes.length - 1)) * w);
  const ly = (v: number) => y0 + h - ((Math.log10(v) - lo) / Math.max(1, hi - lo)) * h;
  const out: string[] = [];
  out.push(`<text x="${x0 + w / 2}" y="${y0 - 12}" text-anchor="middle" font-weight="bold">${esc(title)}</text>`);
  for (let e = lo; e <= hi; e++) {
    const y = ly(10 ** e);
    out.push(`<line x1="${x0}" y1="${y}" x2="${x0 + w}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${x0 - 6}" y="${y + 4}" text-anchor="end" font-size="11">${10 ** e >= 1 ? (10 ** e).toLocaleString('en') : (10 ** e).toPrecision(1)}</text>`);
  }
  for (const s of sizes) {
    out.push(`<line x1="${lx(s)}" y1="${y0}" x2="${lx(s)}" y2="${y0 + h}" stroke="#eee"/>`);
    out.push(`<text x="${lx(s)}" y="${y0 + h + 16}" text-anchor="middle" font-size="11">${sizeLabel(s)}</text>`);
  }
  out.push(`<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${x0 + w / 2}" y="${y0 + h + 34}" text-anchor="middle" font-size="12">payload (bytes)</text>`);
  out.push(`<text transform="translate(${x0 - 46},${y0 + h / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(unit)}</text>`);
  series.forEach((name, i) => {
    const pts = rows
      .filter((r) => r.transport === name)
      .map((r) => [r.size, value(r)] as const)
      .filter((p): p is readonly [number, number] => p[1] !== undefined && p[1] > 0)
      .sort((a, b) => a[0] - b[0]);
    if (!pts.length) return;
    const c = COLORS[i % COLORS.length];
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map(([s, v]) => `${lx(s).toFixed(1)},${ly(v).toFixed(1)}`).join(' ')}"/>`);
    for (const [s, v] of pts) out.push(`<circle cx="${lx(s).toFixed(1)}" cy="${ly(v).toFixed(1)}" r="3" fill="${c}"><title>${esc(name)} ${sizeLabel(s)}: ${v}</title></circle>`);
  });
  return out.join('\n');
}

export function renderSvg(data: Data): string {
  const rows = data.results;
  const series = [...new Set(rows.map((r) => r.transport))];
  const labels = new Map(rows.map((r) => [r.transport, r.label]));
  const W = 1000;
  const H = 520;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">ivshm bench:ipc: round trip and throughput by payload${data.meta.quick ? ' (quick run)' : ''}</text>`);
  parts.push(panel(rows, series, (r) => r.latency?.p50, 'round trip, median (µs, log)', 'µs', 80, 60, 360, 320));
  parts.push(panel(rows, series, (r) => r.throughput?.GBps, 'throughput (GB/s, log)', 'GB/s', 560, 60, 360, 320));
  series.forEach((name, i) => {
    const x = 80 + (i % 3) * 300;
    const y = 450 + Math.floor(i / 3) * 18;
    parts.push(`<line x1="${x}" y1="${y - 4}" x2="${x + 20}" y2="${y - 4}" stroke="${COLORS[i % COLORS.length]}" stroke-width="3"/>`);
    parts.push(`<text x="${x + 26}" y="${y}">${esc(labels.get(name) ?? name)}</text>`);
  });
  const m = data.meta;
  parts.push(`<text x="${W / 2}" y="${H - 8}" text-anchor="middle" font-size="11" fill="#555">${esc(`${m.cpu} x${m.cpus}, ${m.platform}, Node ${m.node}, ${m.date}`)}</text>`);
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === fs.realpathSync(process.argv[1])) {
  const args = benchArgs('ipc-plot', 'Re-renders the SVG plot of a bench:ipc results file (ipc.json -> ipc.svg in --out).', {}, { positional: 'FILE.json' });
  const file = args.positional;
  const data = JSON.parse(fs.readFileSync(file, 'utf8')) as Data;
  writeResults(args.out, { [`${path.basename(file, '.json')}.svg`]: renderSvg(data) });
}
