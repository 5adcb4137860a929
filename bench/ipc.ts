// npm run bench:ipc [-- --quick] [--only channel-poll,uds] [--sizes 64,1024] [--runs N] [--out DIR]
//
// --runs N repeats the whole sweep N times, transports interleaved within each
// run; the table then shows the median over runs with (min–max).
//
// One run, one machine, the same messages over every transport a Node user
// has for IPC, and over ivshm channels and pub-sub (issue 5 "Benchmark").
// Each transport gets fresh processes; the parent only orchestrates (and
// plays the ivshm broker, which is not on the data path). Results: raw JSON
// (ipc.json, ipc-quick.json with --quick) and an SVG plot beside it in --out
// (bench/results/ holds the published ones), a markdown table on stdout.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Broker } from '../src/ivshmem/broker.js';
import { IVSHM_PROTO_CHANNEL, outputSizeFor } from '../src/channel/index.js';
import type { LatencyResult, ThroughputResult } from './ipc-measure.js';
import type { PeerConfig } from './ipc-peer.js';
import { renderSvg } from './ipc-plot.js';
import { benchArgs } from './args.js';
import { loadavg, machine, spread, writeResults } from './stats.js';

const SIZES = [64, 1024, 64 * 1024, 1 << 20, 4 << 20];

interface Transport {
  name: string;
  label: string;
  kind: 'channel' | 'pubsub' | 'uds' | 'tcp' | 'cp-ipc' | 'worker';
  mode?: 'event' | 'poll' | 'hybrid';
  /** Busy-poll with Channel.poll() in a synchronous loop instead of the event-loop pump. */
  spin?: boolean;
  subscribers?: number;
}

const TRANSPORTS: Transport[] = [
  { name: 'channel-spin', label: 'ivshm channel, poll() loop', kind: 'channel', mode: 'poll', spin: true },
  { name: 'channel-poll', label: 'ivshm channel, poll', kind: 'channel', mode: 'poll' },
  { name: 'channel-hybrid', label: 'ivshm channel, hybrid', kind: 'channel', mode: 'hybrid' },
  { name: 'channel-event', label: 'ivshm channel, event', kind: 'channel', mode: 'event' },
  // Event mode for pub-sub: 5 processes that spin on 2 cores would only measure the scheduler.
  { name: 'pubsub-1', label: 'ivshm pub-sub, 1 sub (event)', kind: 'pubsub', mode: 'event', subscribers: 1 },
  { name: 'pubsub-4', label: 'ivshm pub-sub, 4 subs (event)', kind: 'pubsub', mode: 'event', subscribers: 4 },
  { name: 'uds', label: 'UNIX domain socket', kind: 'uds' },
  { name: 'tcp', label: 'TCP loopback', kind: 'tcp' },
  { name: 'cp-ipc', label: 'child_process IPC (advanced)', kind: 'cp-ipc' },
  { name: 'worker', label: 'worker postMessage (in-process)', kind: 'worker' },
];

export interface CaseResult {
  transport: string;
  label: string;
  size: number;
  latency?: LatencyResult;
  throughput?: ThroughputResult;
  error?: string;
  /** With --runs N > 1: min and max over the runs of the figures in the table. */
  spread?: Record<string, [number, number]>;
}

/** One row per transport and size: the median of each figure over the runs, with its spread. */
function summarise(runs: CaseResult[][]): CaseResult[] {
  const out: CaseResult[] = [];
  for (const first of runs[0]!) {
    const same = runs.map((r) => r.find((c) => c.transport === first.transport && c.size === first.size));
    const ok = same.filter((c): c is CaseResult & Required<Pick<CaseResult, 'latency' | 'throughput'>> => !!c && !c.error && !!c.latency && !!c.throughput);
    if (ok.length < runs.length) {
      out.push({ ...first, error: same.find((c) => c?.error)?.error ?? 'missing in some runs' });
      continue;
    }
    const pick = (f: (c: (typeof ok)[number]) => number) => ok.map(f);
    const fields: Record<string, number[]> = {
      p50: pick((c) => c.latency.p50),
      p99: pick((c) => c.latency.p99),
      p999: pick((c) => c.latency.p999),
      service50: pick((c) => c.latency.service.p50),
      late: pick((c) => c.latency.lateShare),
      msgsPerSec: pick((c) => c.throughput.msgsPerSec),
      GBps: pick((c) => c.throughput.GBps),
    };
    const spreads = Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, spread(v)]));
    const m = (k: string) => Math.round(spreads[k]!.median * 1000) / 1000;
    const l = ok[0]!.latency;
    const t = ok[0]!.throughput;
    out.push({
      transport: first.transport,
      label: first.label,
      size: first.size,
      latency: { ...l, p50: m('p50'), p99: m('p99'), p999: m('p999'), lateShare: m('late'), service: { ...l.service, p50: m('service50') } },
      throughput: { ...t, msgsPerSec: Math.round(m('msgsPerSec')), GBps: m('GBps') },
      spread: Object.fromEntries(Object.entries(spreads).map(([k, v]) => [k, [v.min, v.max]])),
    });
  }
  return out;
}

