// The TAP bridge process `ivshm up` runs for each member of a net link:
// joins the link with the member's ID and token (IVSHM_LINKS, like any cell),
// runs ivshmem-net (protocol 0x0001) over it and bridges it to a TAP device
// in the member cell's namespace. Reports frames, bytes and doorbells to the
// supervisor. Usage (by the supervisor only):
//   node net-bridge.js --link NAME --tap IF [--netns NS] [--address CIDR] [--mtu N] [--mac MAC]
import { openNet } from '../net/endpoint.js';
import { TapBridge } from '../net/tap-bridge.js';
import { openTap } from '../sys/tap.js';
import { connect } from '../ivshmem/device.js';
import { CounterReporter } from './cell-env.js';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const link = arg('--link')!;
const ifname = arg('--tap')!;
const netns = arg('--netns');
const address = arg('--address');
const mtu = arg('--mtu') ? Number(arg('--mtu')) : undefined;
const mac = arg('--mac');
const say = (m: string): void => console.log(`${ifname}${netns ? `@${netns}` : ''}: ${m}`);

const tap = openTap({ name: ifname, ...(netns ? { netns } : {}), ...(mtu ? { mtu } : {}), ...(mac ? { mac } : {}), carrier: false, up: false });
const dev = await connect(link);
const net = openNet(dev, { ...(mtu ? { mtu } : {}) });
if (tap.mtu !== net.mtu) tap.setMtu(net.mtu);
if (address) tap.addAddress(address);
tap.setUp(true);
const bridge = new TapBridge(net, tap, { ownTap: true });
say(`peer ${dev.id} of ${dev.name}, MTU ${net.mtu}, MAC ${tap.mac}`);

const reporter = new CounterReporter().track(link, () => {
  const c = bridge.counters();
  return { frames: c.tapRxFrames, bytes: c.tapRxBytes, doorbells: dev.counters.doorbellsSent };
});
bridge.on('carrier', (on) => say(`carrier ${on ? 'up' : 'down'}`));
bridge.on('log', (l) => say(l.message));
net.on('violation', (v: unknown) => say(`peer violated the protocol: ${v instanceof Error ? v.message : JSON.stringify(v)}`));

let stopping = false;
const stop = (code: number): void => {
  if (stopping) return;
  stopping = true;
  reporter.close();
  try {
    net.down();
  } catch {
    /* link already gone */
  }
  bridge.close();
  try {
    net.close();
  } catch {
    /* closed */
  }
  dev.close();
  process.exit(code);
};
bridge.on('tap-gone', () => stop(1));
dev.on('close', ({ reason }) => {
  say(`link gone (${reason})`);
  stop(1);
});
process.on('SIGTERM', () => stop(0));
process.on('SIGINT', () => stop(0));
net.up();
