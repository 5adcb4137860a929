// The cell program of the demo, the examples and the supervisor tests. It joins every
// non-net link it was given (connect with no configuration: IVSHM_LINKS) and
// plays ping-pong over it: on channel links with the message channel of
// src/channel, on raw links with a mailbox; with DEMO_NET_PEER set it also
// sends UDP echoes over the ivshmem-net TAP device. It reports counters to
// the supervisor.
//
// Raw-link mailbox in each peer's own output section (little-endian):
//   0: u32 sequence   4: u32 payload length   8: payload
// A peer only writes its own section and only reads the other's (docs/spec.md, "1.1 Sections"),
// and every length read from the peer is range-checked before use.
//
// Options: --role ping|pong, --crash-after MS (exit 3, for restart tests).
// Env: DEMO_INTERVAL_MS (pause between pings, default 10), DEMO_PAYLOAD (bytes,
// default 256), DEMO_NET_PEER / DEMO_NET_PORT (UDP echo over the TAP).
import dgram from 'node:dgram';
import { Channel } from '../channel/channel.js';
import { cellLinks } from '../ivshmem/cell-links.js';
import { connect, type Device } from '../ivshmem/device.js';
import { CounterReporter, type LinkCounters } from '../system/cell-env.js';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const role = arg('--role') === 'pong' ? 'pong' : 'ping';
const crashAfter = Number(arg('--crash-after') ?? 0);
const interval = Number(process.env.DEMO_INTERVAL_MS ?? 10);
const payloadSize = Number(process.env.DEMO_PAYLOAD ?? 256);
const cell = process.env.IVSHM_CELL ?? 'demo';
const say = (msg: string): void => console.log(`${cell}: ${msg}`);

const HDR = 8;
let shuttingDown = false;
const reporter = new CounterReporter();
const devices: Device[] = [];
const channels: Channel[] = [];

async function playChannel(name: string): Promise<void> {
  const dev = await connect(name);
  devices.push(dev);
  const ch = new Channel(dev);
  channels.push(ch);
  reporter.track(name, () => ({ messages: ch.counters.received, bytes: ch.counters.bytesReceived, doorbells: dev.counters.doorbellsSent }));
  say(`joined channel ${name} as peer ${dev.id} of ${dev.maxPeers}`);
  const payload = Buffer.alloc(payloadSize, role);
  ch.on('peer-up', (e) => {
    say(`peer ${e.peer} joined ${name}`);
    if (role === 'ping') void ch.send(payload).catch(() => {});
  });
  ch.on('peer-down', (e) => say(`peer ${e.peer} gone from ${name} (${e.reason})`));
  ch.on('violation', (e) => say(`peer ${e.peer} broke the channel protocol on ${name}: ${e.reason}`));
  let lastReply = Date.now();
  ch.on('message', (m) => {
    lastReply = Date.now();
    if (role === 'pong') void ch.send(m.data).catch(() => {});
    else setTimeout(() => void ch.send(payload).catch(() => {}), interval);
  });
  // A ping sent before the peer attached its reader is never delivered (the
  // channel reports it unconfirmed in peer-down/peer-up): start again.
  if (role === 'ping') {
    setInterval(() => {
      if (Date.now() - lastReply > 1000) {
        lastReply = Date.now();
        void ch.send(payload).catch(() => {});
      }
    }, 500).unref();
  }
  dev.on('close', ({ reason }) => {
    if (shuttingDown) return;
    say(`link ${name} closed (${reason})`);
    process.exit(1);
  });
}