function plan(quick: boolean, sizes: number[] = SIZES): NonNullable<PeerConfig['plan']> {
  const q = quick ? 5 : 1;
  const rows: Record<number, [number, number, number, number]> = {
    // samples, interval µs, throughput messages, warm-up pings
    // Small messages: 2000 back-to-back warm-up pings, so V8 has optimised the path before we measure.
    64: [4000, 250, 300000, 2000],
    1024: [4000, 250, 200000, 2000],
    65536: [2000, 500, 30000, 100],
    1048576: [200, 5000, 1500, 20],
    4194304: [60, 20000, 400, 10],
  };
  return sizes.map((size) => {
    const [samples, intervalUs, messages, warmup] = rows[size]!;
    return { size, samples: Math.ceil(samples / q), intervalUs, warmup: Math.ceil(warmup / q), messages: Math.ceil(messages / q), seconds: quick ? 0.3 : 1.5 };
  });
}

const peerScript = fileURLToPath(new URL('./ipc-peer.js', import.meta.url));

function spawnPeer(cfg: PeerConfig): ChildProcess {
  return fork(peerScript, [JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

function waitFor(child: ChildProcess, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: unknown) => {
      if (m === 'ready') {
        child.off('message', onMsg);
        resolve();
      }
    };
    child.on('message', onMsg);
    child.once('exit', (code, sig) => reject(new Error(`${what} exited (${code ?? sig}) before it was ready`)));
  });
}

async function runTransport(t: Transport, steps: NonNullable<PeerConfig['plan']>, tmp: string): Promise<CaseResult[]> {
  const children: ChildProcess[] = [];
  let broker: Broker | null = null;
  const out: CaseResult[] = [];
  const base: PeerConfig = { role: 'ping', transport: t.kind, plan: steps, mode: t.mode, spin: t.spin };
  try {
    if (t.kind === 'channel' || t.kind === 'pubsub') {
      const peers = t.kind === 'pubsub' ? 1 + t.subscribers! : 2;
      const socket = path.join(tmp, `${t.name}.sock`);
      fs.rmSync(socket, { force: true });
      broker = new Broker({ socket, peers, outputSize: outputSizeFor(Math.max(...SIZES), peers), vectors: 2, protocol: IVSHM_PROTO_CHANNEL });
      await broker.start();
      base.path = socket;
      base.peers = peers;
      // The ivshm peers wait for each other themselves.
      for (let id = 1; id < peers; id++) children.push(spawnPeer({ ...base, role: id === 1 ? 'pong' : 'sub', id, plan: undefined }));
      base.id = 0;
    } else if (t.kind === 'uds' || t.kind === 'tcp') {
      if (t.kind === 'uds') {
        base.path = path.join(tmp, 'uds.sock');
        fs.rmSync(base.path, { force: true }); // left by the previous run's killed server
      }
      else base.port = 20000 + Math.floor(Math.random() * 20000);
      const srv = spawnPeer({ ...base, role: 'pong', plan: undefined });
      children.push(srv);
      await waitFor(srv, `${t.name} server`);
    }
    const ping = spawnPeer(base);
    children.push(ping);
    await new Promise<void>((resolve, reject) => {
      const budget = setTimeout(() => reject(new Error('no result within 120 s')), 120000);
      ping.on('message', (m: unknown) => {
        if (m === 'done') {
          clearTimeout(budget);
          resolve();
          return;
        }
        const r = m as { size: number; latency: LatencyResult; throughput: ThroughputResult };
        out.push({ transport: t.name, label: t.label, size: r.size, latency: r.latency, throughput: r.throughput });
        const l = r.latency;
        const th = r.throughput;
        process.stderr.write(
          `  ${t.name.padEnd(15)} ${fmtSize(r.size).padStart(6)}  rtt p50 ${l.p50.toFixed(2).padStart(9)} µs  p99 ${l.p99.toFixed(1).padStart(9)}  p99.9 ${l.p999.toFixed(1).padStart(9)}  1x ${l.service.p50.toFixed(2).padStart(8)}  late ${(l.lateShare * 100).toFixed(0).padStart(3)}%  ` +
            `${th.msgsPerSec.toLocaleString('en').padStart(10)} msg/s  ${th.GBps.toFixed(3).padStart(7)} GB/s\n`,
        );
      });
      ping.once('exit', (code, sig) => {
        clearTimeout(budget);
        if (code !== 0) reject(new Error(`measuring process exited (${code ?? sig})`));
        else resolve();
      });
    });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`  ${t.name}: ERROR ${msg}\n`);
    for (const s of steps) if (!out.some((o) => o.size === s.size)) out.push({ transport: t.name, label: t.label, size: s.size, error: msg });
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : null)));
    if (broker) await broker.stop();
  }
  return out;
}

export function fmtSize(n: number): string {
  return n >= 1 << 20 ? `${n / (1 << 20)} MiB` : n >= 1024 ? `${n / 1024} KiB` : `${n} B`;
}

