// Doorbell round trip between two peer processes in event mode (eventfd on
// the libuv loop), beside a UNIX-socket ping-pong of the same 8-byte message,
// interleaved in the same run. Writes doorbell.{json,md} into --out
// (bench/results/ holds the published ones). `--help` lists the options.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { Broker } from '../src/ivshmem/broker.js';
import { benchArgs } from './args.js';
import { fmt, machine, machineLine, spread, writeResults, type Summary } from './stats.js';

const args = benchArgs('doorbell', 'Doorbell round trip between two peer processes (event mode) beside a UNIX socket ping-pong, interleaved.', {
  runs: { type: 'string', arg: 'N', help: 'runs of each path, interleaved (default 5; 1 with --quick)' },
  n: { type: 'string', arg: 'N', help: 'round trips per run after warm-up (default 20000; 2000 with --quick)' },
  quick: { type: 'boolean', help: 'a short run to see that it works' },
});
const RUNS = args.num('runs', { min: 1, max: 100, fallback: args.values.quick ? 1 : 5 });
const N = args.num('n', { min: 10, max: 10_000_000, fallback: args.values.quick ? 2000 : 20000 });
const PEER = new URL('./doorbell-peer.js', import.meta.url).pathname;
const hasTaskset = spawnSync('taskset', ['--version']).status === 0;

/** Start a role pinned to a core (when taskset exists) and return its first stdout line. */
function start(role: string, target: string, core: number, n = 0): { child: ChildProcess; line: Promise<string> } {
  const argv = [process.execPath, PEER, role, target, String(n)];
  const child = hasTaskset ? spawn('taskset', ['-c', String(core), ...argv], { stdio: ['ignore', 'pipe', 'inherit'] }) : spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  const rl = readline.createInterface({ input: child.stdout! });
  const line = new Promise<string>((resolve, reject) => {
    rl.once('line', resolve);
    child.once('exit', (c) => reject(new Error(`${role} exited with ${c}`)));
  });
  return { child, line };
}

async function ivshmRun(dir: string): Promise<Summary> {
  const socket = path.join(dir, 'bell.sock');
  const broker = new Broker({ socket, peers: 2, vectors: 1, outputSize: '4K', name: 'bench' });
  await broker.start();
  try {
    const pong = start('pong', socket, 1);
    await pong.line;
    const ping = start('ping', socket, 0, N);
    const result = JSON.parse(await ping.line) as Summary;
    pong.child.kill();
    return result;
  } finally {
    await broker.stop();
  }
}

async function udsRun(dir: string): Promise<Summary> {
  const sock = path.join(dir, 'uds.sock');
  const server = start('uds-server', sock, 1);
  await server.line;
  try {
    const client = start('uds-client', sock, 0, N);
    return JSON.parse(await client.line) as Summary;
  } finally {
    server.child.kill();
    fs.rmSync(sock, { force: true });
  }
}

const m = machine();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ivshm-bench-'));
const rows: Record<string, Summary[]> = { ivshm: [], uds: [] };
try {
  for (let r = 0; r < RUNS; r++) {
    rows.ivshm!.push(await ivshmRun(dir));
    rows.uds!.push(await udsRun(dir));
    process.stderr.write(`doorbell run ${r + 1}/${RUNS}: ivshm ${rows.ivshm!.at(-1)!.medianUs} µs, UNIX socket ${rows.uds!.at(-1)!.medianUs} µs\n`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

const command = `node dist/bench/doorbell.js --runs ${RUNS} --n ${N}`;
const line = (label: string, s: Summary[]) =>
  `| ${label} | ${fmt(spread(s.map((x) => x.medianUs)))} | ${fmt(spread(s.map((x) => x.p99Us)))} | ${fmt(spread(s.map((x) => x.p999Us)))} |`;
const md = [
  `Doorbell round trip, 8-byte message, two processes ${hasTaskset ? 'pinned to cores 0 and 1 (taskset)' : 'unpinned'}; ${N} round trips per run after warm-up, ${RUNS} runs interleaved.`,
  `Each cell: median over runs (min–max over runs), µs.`,
  '',
  '| path | median RTT µs | p99 µs | p99.9 µs |',
  '|---|---|---|---|',
  line('ivshm doorbell (eventfd, event mode)', rows.ivshm!),
  line('UNIX stream socket ping-pong (`net`)', rows.uds!),
  '',
  `Machine: ${machineLine(m)}; ${m.date}. Command: \`${command}\`.`,
].join('\n');
writeResults(args.out, { 'doorbell.json': JSON.stringify({ machine: m, command, runs: rows }, null, 2), 'doorbell.md': md });
console.log(md);
