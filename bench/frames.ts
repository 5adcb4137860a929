// `node dist/bench/frames.js [--runs R] [--scale S] [--out DIR]`: frames per second and
// Gbit/s between two processes over ivshmem-net (event mode, a real broker,
// Jailhouse's default 0x7F000 output sections) beside an AF_UNIX datagram
// socket pair moving the same frames, in the same run, for 64 B, 1500 B and
// 16 KiB frames. One direction: a sender process and a receiver process.
// ivshmem-net is measured twice: receiving with 'frame' (a private copy per
// frame) and with 'frame-view' plus a copy into one reused buffer, which is
// what the datagram receiver does with its read().
// Rate = frames / (receiver's last frame - sender's first send), both taken
// with CLOCK_MONOTONIC (process.hrtime), which is shared by all processes.
// Writes frames.json and frames.md into --out (median and min-max over runs,
// interleaved), with the machine and Node version; bench/results/ holds the
// published ones.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { Broker } from '../src/ivshmem/broker.js';
import { connect } from '../src/ivshmem/device.js';
import { openNet } from '../src/net/endpoint.js';
import { closeFd, readFd, writeFd, E } from '../src/sys/fd.js';
import { unixDatagramPair } from '../src/sys/dgram-pair.js';
import { watchReadable, watchWritable } from '../src/sys/poll.js';
import { parseArgs } from 'node:util';
import { benchArgs } from './args.js';
import { fmt, machine, machineLine, spread, writeResults } from './stats.js';

const SELF = new URL(import.meta.url).pathname;
const SIZES = [64, 1500, 16384];
const BASE_FRAMES: Record<number, number> = { 64: 200_000, 1500: 100_000, 16384: 20_000 };
const MTU = 16384;

const out = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');

// ------------------------------------------------------------------ children

function frameFor(size: number): Buffer {
  const f = Buffer.alloc(size, 0x5a);
  f.fill(0xff, 0, 6); // broadcast destination
  f.writeUInt16BE(0x88b5, 12); // local experimental EtherType
  return f;
}

async function netChild(role: 'tx' | 'rx', socket: string, size: number, count: number, view: boolean): Promise<void> {
  const dev = await connect({ socket, id: role === 'tx' ? 0 : 1 });
  const net = openNet(dev, { mtu: MTU, wait: 'event' });
  const lines = readline.createInterface({ input: process.stdin });
  const quit = () => {
    net.close();
    dev.close();
    process.exit(0);
  };
  if (role === 'rx') {
    let n = 0;
    let bytes = 0;
    const onFrame = (f: Buffer) => {
      n++;
      bytes += f.byteLength;
      if (n === count) out({ event: 'rx-done', tEnd: process.hrtime.bigint().toString(), frames: n, bytes, counters: net.counters() });
    };
    if (view) {
      const into = Buffer.allocUnsafe(MTU + 18);
      net.on('frame-view', (f) => {
        f.copy(into);
        onFrame(f);
      });
    } else net.on('frame', onFrame);
    lines.on('line', (l) => l === 'quit' && quit());
    net.on('carrier', (on) => on && out({ event: 'ready' }));
    net.up();
    return;
  }
  const frame = frameFor(size);
  const batch = Array.from({ length: 64 }, () => frame);
  let sent = 0;
  let t0 = 0n;
  const pump = () => {
    while (sent < count) {
      const want = Math.min(batch.length, count - sent);
      const k = net.sendBatch(want === batch.length ? batch : batch.slice(0, want));
      sent += k;
      if (k < want) return; // 'writable' resumes
    }
    out({ event: 'tx-done', t0: t0.toString(), counters: net.counters() });
  };
  net.on('writable', pump);
  lines.on('line', (l) => {
    if (l === 'go') {
      t0 = process.hrtime.bigint();
      pump();
    } else if (l === 'quit') quit();
  });
  net.on('carrier', (on) => on && out({ event: 'ready' }));
  net.up();
}

function dgramChild(role: 'tx' | 'rx', size: number, count: number): void {
  const fd = 3; // the socketpair end passed by the parent
  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', (l) => {
    if (l === 'quit') process.exit(0);
  });
  if (role === 'rx') {
    const buf = Buffer.allocUnsafe(size + 64);
    let n = 0;
    let bytes = 0;
    const w = watchReadable(fd, () => {
      for (;;) {
        const r = readFd(fd, buf);
        if (r < 0) break; // EAGAIN
        n++;
        bytes += r;
        if (n === count) {
          out({ event: 'rx-done', tEnd: process.hrtime.bigint().toString(), frames: n, bytes });
          w.close();
          return;
        }
      }
    });
    out({ event: 'ready' });
    return;
  }
  const frame = frameFor(size);
  let sent = 0;
  let t0 = 0n;
  let ww: ReturnType<typeof watchWritable> | null = null;
  const pump = () => {
    while (sent < count) {
      const e = writeFd(fd, frame);
      if (e === 0) sent++;
      else if (e === E.EAGAIN || e === E.ENOBUFS) {
        if (!ww) ww = watchWritable(fd, pump);
        return;
      } else throw new Error(`write on the datagram socket failed: errno ${e}`);
    }
    ww?.close();
    ww = null;
    out({ event: 'tx-done', t0: t0.toString() });
  };
  lines.on('line', (l) => {
    if (l === 'go') {
      t0 = process.hrtime.bigint();
      pump();
    }
  });
  out({ event: 'ready' });
}

