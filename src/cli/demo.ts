// `ivshm demo` (what `npm start` runs): a broker and two real peer
// processes; states, doorbells and shared memory shown as they happen.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { Command } from 'commander';
import { Broker } from '../ivshmem/broker.js';
import { PeerGoneError } from '../errors.js';
import { parseInteger } from '../units.js';
import { runDemo } from '../demo/system.js';
import { timestamp } from './util.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function register(program: Command): void {
  program
    .command('demo')
    .description('what npm start runs: a link walkthrough (broker, two peer processes), then a whole system with a live dashboard')
    .option('--step-ms <ms>', 'pause between the walkthrough steps', '300')
    .option('--duration <s>', 'seconds the system demo runs (0: until Ctrl-C)', '30')
    .option('--http <addr>', 'dashboard address', '127.0.0.1:0')
    .option('--link-only', 'only the link walkthrough')
    .option('--system-only', 'only the system demo')
    .action(async (o: { stepMs: string; duration: string; http: string; linkOnly?: boolean; systemOnly?: boolean }) => {
      const duration = parseInteger(o.duration, 0, 86400, '--duration');
      if (!o.systemOnly) await runLinkDemo(parseInteger(o.stepMs, 0, 10000, '--step-ms'));
      if (o.linkOnly) return;
      console.log(`\n=== A whole system: two cells joined by an ivshmem-net link and a channel link (${duration ? `${duration} s` : 'until Ctrl-C'}) ===`);
      if (duration) console.log('(keep it running with: npm start -- --duration 0)');
      await runDemo({ http: o.http, durationMs: duration * 1000 || undefined });
      process.exit(0);
    });
}

export async function runLinkDemo(stepMs: number): Promise<void> {
  console.log('=== One ivshmem 2.0 link: a broker and two peer processes (ivshm broker / ivshm peer) ===');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ivshm-demo-'));
  const socket = path.join(dir, 'demo.sock');
  const broker = new Broker({ socket, peers: 2, vectors: 2, outputSize: '64K', name: 'demo' });
  broker.on('log', (l) => console.log(`${timestamp()} [broker] ${l.message}`));
  await broker.start();
  const peers: ChildProcess[] = [];
  const say = (line: string) => console.log(`${timestamp()} ${line}`);
  try {
    for (const id of [0, 1]) {
      const child = spawn(process.execPath, [process.argv[1]!, 'peer', '--socket', socket, '--id', String(id)], { stdio: ['pipe', 'pipe', 'inherit'] });
      const lines = readline.createInterface({ input: child.stdout! });
      const joined = new Promise<void>((resolve, reject) => {
        lines.once('line', () => resolve());
        child.once('exit', (code) => reject(new PeerGoneError(`peer ${id} exited with code ${code} before joining`)));
      });
      lines.on('line', (l) => console.log(`${l.slice(0, 12)} [peer ${id}]${l.slice(12)}`));
      peers.push(child);
      await joined;
    }
    const [p0, p1] = peers as [ChildProcess, ChildProcess];
    const step = async (who: ChildProcess, cmd: string, note: string) => {
      say(`--- ${note}: peer ${who === p0 ? 0 : 1} runs "${cmd}"`);
      who.stdin!.write(cmd + '\n');
      await sleep(stepMs);
    };
    await step(p0, 'state 1', 'STATE write: the broker stores it in the State Table and raises vector 0 on the other peer');
    await step(p1, 'state 1', 'the other side answers');
    await step(p0, 'write 0 hello from peer 0', 'peer 0 writes into its own output section (read-only for everyone else)');
    await step(p0, 'ring 1 1', 'DOORBELL: peer 0 rings peer 1 on vector 1');
    await step(p1, 'read 0 0 17', "peer 1 reads peer 0's output section");
    await step(p1, 'ring 0 0', 'peer 1 rings back on vector 0');
    await step(p1, 'intctl 0', 'INT_CONTROL 0: peer 1 masks its interrupts');
    await step(p0, 'ring 1 1', 'this doorbell is suppressed, not replayed later');
    await step(p1, 'oneshot 1', 'one-shot mode: each delivery clears INT_CONTROL');
    await step(p1, 'intctl 1', 'peer 1 re-arms');
    await step(p0, 'ring 1 1', 'delivered once...');
    await step(p0, 'ring 1 1', '...and suppressed until re-armed');
    await step(p1, 'dump', 'the device registers and counters of peer 1');
    await step(p1, 'quit', 'peer 1 leaves: the broker zeroes its state and tells peer 0');
    await step(p0, 'quit', 'done');
  } finally {
    for (const p of peers) if (p.exitCode === null) p.kill('SIGTERM');
    await broker.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }

}