function table(results: CaseResult[]): string {
  const lines = [
    '| transport | payload | RTT p50 (µs) | RTT p99 (µs) | RTT p99.9 (µs) | one exchange p50 (µs) | late | msgs/s | GB/s |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    if (r.error || !r.latency || !r.throughput) {
      lines.push(`| ${r.label} | ${fmtSize(r.size)} | error: ${r.error ?? '?'} | | | | | | |`);
      continue;
    }
    const l = r.latency;
    const t = r.throughput;
    // With several runs: the median, then (min–max) over the runs.
    const v = (x: number, k: string, f: (n: number) => string = String) => (r.spread?.[k] ? `${f(x)} (${f(r.spread[k][0])}–${f(r.spread[k][1])})` : f(x));
    const pct = (n: number) => `${Math.round(n * 100)}%`;
    const num = (n: number) => n.toLocaleString('en');
    lines.push(
      `| ${r.label} | ${fmtSize(r.size)} | ${v(l.p50, 'p50')} | ${v(l.p99, 'p99')} | ${v(l.p999, 'p999')} | ${v(l.service.p50, 'service50')} | ${v(l.lateShare, 'late', pct)} | ${v(t.msgsPerSec, 'msgsPerSec', num)} | ${v(t.GBps, 'GBps')} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const args = benchArgs('ipc', 'Round trips and throughput of ivshm channels and pub-sub beside UNIX sockets, TCP, child_process IPC and worker postMessage.', {
    quick: { type: 'boolean', help: 'fewer samples and messages: to see that it works' },
    only: { type: 'string', arg: 'LIST', help: `transports, comma-separated, of ${TRANSPORTS.map((t) => t.name).join(', ')} (default all)` },
    sizes: { type: 'string', arg: 'LIST', help: `payload sizes, comma-separated, of ${SIZES.join(', ')} (default all)` },
    runs: { type: 'string', arg: 'N', default: '1', help: 'repeat the whole sweep, transports interleaved; the table shows median (min–max)' },
  });
  const quick = args.values.quick;
  const only = args.values.only?.split(',') ?? null;
  const unknown = only?.find((n) => !TRANSPORTS.some((t) => t.name === n));
  if (unknown !== undefined) args.fail(`--only: ${unknown} is not one of ${TRANSPORTS.map((t) => t.name).join(', ')}`);
  const transports = TRANSPORTS.filter((t) => !only || only.includes(t.name));
  const sizes = args.values.sizes ? args.values.sizes.split(',').map(Number) : SIZES;
  const bad = sizes.find((n) => !SIZES.includes(n));
  if (bad !== undefined) args.fail(`--sizes: ${bad} is not one of ${SIZES.join(', ')}`);
  const steps = plan(quick, sizes);
  const runsArg = args.num('runs', { min: 1, max: 50 });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ivshm-bench-'));
  const m = machine();
  const meta = {
    date: m.date,
    command: `node ${path.relative(process.cwd(), fileURLToPath(import.meta.url))} ${process.argv.slice(2).join(' ')}`.trim(),
    node: m.node,
    platform: `${os.type()} ${m.kernel} ${m.arch}`,
    cpu: m.cpu,
    cpus: m.cores,
    memGiB: m.memGiB,
    loadavgStart: m.load,
    loadavgEnd: [] as number[],
    quick,
    method:
      'ping-pong round trips at a fixed rate, measured from the due time (no coordinated omission), HDR histogram; ' +
      '"one exchange" = the same round trips measured from the actual send; "late" = share of pings sent more than one interval late (the rate was not kept: RTT percentiles then include queueing); ' +
      'throughput = messages sent as fast as back-pressure allows, until every receiver confirmed its count. ' +
      'Each transport runs in fresh processes (worker: one process, two threads). Sizes include a 1-byte type tag. ' +
      'ivshm pub-sub subscribers read samples in place; the echoing subscriber copies each ping once into a loaned sample.',
    plan: steps,
  };
  process.stderr.write(`bench:ipc ${quick ? '(quick) ' : ''}on ${meta.cpu} x${meta.cpus}, ${meta.platform}, Node ${meta.node}, load ${meta.loadavgStart.join(' ')}\n`);
  const runs: CaseResult[][] = [];
  try {
    for (let run = 0; run < runsArg; run++) {
      if (runsArg > 1) process.stderr.write(`run ${run + 1} of ${runsArg}\n`);
      const one: CaseResult[] = [];
      for (const t of transports) one.push(...(await runTransport(t, steps, tmp)));
      runs.push(one);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  meta.loadavgEnd = loadavg();
  const results = runs.length > 1 ? summarise(runs) : runs[0]!;
  const name = quick ? 'ipc-quick' : 'ipc';
  writeResults(args.out, {
    [`${name}.json`]: JSON.stringify({ meta: { ...meta, runs: runs.length }, results, ...(runs.length > 1 ? { runs } : {}) }, null, 2),
    [`${name}.svg`]: renderSvg({ meta, results }),
  });
  console.log(`\n${table(results)}\n\n${meta.cpu} x${meta.cpus}, ${meta.platform}, Node ${meta.node}, ${meta.date}, load ${meta.loadavgStart.join(' ')} -> ${meta.loadavgEnd.join(' ')}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
