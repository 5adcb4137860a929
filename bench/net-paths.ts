// `npm run bench:net` (root): IP networking between two network namespaces
// over three paths, measured in the same run (issue 4 "Performance"):
//   veth   a kernel veth pair (what the kernel alone does)
//   ivshm  TAP -> `ivshm net` -> ivshmem-net link -> `ivshm net` -> TAP
//   socat  TAP <-> socat <-> UNIX datagram socket <-> socat <-> TAP (the do-it-yourself relay)
// Each run of each path gets a fresh namespace pair (torn down after it, so a
// spinning wait mode never competes with another path); runs are interleaved
// (run 1 of every path, then run 2, ...) so slow phases of a shared VM hit all
// paths alike. Each run: ping (avg, mdev of -c 200 -i 0.01), ping at 1 ms
// spacing (-i 0.001: a link in use, relays that have not gone cold), iperf3
// TCP single stream and -P 2. Report: median (min-max) over the runs.
//
// Everything created (namespaces, veths, TAPs, processes, sockets) is removed
// on every exit path; namespaces of an earlier run that was killed are
// removed at start. Options (`--help`): --runs N --time S --mtu 1500,16384
// --paths veth,ivshm,socat (also ivshm-hybrid, ivshm-poll) --ping-count N
// --output-size SIZE --quick; writes NAME.md and NAME.json (--name, default
// net-paths) into --out (bench/results/ holds the published ones).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './args.js';
import { machine as machineFacts, machineLine, writeResults } from './stats.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const cli = path.join(repo, 'dist', 'src', 'cli', 'main.js');

// ---------------------------------------------------------------- options
interface Options {
  runs: number;
  time: number;
  mtus: number[];
  paths: string[];
  pingCount: number;
  outputSize: string;
  out: string;
  name: string;
}

const PATHS = ['veth', 'ivshm', 'ivshm-hybrid', 'ivshm-poll', 'socat'];

function options(): Options {
  const a = benchArgs('net-paths', 'IP between two network namespaces over a veth pair, ivshm net and a socat relay, runs interleaved (root).', {
    runs: { type: 'string', arg: 'N', help: 'runs of each path, interleaved (default 5; 1 with --quick)' },
    time: { type: 'string', arg: 'S', help: 'seconds of each iperf3 run (default 10; 2 with --quick)' },
    mtu: { type: 'string', arg: 'LIST', default: '1500,16384', help: 'MTUs, comma-separated' },
    paths: { type: 'string', arg: 'LIST', default: 'veth,ivshm,socat', help: `paths, comma-separated, of ${PATHS.join(', ')}` },
    'ping-count': { type: 'string', arg: 'N', help: 'pings per run (default 200; 50 with --quick)' },
    'output-size': { type: 'string', arg: 'SIZE', default: '2M', help: "the ivshm link's output section" },
    name: { type: 'string', arg: 'NAME', default: 'net-paths', help: 'base name of the result files (NAME.md, NAME.json)' },
    quick: { type: 'boolean', help: 'a short run to see that it works' },
  });
  const quick = a.values.quick;
  const paths = a.values.paths.split(',');
  for (const p of paths) if (!PATHS.includes(p)) a.fail(`--paths: unknown path ${p}; known: ${PATHS.join(', ')}`);
  const mtus = a.values.mtu.split(',').map(Number);
  for (const m of mtus) if (!Number.isInteger(m) || m < 68 || m > 65535) a.fail(`--mtu: ${m} is not an MTU from 68 to 65535`);
  return {
    runs: a.num('runs', { min: 1, max: 100, fallback: quick ? 1 : 5 }),
    time: a.num('time', { min: 1, max: 3600, fallback: quick ? 2 : 10 }),
    mtus,
    paths,
    pingCount: a.num('ping-count', { min: 1, max: 100000, fallback: quick ? 50 : 200 }),
    outputSize: a.values['output-size'],
    out: a.out,
    name: a.values.name,
  };
}

// ---------------------------------------------------------------- cleanup
const PREFIX = 'ivb';
const tag = `${PREFIX}${process.pid}`;
const namespaces = new Set<string>();
const children = new Set<ChildProcess>();
const files = new Set<string>();

