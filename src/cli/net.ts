// `ivshm net`: join a link as an ivshmem-net peer and bridge it to a TAP
// device (README, "IP networking between cells"). Thin: parse, open, wire events to log lines, stop cleanly.
import type { Command } from 'commander';
import { InvalidArgumentError, IvshmError } from '../errors.js';
import { connect } from '../ivshmem/device.js';
import { openNet } from '../net/endpoint.js';
import { TapBridge } from '../net/tap-bridge.js';
import { deriveMac } from '../net/mac.js';
import { checkCidr, checkIfName, openTap, parseMac, type TapDevice } from '../sys/tap.js';
import { netnsExists } from '../sys/netns.js';
import { timestamp } from './util.js';

type WaitMode = 'event' | 'poll' | 'hybrid';

interface NetCliOptions {
  socket: string;
  tap: string;
  id?: string;
  netns?: string;
  address: string[];
  mtu?: string;
  mac?: string;
  wait: string;
  json?: boolean;
  batch?: string;
}

const collect = (v: string, prev: string[]) => [...prev, v];

function intOption(name: string, v: string | undefined, lo: number, hi: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < lo || n > hi) throw new InvalidArgumentError(`--${name} ${v}: expected an integer in ${lo}..${hi}`);
  return n;
}

export function register(program: Command): void {
  program
    .command('net')
    .description('join an ivshmem-net link (protocol 0x0001) and bridge it to a TAP device, optionally in a network namespace')
    .requiredOption('--socket <path>', 'broker control socket path')
    .requiredOption('--tap <name>', 'TAP interface to create (or attach to, when persistent)')
    .option('--id <k>', 'requested peer ID, 0 or 1 (default: lowest free)')
    .option('--netns <ns>', 'network namespace for the TAP (/run/netns/NS, as made by ip netns add)')
    .option('--address <cidr>', 'address to add, e.g. 10.0.0.1/24 (repeatable)', collect, [])
    .option('--mtu <n>', 'MTU of the link and the TAP (default: the link default, 16384 when the section allows)')
    .option('--mac <mac>', 'MAC of the TAP (default: derived from link name and ID, stable across restarts)')
    .option('--wait <mode>', 'how to wait for the peer: event | poll | hybrid', 'event')
    .option('--batch <n>', 'frames drained from the TAP per wakeup', '64')
    .option('--json', 'one JSON object per line (events and counters)')
    .action(async (o: NetCliOptions) => {
      await runNet(o);
    });
}

async function runNet(o: NetCliOptions): Promise<void> {
  // Check everything the user typed before touching the system.
  checkIfName(o.tap);
  if (o.netns !== undefined && !netnsExists(o.netns)) {
    throw new InvalidArgumentError(`network namespace ${o.netns} does not exist: create it with ip netns add ${o.netns}`);
  }
  for (const a of o.address) checkCidr(a);
  if (o.mac !== undefined) parseMac(o.mac);
  const mtu = intOption('mtu', o.mtu, 68, 65535);
  const id = intOption('id', o.id, 0, 1);
  const batch = intOption('batch', o.batch, 1, 1024);
  if (!['event', 'poll', 'hybrid'].includes(o.wait)) {
    throw new InvalidArgumentError(`--wait ${o.wait}: expected event, poll or hybrid`);
  }
  const wait = o.wait as WaitMode;

  const log = (level: 'info' | 'warn', message: string, extra: Record<string, unknown> = {}) => {
    if (o.json) console.log(JSON.stringify({ time: new Date().toISOString(), level, message, ...extra }));
    else (level === 'warn' ? console.error : console.log)(`${timestamp()} ${level === 'warn' ? 'WARN ' : ''}${message}`);
  };

  // The TAP first: without root or /dev/net/tun we stop before joining the
  // link, with an error that says what is missing. Carrier stays off until
  // the link is up.
  let tap: TapDevice | null = openTap({ name: o.tap, netns: o.netns, mtu, mac: o.mac, carrier: false, up: false });
  const closeTap = () => {
    tap?.close();
    tap = null;
  };
  process.once('exit', closeTap);

  let dev;
  try {
    dev = await connect({ socket: o.socket, id });
  } catch (err) {
    closeTap();
    throw err;
  }
  let net;
  try {
    net = openNet(dev, { mtu, wait });
  } catch (err) {
    dev.close();
    closeTap();
    throw err;
  }
  let bridge: TapBridge;
  try {
    if (tap.mtu !== net.mtu) tap.setMtu(net.mtu);
    if (o.mac === undefined) tap.setMac(deriveMac(dev.name, dev.id));
    for (const a of o.address) tap.addAddress(a);
    tap.setUp(true);
    bridge = new TapBridge(net, tap, { ownTap: true, batch });
  } catch (err) {
    net.close();
    dev.close();
    closeTap();
    throw err;
  }
  const where = o.netns ? ` in namespace ${o.netns}` : '';
  log('info', `peer ${dev.id} of link ${dev.name}: TAP ${o.tap}${where}, MTU ${net.mtu}, MAC ${tap.mac}, wait ${wait}`,
    { event: 'ready', id: dev.id, link: dev.name, tap: o.tap, netns: o.netns ?? null, mtu: net.mtu, mac: tap.mac });

  const counters = () => ({ bridge: bridge.counters(), link: net.counters() });
  const printCounters = (why: string) => {
    const c = counters();
    if (o.json) console.log(JSON.stringify({ time: new Date().toISOString(), event: 'counters', why, ...c }));
    else {
      console.log(`${timestamp()} counters (${why}):`);
      for (const [k, v] of Object.entries({ ...c.bridge, ...(c.link as Record<string, unknown>) })) {
        if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') console.log(`  ${k} ${v}`);
      }
    }
  };

  let stopping = false;
  const stop = (code: number, why: string) => {
    if (stopping) return;
    stopping = true;
    try {
      net.down();
    } catch { /* link already gone */ }
    bridge.close(); // closes (and so removes) the TAP
    tap = null;
    printCounters(why);
    try {
      net.close();
    } catch { /* already closed */ }
    dev.close();
    process.exit(code);
  };

  bridge.on('log', (l) => log(l.level, l.message));
  bridge.on('carrier', (on) => log('info', `carrier ${on ? 'up' : 'down'}`, { event: 'carrier', carrier: on }));
  bridge.on('tap-gone', (e) => {
    log('warn', `${e.message}; exiting`, { event: 'tap-gone' });
    stop(1, 'tap-gone');
  });
  net.on('state', (s: unknown) => {
    if (o.json) console.log(JSON.stringify({ time: new Date().toISOString(), event: 'state', state: s }));
  });
  net.on('violation', (v: unknown) => {
    const text = v instanceof Error ? v.message : JSON.stringify(v);
    log('warn', `peer violated the protocol: ${text}`, { event: 'violation', detail: v instanceof IvshmError ? { code: v.code, message: v.message } : v });
  });
  dev.on('close', ({ reason }: { reason: string }) => {
    log('warn', `the link is gone (${reason}): is the broker on ${o.socket} still running? exiting`, { event: 'link-gone', reason });
    stop(1, 'link-gone');
  });
  process.on('SIGUSR1', () => printCounters('SIGUSR1'));
  process.on('SIGINT', () => stop(0, 'SIGINT'));
  process.on('SIGTERM', () => stop(0, 'SIGTERM'));
  process.on('SIGHUP', () => stop(0, 'SIGHUP'));

  net.up();
}
