// The built-in demo system (`npm start`): two cells joined by an ivshmem-net
// link and a message channel, traffic flowing, status printed, dashboard URL
// shown (README, "The demo"). As root each cell gets its own network namespace
// and the net link a TAP device on each side, and the cells exchange UDP over
// it; without root it says so and runs what needs no root (the brokers and
// the channel ping-pong).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { terminalProgress } from '../system/progress.js';
import { formatStatus } from '../system/status-format.js';
import { upSystem, type RunningSystem } from '../system/up.js';

const demoCell = fileURLToPath(new URL('./cell.js', import.meta.url));

/** The demo's system file; with namespaces each cell gets its own and the net link a TAP per side. */
export function demoSystemYaml(opts: { namespaces: boolean }): string {
  const ns = (n: string): string => (opts.namespaces ? `\n    netns: ivshm-demo-${n}` : '');
  const netEnv = (peer?: string): string =>
    opts.namespaces ? `\n    env: { DEMO_NET_LINK: net0${peer ? `, DEMO_NET_PEER: ${peer}` : ''} }` : '';
  return `# ivshm demo: two cells, an ivshmem-net link and a message channel
name: ivshm-demo
cells:
  - name: alpha
    command: node
    args: [${JSON.stringify(demoCell)}, --role, ping]${ns('alpha')}${netEnv('10.19.0.2')}
    restart: always
  - name: beta
    command: node
    args: [${JSON.stringify(demoCell)}, --role, pong]${ns('beta')}${netEnv()}
    restart: always
links:
  - name: net0
    kind: net
    outputSize: 256K
    members:
      - { cell: alpha, id: 0, interface: ivshm-a, address: 10.19.0.1/24 }
      - { cell: beta, id: 1, interface: ivshm-b, address: 10.19.0.2/24 }
  - name: chat
    kind: channel
    vectors: 2
    outputSize: 64K
    members: [{ cell: alpha, id: 0 }, { cell: beta, id: 1 }]
`;
}

export interface DemoOptions {
  /** Dashboard address (default 127.0.0.1:0, a free port). */
  http?: string;
  /** Stop after this long (default: run until Ctrl-C). */
  durationMs?: number;
  /** Seconds between status prints (default 5). */
  statusEverySeconds?: number;
  log?: (line: string) => void;
}

/** Run the demo until SIGINT/SIGTERM (or durationMs); leaves nothing behind. */
export async function runDemo(opts: DemoOptions = {}): Promise<void> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const root = process.getuid?.() === 0;
  if (root) log('ivshm demo: running as root: cells alpha and beta get network namespaces, net0 gets a TAP device on each side');
  else {
    log('ivshm demo: not running as root, so no network namespaces and no TAP devices:');
    log('  the net0 broker runs but carries no frames; the chat link between the cells runs in full. Run as root for everything.');
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ivshm-demo-'));
  const file = path.join(dir, 'demo.yaml');
  fs.writeFileSync(file, demoSystemYaml({ namespaces: root }));
  let sys: RunningSystem | null = null;
  // Signals are caught from the start, so Ctrl-C while starting also cleans up.
  let stopNow: () => void = () => {};
  let stopped = false;
  const stopRequested = new Promise<void>((resolve) => {
    stopNow = () => {
      stopped = true;
      resolve();
    };
  });
  process.on('SIGINT', stopNow);
  process.on('SIGTERM', stopNow);
  let printer: NodeJS.Timeout | null = null;
  try {
    const progress = terminalProgress();
    try {
      sys = await upSystem(file, { http: opts.http ?? '127.0.0.1:0', cellOutput: false, log, progress: (n, t, w) => progress.step(n, t, w) });
    } finally {
      progress.done();
    }
    const s = sys;
    if (!stopped) {
      log(`system file: ${file} (try: ivshm check ${file})`);
      log(`dashboard: ${s.supervisor.dashboardUrl}`);
      log('status: ivshm status   one cell: ivshm cell restart beta   stop: Ctrl-C');
      const every = Math.max(1, opts.statusEverySeconds ?? 5) * 1000;
      printer = setInterval(() => log(`\n${formatStatus(s.supervisor.status())}`), every);
      setTimeout(() => log(`\n${formatStatus(s.supervisor.status())}`), 2500).unref();
      if (opts.durationMs) setTimeout(stopNow, opts.durationMs).unref();
      await stopRequested;
    }
    log('stopping: cells, TAP bridges, brokers, namespaces');
  } finally {
    if (printer) clearInterval(printer);
    process.off('SIGINT', stopNow);
    process.off('SIGTERM', stopNow);
    await sys?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  log('demo stopped; nothing left behind');
}
