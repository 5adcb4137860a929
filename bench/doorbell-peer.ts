// One side of the doorbell ping-pong (bench/doorbell.ts). Roles:
//   ping SOCKET N  -> joins as peer 0, rings peer 1, times each round trip, prints JSON
//   pong SOCKET    -> joins as peer 1, rings back on every interrupt
//   uds-server PATH / uds-client PATH N -> the same over a UNIX stream socket
import net from 'node:net';
import { connect } from '../src/ivshmem/device.js';
import { newHistogram, summarize } from './stats.js';

const [role, target, nText] = process.argv.slice(2) as [string, string, string | undefined];
const N = Number(nText ?? 0);
const WARMUP = Math.min(2000, Math.floor(N / 5));

if (role === 'pong') {
  const d = await connect({ socket: target, id: 1 });
  d.on('interrupt', (e) => {
    if (e.from === 0) d.ring(0, 0);
  });
  d.on('close', () => process.exit(0));
  process.stdout.write('ready\n');
} else if (role === 'ping') {
  const d = await connect({ socket: target, id: 0 });
  while (!d.peers().includes(1)) await new Promise((r) => setTimeout(r, 10));
  const h = newHistogram();
  let i = 0;
  let t0 = 0n;
  d.on('interrupt', (e) => {
    if (e.from !== 1) return;
    const dt = Number(process.hrtime.bigint() - t0);
    if (i++ >= WARMUP) h.recordValue(dt);
    if (i < N + WARMUP) {
      t0 = process.hrtime.bigint();
      d.ring(1, 0);
    } else {
      process.stdout.write(JSON.stringify(summarize(h)) + '\n');
      d.close();
      process.exit(0);
    }
  });
  t0 = process.hrtime.bigint();
  d.ring(1, 0);
} else if (role === 'uds-server') {
  const server = net.createServer((s) => s.on('data', (b) => s.write(b)));
  server.listen(target, () => process.stdout.write('ready\n'));
} else if (role === 'uds-client') {
  const s = net.createConnection(target);
  const msg = Buffer.alloc(8);
  const h = newHistogram();
  let i = 0;
  let got = 0;
  let t0 = 0n;
  s.on('data', (b) => {
    got += b.length;
    if (got < 8) return;
    got = 0;
    const dt = Number(process.hrtime.bigint() - t0);
    if (i++ >= WARMUP) h.recordValue(dt);
    if (i < N + WARMUP) {
      t0 = process.hrtime.bigint();
      s.write(msg);
    } else {
      process.stdout.write(JSON.stringify(summarize(h)) + '\n');
      s.destroy();
      process.exit(0);
    }
  });
  s.on('connect', () => {
    t0 = process.hrtime.bigint();
    s.write(msg);
  });
}