function sh(cmd: string, args: string[], opts: { allowFail?: boolean } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`${cmd} not found: install it (${cmd === 'ip' ? 'iproute2' : cmd})`);
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr.trim()}`);
  return r.stdout;
}
const ip = (...args: string[]) => sh('ip', args);
const inNs = (ns: string, cmd: string, ...args: string[]) => sh('ip', ['netns', 'exec', ns, cmd, ...args]);

function cleanup(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  children.clear();
  for (const ns of namespaces) spawnSync('ip', ['netns', 'delete', ns]);
  namespaces.clear();
  for (const f of files) fs.rmSync(f, { force: true });
  files.clear();
}

/** Remove namespaces left by an earlier run whose process is gone (kill -9). */
function removeStale(): void {
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${PREFIX}(\\d+)[a-z]`).exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive) {
      spawnSync('ip', ['netns', 'delete', name]);
      console.error(`removed stale namespace ${name} of an earlier run`);
    }
  }
}

function makeNs(suffix: string): string {
  const ns = `${tag}${suffix}`;
  ip('netns', 'add', ns);
  namespaces.add(ns);
  ip('-n', ns, 'link', 'set', 'lo', 'up');
  // No IPv6 chatter (router solicitations, MLD) on the measured links.
  inNs(ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1');
  return ns;
}

function delNs(ns: string): void {
  spawnSync('ip', ['netns', 'delete', ns]);
  namespaces.delete(ns);
}

function start(cmd: string, args: string[], label: string): ChildProcess {
  const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(c);
  let log = '';
  const keep = (d: Buffer) => {
    log = (log + d.toString()).slice(-4000);
  };
  c.stdout?.on('data', keep);
  c.stderr?.on('data', keep);
  c.on('exit', (code, sig) => {
    children.delete(c);
    if (!stopping.has(c)) console.error(`${label} exited (${code ?? sig}); last output:\n${log}`);
  });
  (c as ChildProcess & { label: string }).label = label;
  return c;
}
const stopping = new Set<ChildProcess>();
const startLoad = os.loadavg();

async function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  stopping.add(c);
  const done = new Promise<void>((r) => c.once('exit', () => r()));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), 3000);
  await done;
  clearTimeout(t);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const linkUp = (ns: string, dev: string) =>
  /LOWER_UP/.test(spawnSync('ip', ['-n', ns, '-o', 'link', 'show', 'dev', dev], { encoding: 'utf8' }).stdout ?? '');

// ---------------------------------------------------------------- paths
interface Setup {
  nsA: string;
  nsB: string;
  addrB: string;
  procs: ChildProcess[];
  describe: string;
  /** Userspace relay processes whose CPU time is reported (ivshm net, socat). */
  relays: ChildProcess[];
}

let subnet = 10;
const nextSubnet = () => (subnet = subnet >= 250 ? 10 : subnet + 1);

async function setupVeth(mtu: number): Promise<Setup> {
  const nsA = makeNs('va');
  const nsB = makeNs('vb');
  const s = nextSubnet();
  ip('link', 'add', `${tag}v0`, 'netns', nsA, 'type', 'veth', 'peer', 'name', `${tag}v1`, 'netns', nsB);
  const [a, b] = [`${tag}v0`, `${tag}v1`];
  ip('-n', nsA, 'link', 'set', a, 'mtu', String(mtu), 'up');
  ip('-n', nsB, 'link', 'set', b, 'mtu', String(mtu), 'up');
  ip('-n', nsA, 'addr', 'add', `10.250.${s}.1/24`, 'dev', a);
  ip('-n', nsB, 'addr', 'add', `10.250.${s}.2/24`, 'dev', b);
  await waitFor('veth carrier', () => linkUp(nsA, a) && linkUp(nsB, b));
  return { nsA, nsB, addrB: `10.250.${s}.2`, procs: [], relays: [], describe: 'ip link add … type veth' };
}