async function playLink(name: string): Promise<void> {
  const dev = await connect(name);
  devices.push(dev);
  const counters: Required<LinkCounters> = { frames: 0, messages: 0, bytes: 0, doorbells: 0 };
  reporter.track(name, () => ({ ...counters, doorbells: dev.counters.doorbellsSent }));
  const vector = dev.vectors > 1 ? 1 : 0;
  const other = (): number | undefined => dev.peers().find((p) => p !== dev.id);
  const payload = Buffer.alloc(Math.min(payloadSize, Math.max(0, dev.output.length - HDR)), role);
  let seq = 0;
  let waiting = false;
  let resend: NodeJS.Timeout | null = null;
  say(`joined link ${name} as peer ${dev.id} of ${dev.maxPeers}`);
  dev.setState(1);

  const write = (s: number, len: number): void => {
    dev.output.writeUInt32LE(len, 4);
    payload.copy(dev.output, HDR, 0, len);
    // Sequence last: the reader treats a new sequence as "message complete".
    dev.output.writeUInt32LE(s, 0);
  };
  const send = (): void => {
    const peer = other();
    if (peer === undefined || dev.closed) return;
    seq = (seq + 1) >>> 0;
    write(seq, payload.length);
    waiting = true;
    dev.ring(peer, vector);
    if (resend) clearTimeout(resend);
    // A peer that restarted missed the doorbell: ring again.
    resend = setTimeout(() => {
      if (waiting) send();
    }, 1000);
  };
  let lastSeen = 0;
  dev.on('interrupt', (e) => {
    if (e.vector !== vector) return;
    const peer = other();
    if (peer === undefined) return;
    const hdr = dev.readOutput(peer, 0, HDR);
    const s = hdr.readUInt32LE(0);
    const len = hdr.readUInt32LE(4);
    // Untrusted length: at most what the section holds.
    if (len > dev.sizes.output - HDR) return say(`peer ${peer} wrote a bad length ${len}; ignored`);
    if (s === lastSeen) return;
    lastSeen = s;
    dev.readOutput(peer, HDR, len);
    counters.messages++;
    counters.bytes += len;
    if (role === 'pong') {
      write(s, len);
      dev.ring(peer, vector);
    } else if (waiting && s === seq) {
      waiting = false;
      setTimeout(send, interval);
    }
  });
  dev.on('peer-joined', ({ peer }) => {
    say(`peer ${peer} joined ${name}`);
    lastSeen = 0;
    if (role === 'ping') setTimeout(send, 50);
  });
  dev.on('peer-gone', ({ peer, reason }) => say(`peer ${peer} gone from ${name} (${reason})`));
  dev.on('close', ({ reason }) => {
    if (shuttingDown) return;
    say(`link ${name} closed (${reason})`);
    process.exit(1);
  });
  if (role === 'ping' && other() !== undefined) send();
}

function udpEcho(): void {
  const peer = process.env.DEMO_NET_PEER;
  const port = Number(process.env.DEMO_NET_PORT ?? 9000);
  const sock = dgram.createSocket('udp4');
  sock.on('error', (err) => say(`udp: ${err.message}`));
  const counters: Required<LinkCounters> = { frames: 0, messages: 0, bytes: 0, doorbells: 0 };
  if (role === 'pong') {
    sock.bind(port);
    sock.on('message', (m, from) => {
      counters.messages++;
      sock.send(m, from.port, from.address);
    });
  } else if (peer) {
    sock.bind(0);
    sock.on('message', () => counters.messages++);
    const data = Buffer.alloc(1000, 'u');
    setInterval(() => sock.send(data, port, peer), 20).unref();
  }
  if (process.env.DEMO_NET_LINK) reporter.track(process.env.DEMO_NET_LINK, () => counters);
}

const links = Object.entries(cellLinks()).filter(([, e]) => e.kind !== 'net');
say(`${role} starting with ${links.length} link(s)`);
for (const [name, e] of links) {
  (e.kind === 'channel' ? playChannel(name) : playLink(name)).catch((err: Error) => {
    say(`cannot join ${name}: ${err.message}`);
    process.exit(2);
  });
}
if (process.env.DEMO_NET_PEER || (role === 'pong' && process.env.DEMO_NET_LINK)) udpEcho();
if (crashAfter > 0) {
  setTimeout(() => {
    say(`crashing on purpose after ${crashAfter} ms`);
    process.exit(3);
  }, crashAfter);
}
const shutdown = (): void => {
  shuttingDown = true;
  for (const c of channels) c.close();
  for (const d of devices) d.close();
  reporter.close();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
setInterval(() => {}, 1 << 30);