// ------------------------------------------------------------------ parent

class Child {
  readonly proc: ChildProcess;
  readonly lines: Record<string, string | number | object>[] = [];
  private waiters: (() => void)[] = [];
  constructor(args: string[], extraFd?: number) {
    const stdio: ('pipe' | 'inherit' | number)[] = ['pipe', 'pipe', 'inherit'];
    if (extraFd !== undefined) stdio.push(extraFd);
    this.proc = spawn(process.execPath, [SELF, ...args], { stdio });
    readline.createInterface({ input: this.proc.stdout! }).on('line', (l) => {
      this.lines.push(JSON.parse(l));
      for (const w of this.waiters.splice(0)) w();
    });
    this.proc.on('exit', () => {
      for (const w of this.waiters.splice(0)) w();
    });
  }
  async waitFor(ev: string): Promise<Record<string, string | number | object>> {
    for (;;) {
      const l = this.lines.find((x) => x.event === ev);
      if (l) return l;
      if (this.proc.exitCode !== null) throw new Error(`benchmark child exited with ${this.proc.exitCode} before '${ev}'`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }
  say(l: string) {
    this.proc.stdin!.write(l + '\n');
  }
  async stop() {
    if (this.proc.exitCode === null) {
      this.say('quit');
      await new Promise((r) => this.proc.once('exit', r));
    }
  }
}

interface Sample {
  fps: number;
  gbps: number;
}

async function measure(tx: Child, rx: Child, size: number, count: number): Promise<Sample> {
  await Promise.all([tx.waitFor('ready'), rx.waitFor('ready')]);
  tx.say('go');
  const [t, r] = await Promise.all([tx.waitFor('tx-done'), rx.waitFor('rx-done')]);
  const seconds = Number(BigInt(r.tEnd as string) - BigInt(t.t0 as string)) / 1e9;
  if ((r.frames as number) !== count) throw new Error(`receiver got ${r.frames} of ${count} frames`);
  return { fps: count / seconds, gbps: (count * size * 8) / seconds / 1e9 };
}

async function runNet(size: number, count: number, dir: string, run: number, view: boolean): Promise<Sample> {
  const socket = path.join(dir, `net-${size}-${run}-${view ? 'view' : 'copy'}.sock`);
  const broker = new Broker({ socket, peers: 2, outputSize: 0x7f000, vectors: 2, protocol: 1, name: `bench-${size}-${run}` });
  await broker.start();
  const rx = new Child(['--role', 'net-rx', '--socket', socket, '--size', String(size), '--count', String(count), ...(view ? ['--view'] : [])]);
  const tx = new Child(['--role', 'net-tx', '--socket', socket, '--size', String(size), '--count', String(count)]);
  try {
    return await measure(tx, rx, size, count);
  } finally {
    await tx.stop();
    await rx.stop();
    await broker.stop();
  }
}

async function runDgram(size: number, count: number): Promise<Sample> {
  const [a, b] = unixDatagramPair();
  const rx = new Child(['--role', 'dgram-rx', '--size', String(size), '--count', String(count)], b);
  const tx = new Child(['--role', 'dgram-tx', '--size', String(size), '--count', String(count)], a);
  closeFd(a);
  closeFd(b);
  try {
    return await measure(tx, rx, size, count);
  } finally {
    await tx.stop();
    await rx.stop();
  }
}

async function parent(): Promise<void> {
  const args = benchArgs('frames', 'Frames per second between two processes over ivshmem-net and over an AF_UNIX datagram pair, interleaved.', {
    runs: { type: 'string', arg: 'N', help: 'runs per frame size and transport, interleaved (default 3; 1 with --quick)' },
    scale: { type: 'string', arg: 'S', help: 'multiplies the frames per run (200k, 100k, 20k; at least 1000) (default 1; 0.05 with --quick)' },
    quick: { type: 'boolean', help: 'a short run to see that it works' },
  });
  const runs = args.num('runs', { min: 1, max: 100, fallback: args.values.quick ? 1 : 3 });
  const scale = args.num('scale', { min: 0.001, max: 1000, integer: false, fallback: args.values.quick ? 0.05 : 1 });
  const m = machine();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ivshm-bench-frames-'));
  const results: { size: number; frames: number; ivshm: Sample[]; ivshmView: Sample[]; dgram: Sample[] }[] = [];
  try {
    for (const size of SIZES) {
      const count = Math.max(1000, Math.round(BASE_FRAMES[size]! * scale));
      const row = { size, frames: count, ivshm: [] as Sample[], ivshmView: [] as Sample[], dgram: [] as Sample[] };
      for (let run = 0; run < runs; run++) {
        // Interleave the transports so drift on a shared machine hits all of them.
        row.ivshm.push(await runNet(size, count, dir, run, false));
        row.ivshmView.push(await runNet(size, count, dir, run, true));
        row.dgram.push(await runDgram(size, count));
      }
      results.push(row);
      const s = (xs: Sample[], k: keyof Sample) => spread(xs.map((x) => x[k]));
      console.log(
        `${String(size).padStart(5)} B  ivshm-net ${fmt(s(row.ivshm, 'fps'), 0)} frames/s ${fmt(s(row.ivshm, 'gbps'), 2)} Gbit/s   ` +
          `frame-view ${fmt(s(row.ivshmView, 'fps'), 0)} frames/s ${fmt(s(row.ivshmView, 'gbps'), 2)} Gbit/s   ` +
          `unix dgram ${fmt(s(row.dgram, 'fps'), 0)} frames/s ${fmt(s(row.dgram, 'gbps'), 2)} Gbit/s`,
      );
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const command = `node dist/bench/frames.js --runs ${runs} --scale ${scale}`;
  const summary = results.map((r) => ({
    size: r.size,
    frames: r.frames,
    ivshm: { fps: spread(r.ivshm.map((x) => x.fps)), gbps: spread(r.ivshm.map((x) => x.gbps)) },
    ivshmView: { fps: spread(r.ivshmView.map((x) => x.fps)), gbps: spread(r.ivshmView.map((x) => x.gbps)) },
    dgram: { fps: spread(r.dgram.map((x) => x.fps)), gbps: spread(r.dgram.map((x) => x.gbps)) },
    raw: { ivshm: r.ivshm, ivshmView: r.ivshmView, dgram: r.dgram },
  }));
  const lines = [
    `Frames between two processes, one direction, ${runs} runs per cell interleaved; ivshmem-net in event mode (broker link, 0x7F000 output sections, 2048 entries, MTU ${MTU}, sendBatch of 64), received with 'frame' (a private copy per frame) and with 'frame-view' (lent in place, copied into one reused buffer), beside an AF_UNIX SOCK_DGRAM socket pair (one write/read per frame into a reused buffer, poll-driven on the libuv loop).`,
    'Each cell: median over runs (min–max over runs).',
    '',
    "| frame | frames per run | ivshmem-net 'frame' frames/s | Gbit/s | ivshmem-net 'frame-view' frames/s | Gbit/s | UNIX dgram frames/s | Gbit/s |",
    '|---|---|---|---|---|---|---|---|',
    ...summary.map(
      (r) =>
        `| ${r.size} B | ${r.frames} | ${fmt(r.ivshm.fps, 0)} | ${fmt(r.ivshm.gbps, 2)} | ${fmt(r.ivshmView.fps, 0)} | ${fmt(r.ivshmView.gbps, 2)} | ${fmt(r.dgram.fps, 0)} | ${fmt(r.dgram.gbps, 2)} |`,
    ),
    '',
    `Machine: ${machineLine(m)}; ${m.date}. Command: \`${command}\`.`,
  ];
  writeResults(args.out, {
    'frames.json': JSON.stringify({ machine: m, command, runs, mtu: MTU, outputSection: 0x7f000, results: summary }, null, 2),
    'frames.md': lines.join('\n'),
  });
}

// The parent spawns this file again with --role for each sender and receiver.
if (process.argv.includes('--role')) {
  const { values: c } = parseArgs({
    strict: true,
    options: { role: { type: 'string' }, socket: { type: 'string', default: '' }, size: { type: 'string', default: '64' }, count: { type: 'string', default: '0' }, view: { type: 'boolean', default: false } },
  });
  const size = Number(c.size);
  const count = Number(c.count);
  if (c.role === 'net-tx' || c.role === 'net-rx') await netChild(c.role === 'net-tx' ? 'tx' : 'rx', c.socket, size, count, c.view);
  else if (c.role === 'dgram-tx' || c.role === 'dgram-rx') dgramChild(c.role === 'dgram-tx' ? 'tx' : 'rx', size, count);
  else throw new Error(`frames: unknown --role ${c.role}`);
} else await parent();