async function setupSocat(mtu: number): Promise<Setup> {
  const nsA = makeNs('sa');
  const nsB = makeNs('sb');
  const s = nextSubnet();
  const sockA = path.join(os.tmpdir(), `${tag}-socat-a.sock`);
  const sockB = path.join(os.tmpdir(), `${tag}-socat-b.sock`);
  for (const f of [sockA, sockB]) {
    fs.rmSync(f, { force: true });
    files.add(f);
  }
  const tapA = `${tag}sa`;
  const tapB = `${tag}sb`;
  const socat = (ns: string, tap: string, addr: string, own: string, peer: string) =>
    start('ip', ['netns', 'exec', ns, 'socat', '-b', '65536',
      `TUN:${addr}/24,tun-type=tap,iff-no-pi,iff-up,tun-name=${tap}`, `UNIX-SENDTO:${peer},bind=${own}`], `socat ${ns}`);
  const pa = socat(nsA, tapA, `10.250.${s}.1`, sockA, sockB);
  const pb = socat(nsB, tapB, `10.250.${s}.2`, sockB, sockA);
  await waitFor('socat TAPs', () => linkUp(nsA, tapA) && linkUp(nsB, tapB) && fs.existsSync(sockA) && fs.existsSync(sockB));
  ip('-n', nsA, 'link', 'set', tapA, 'mtu', String(mtu));
  ip('-n', nsB, 'link', 'set', tapB, 'mtu', String(mtu));
  return {
    nsA, nsB, addrB: `10.250.${s}.2`, procs: [pa, pb], relays: [pa, pb],
    describe: 'socat -b 65536 TUN:…,tun-type=tap,iff-no-pi,iff-up UNIX-SENDTO:peer,bind=own',
  };
}

async function setupIvshm(mtu: number, wait: string, outputSize: string): Promise<Setup> {
  const suffix = wait === 'event' ? 'i' : wait[0]!;
  const nsA = makeNs(`${suffix}a`);
  const nsB = makeNs(`${suffix}b`);
  const s = nextSubnet();
  const sock = path.join(os.tmpdir(), `${tag}-${wait}.sock`);
  files.add(sock);
  const broker = start(process.execPath, [cli, 'broker', '--socket', sock, '--peers', '2', '--output-size', outputSize,
    '--vectors', '2', '--protocol', '1'], `broker (${wait})`);
  await waitFor('broker socket', () => fs.existsSync(sock));
  const tapA = `${tag}${suffix}a`;
  const tapB = `${tag}${suffix}b`;
  const net = (ns: string, tap: string, addr: string, id: string) =>
    start(process.execPath, [cli, 'net', '--socket', sock, '--id', id, '--tap', tap, '--netns', ns, '--address', `${addr}/24`,
      '--mtu', String(mtu), '--wait', wait], `ivshm net ${ns}`);
  const pa = net(nsA, tapA, `10.250.${s}.1`, '0');
  const pb = net(nsB, tapB, `10.250.${s}.2`, '1');
  await waitFor('ivshm carrier on both TAPs', () => linkUp(nsA, tapA) && linkUp(nsB, tapB), 30000);
  return {
    nsA, nsB, addrB: `10.250.${s}.2`, procs: [pa, pb, broker], relays: [pa, pb],
    describe: `ivshm broker --peers 2 --output-size ${outputSize} --vectors 2 --protocol 1; ivshm net --tap … --netns … --mtu ${mtu} --wait ${wait}`,
  };
}

function setupPath(name: string, mtu: number, o: Options): Promise<Setup> {
  if (name === 'veth') return setupVeth(mtu);
  if (name === 'socat') return setupSocat(mtu);
  return setupIvshm(mtu, name === 'ivshm' ? 'event' : name.slice('ivshm-'.length), o.outputSize);
}

async function teardown(s: Setup): Promise<void> {
  for (const p of s.procs) await stop(p);
  delNs(s.nsA);
  delNs(s.nsB);
}

// ---------------------------------------------------------------- measurements
interface Sample {
  pingAvgUs: number;
  pingMdevUs: number;
  /** Ping avg with 1 ms between pings. */
  pingBusyAvgUs: number;
  tcpGbps: number;
  tcp2Gbps: number;
  /** CPU time of both relay processes per GB moved in the single-stream run (s/GB); NaN for veth. */
  relayCpuPerGB: number;
}

const CLK_TCK = 100; // USER_HZ on Linux
/** utime + stime of a process in seconds (/proc/PID/stat fields 14 and 15). */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}
const relayCpu = (s: Setup) => s.relays.reduce((sum, p) => sum + cpuSeconds(p.pid), 0);

function ping(s: Setup, count: number, interval = '0.01'): { avg: number; mdev: number } {
  const out = inNs(s.nsA, 'ping', '-c', String(count), '-i', interval, '-q', s.addrB);
  const m = /= [\d.]+\/([\d.]+)\/[\d.]+\/([\d.]+) ms/.exec(out);
  if (!m) throw new Error(`cannot parse ping output:\n${out}`);
  return { avg: Number(m[1]) * 1000, mdev: Number(m[2]) * 1000 };
}

function iperf(s: Setup, seconds: number, streams: number): number {
  const r = spawnSync('ip', ['netns', 'exec', s.nsA, 'iperf3', '-c', s.addrB, '-p', '5201', '-t', String(seconds), '-P', String(streams), '-J'],
    { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  let j: { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
  try {
    j = JSON.parse(r.stdout) as typeof j;
  } catch {
    throw new Error(`iperf3 gave no JSON (status ${r.status}): ${r.stderr}`);
  }
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  return (j.end?.sum_received?.bits_per_second ?? NaN) / 1e9;
}

function measure(s: Setup, o: Options): Sample {
  const p = ping(s, o.pingCount);
  const busy = ping(s, o.pingCount, '0.001');
  const cpu0 = relayCpu(s);
  const tcpGbps = iperf(s, o.time, 1);
  const cpu = relayCpu(s) - cpu0;
  const gb = (tcpGbps * o.time) / 8;
  const relayCpuPerGB = s.relays.length && gb > 0 ? cpu / gb : NaN;
  return { pingAvgUs: p.avg, pingMdevUs: p.mdev, pingBusyAvgUs: busy.avg, tcpGbps, tcp2Gbps: iperf(s, o.time, 2), relayCpuPerGB };
}

// ---------------------------------------------------------------- report
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
};
const fmt = (xs: number[], digits: number) => {
  const f = (x: number) => x.toFixed(digits);
  const ok = xs.filter((x) => Number.isFinite(x));
  if (ok.length === 0) return 'failed';
  return ok.length === 1 ? f(ok[0]!) : `${f(median(ok))} (${f(Math.min(...ok))}–${f(Math.max(...ok))})`;
};

function machine(): string {
  const ver = (cmd: string, args: string[], re: RegExp) =>
    (spawnSync(cmd, args, { encoding: 'utf8' }).stdout ?? '').split('\n').find((l) => re.test(l))?.trim() ?? `${cmd} ?`;
  return `${machineLine(machineFacts())}, ${ver('iperf3', ['--version'], /^iperf/)}, ${ver('socat', ['-V'], /socat version/).replace(/ on .*$/, '')}`;
}

function report(o: Options, results: Map<string, Sample[]>, describes: Map<string, string>, started: Date, errors: string[]): string {
  const lines: string[] = [];
  lines.push(`## IP between two network namespaces: veth vs ivshm vs socat relay`, '');
  lines.push(`Measured ${started.toISOString()} on ${machine()}; load average at start ${startLoad.map((x) => x.toFixed(1)).join(' ')} ` +
    `(figures are only comparable within one run).`);
  lines.push(`Command: \`${['node', 'dist/bench/net-paths.js', ...process.argv.slice(2)].join(' ')}\`. ` +
    `Each cell: median (min–max) over ${o.runs} run(s); runs of all paths interleaved. ` +
    `Ping: \`ping -c ${o.pingCount} -i 0.01 -q\` avg and mdev in µs; "ping 1 ms" is the avg of \`-i 0.001\` (pings 1 ms apart). TCP: \`iperf3 -t ${o.time}\` (-P 1 and -P 2), Gbit/s received. ` +
    'Relay CPU: user+system CPU seconds of both relay processes (ivshm net or socat) per GB moved in the single-stream run ' +
    '(less sensitive to a busy machine than the rates). IPv6 is disabled in the namespaces; every run of every path is set up fresh in its own namespace pair and torn down after it.', '');
  lines.push('| path | MTU | ping avg µs | ping mdev µs | ping 1 ms avg µs | TCP Gbit/s | TCP -P 2 Gbit/s | TCP vs veth | ping vs veth | relay CPU s/GB |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const mtu of o.mtus) {
    const veth = results.get(`veth/${mtu}`);
    for (const p of o.paths) {
      const xs = results.get(`${p}/${mtu}`) ?? [];
      const tcp = median(xs.map((x) => x.tcpGbps));
      const pingAvg = median(xs.map((x) => x.pingAvgUs));
      const rel = (a: number, b: number | undefined, d: number) =>
        b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || p === 'veth' ? '' : `${(a / b).toFixed(d)}×`;
      lines.push(`| ${p} | ${mtu} | ${fmt(xs.map((x) => x.pingAvgUs), 0)} | ${fmt(xs.map((x) => x.pingMdevUs), 0)} | ${fmt(xs.map((x) => x.pingBusyAvgUs), 0)} | ` +
        `${fmt(xs.map((x) => x.tcpGbps), 2)} | ${fmt(xs.map((x) => x.tcp2Gbps), 2)} | ` +
        `${rel(tcp, veth ? median(veth.map((x) => x.tcpGbps)) : undefined, 2)} | ${rel(pingAvg, veth ? median(veth.map((x) => x.pingAvgUs)) : undefined, 2)} | ` +
        `${p === 'veth' ? '' : fmt(xs.map((x) => x.relayCpuPerGB), 2)} |`);
    }
  }
  lines.push('', 'Setups:', '');
  for (const [k, v] of describes) lines.push(`- ${k}: \`${v}\``);
  if (errors.length) {
    lines.push('', 'Errors during the run:', '');
    for (const e of errors) lines.push(`- ${e}`);
  }
  lines.push('');
  return lines.join('\n');
}

// ---------------------------------------------------------------- main
async function main(): Promise<void> {
  const o = options();
  if (process.getuid?.() !== 0) {
    console.error('bench:net needs root: it creates network namespaces, veth pairs and TAP devices');
    process.exit(2);
  }
  for (const tool of ['ip', 'ping', 'iperf3', ...(o.paths.includes('socat') ? ['socat'] : [])]) {
    if (spawnSync(tool, ['-V']).error) {
      console.error(`bench:net needs ${tool}: apt-get install ${tool === 'ip' ? 'iproute2' : tool === 'ping' ? 'iputils-ping' : tool}`);
      process.exit(2);
    }
  }
  if (o.paths.some((p) => p.startsWith('ivshm')) && !fs.existsSync(cli)) {
    console.error(`${cli} is missing: build first (npx tsc -p .)`);
    process.exit(2);
  }
  removeStale();
  const started = new Date();
  const results = new Map<string, Sample[]>();
  const describes = new Map<string, string>();
  const errors: string[] = [];
  // A path is set up fresh for each run and torn down right after it, so
  // spinning wait modes (poll, hybrid) never steal CPU from another path's run.
  for (const mtu of o.mtus) {
    for (let run = 1; run <= o.runs; run++) {
      for (const p of o.paths) {
        const key = `${p}/${mtu}`;
        let s: Setup | undefined;
        try {
          s = await setupPath(p, mtu, o);
          // The iperf3 server in the B namespace.
          s.procs.unshift(start('ip', ['netns', 'exec', s.nsB, 'iperf3', '-s', '-p', '5201'], `iperf3 server ${s.nsB}`));
          describes.set(p, s.describe);
          await sleep(300); // server listening
          const x = measure(s, o);
          (results.get(key) ?? results.set(key, []).get(key)!).push(x);
          console.error(`run ${run}/${o.runs} ${p.padEnd(12)} MTU ${String(mtu).padStart(5)}: ping ${x.pingAvgUs.toFixed(0)} µs (1 ms apart: ${x.pingBusyAvgUs.toFixed(0)}) ` +
            `(mdev ${x.pingMdevUs.toFixed(0)}), TCP ${x.tcpGbps.toFixed(2)} Gbit/s, -P 2 ${x.tcp2Gbps.toFixed(2)} Gbit/s` +
            (Number.isFinite(x.relayCpuPerGB) ? `, relay CPU ${x.relayCpuPerGB.toFixed(2)} s/GB` : ''));
        } catch (err) {
          errors.push(`${p} MTU ${mtu} run ${run}: ${(err as Error).message}`);
          console.error(`run ${run} ${p} MTU ${mtu} failed: ${(err as Error).message}`);
        } finally {
          if (s) await teardown(s);
        }
      }
    }
  }
  const text = report(o, results, describes, started, errors);
  writeResults(o.out, {
    [`${o.name}.md`]: text,
    [`${o.name}.json`]: JSON.stringify({ started, options: o, machine: machine(), results: Object.fromEntries(results), errors }, null, 2),
  });
  console.log(text);
}

process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    console.error(`bench:net: ${sig}, cleaning up`);
    cleanup();
    process.exit(130);
  });
}
main().catch((err: unknown) => {
  console.error(`bench:net failed: ${err instanceof Error ? err.message : String(err)}`);
  cleanup();
  process.exit(1);
});
