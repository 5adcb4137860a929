// Linux TAP devices through /dev/net/tun: create or
// attach with TUNSETIFF (IFF_TAP | IFF_NO_PI, optionally IFF_VNET_HDR), set
// MTU, MAC and IFF_UP with the classic SIOCSIF* ioctls on a control socket
// created in the same namespace, drive the carrier with TUNSETCARRIER, and
// read/write one Ethernet frame per call on a non-blocking fd.
//
// A TAP this module creates is not persistent: the kernel deletes it (and its
// addresses and routes) when the last fd closes, so even kill -9 leaves
// nothing behind. A TAP that existed before (made persistent with
// `ip tuntap add`) is only attached to; close() removes what we added to it.
import { execFileSync } from 'node:child_process';
import { ClosedError, InvalidArgumentError, NotSupportedError, PermissionError, OsError } from '../errors.js';
import { checkInterfaceName } from '../units.js';
import { c, errno, errnoName, E, K, osError } from './libc.js';
import { closeFd, setNonBlocking } from './fd.js';
import { withNetns, checkNetnsName } from './netns.js';
import { watchReadable, type Watch } from './poll.js';

// <linux/if_tun.h>: _IOW('T', nr, int) = 0x40045400 | nr, _IOR = 0x80045400 | nr.
export const TUNSETIFF = 0x400454ca;
export const TUNSETPERSIST = 0x400454cb;
export const TUNGETFEATURES = 0x800454cf;
export const TUNSETOFFLOAD = 0x400454d0;
export const TUNSETVNETHDRSZ = 0x400454d8;
export const TUNSETCARRIER = 0x400454e2;
export const IFF_TAP = 0x0002;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;
// TUNSETOFFLOAD bits
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
// <linux/sockios.h>
const SIOCGIFFLAGS = 0x8913;
const SIOCSIFFLAGS = 0x8914;
const SIOCGIFMTU = 0x8921;
const SIOCSIFMTU = 0x8922;
const SIOCSIFHWADDR = 0x8924;
const SIOCGIFHWADDR = 0x8927;
const SIOCGIFINDEX = 0x8933;
const IFF_UP = 0x1;
const IFF_RUNNING = 0x40;
const ARPHRD_ETHER = 1;
const AF_INET = 2;
const IFNAMSIZ = 16;
/** EBADFD: the fd's TAP was deleted (Node's os.constants lacks it). */
export const EBADFD = 77;
const IFREQ_SIZE = 40;

/** struct virtio_net_hdr (without num_buffers), the IFF_VNET_HDR prefix. */
export const VNET_HDR_LEN = 10;
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;

export const ETH_HLEN = 14;
/** Largest MTU the tun driver accepts (65535 - ETH_HLEN, `ip -d link` maxmtu). */
export const TAP_MAX_MTU = 65521;
/** Largest frame a TAP read can return: 64 KiB payload + header (+ vnet header). */
export const TAP_MAX_FRAME = 65536 + ETH_HLEN + VNET_HDR_LEN;

/** Name, namespace, MTU, MAC and state of a TAP device to open. */
export interface TapOptions {
  /** Interface name, at most 15 bytes. */
  name: string;
  /** Network namespace (/run/netns/NAME) the TAP lives in; default: the current one. */
  netns?: string;
  mtu?: number;
  /** 6 bytes or 'aa:bb:cc:dd:ee:ff'. */
  mac?: string | Uint8Array;
  /** Prefix every frame with a struct virtio_net_hdr (10 bytes). */
  vnetHdr?: boolean;
  /** Bring the interface up (default true). */
  up?: boolean;
  /** Initial carrier (default false: the link decides). */
  carrier?: boolean;
}

export function checkIfName(name: string): void {
  checkInterfaceName(name);
}

export function parseMac(mac: string | Uint8Array): Buffer {
  if (typeof mac !== 'string') {
    if (mac.byteLength !== 6) throw new InvalidArgumentError(`MAC must be 6 bytes, got ${mac.byteLength}`);
    return Buffer.from(mac);
  }
  const m = /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i.exec(mac);
  if (!m) throw new InvalidArgumentError(`MAC ${JSON.stringify(mac)} is not of the form 02:00:00:00:00:01`);
  const b = Buffer.from(m.slice(1, 7).map((h) => parseInt(h, 16)));
  if ((b[0]! & 1) !== 0) {
    throw new InvalidArgumentError(`MAC ${mac} is a multicast address; an interface needs a unicast MAC (even first byte, e.g. 02:...)`);
  }
  if (b.every((x) => x === 0)) throw new InvalidArgumentError(`MAC ${mac} is all zeros`);
  return b;
}

export const formatMac = (b: Uint8Array): string => Array.from(b.subarray(0, 6), (x) => x.toString(16).padStart(2, '0')).join(':');

function callError(call: string, what: string, hint = ''): OsError {
  const code = errno();
  return osError(call, code, `${call}(${what}) failed: ${errnoName(code)}${hint ? `; ${hint}` : ''}`);
}

/** Open /dev/net/tun with a message that says what is missing. */
function openTunDev(): number {
  const fd = c.open('/dev/net/tun', K.O_RDWR | K.O_CLOEXEC, 0) as number;
  if (fd >= 0) return fd;
  const code = errno();
  if (code === E.ENOENT || code === E.ENODEV || code === E.ENXIO) {
    throw new NotSupportedError(`/dev/net/tun is missing (${errnoName(code)}): load the tun module (modprobe tun) ` +
      'or create the node (mkdir -p /dev/net && mknod /dev/net/tun c 10 200); in a container, pass --device /dev/net/tun');
  }
  if (code === E.EPERM || code === E.EACCES) {
    throw new PermissionError('open', code, `cannot open /dev/net/tun (${errnoName(code)}): creating a TAP device needs root or CAP_NET_ADMIN`);
  }
  throw callError('open', '/dev/net/tun');
}

function ifreq(name: string): Buffer {
  const b = Buffer.alloc(IFREQ_SIZE);
  b.write(name, 0, IFNAMSIZ - 1, 'utf8');
  return b;
}

/** Run `ip` (iproute2) in a namespace; used for addresses, which have no portable ioctl for IPv6. */
export function ipCommand(netns: string | undefined, args: string[]): string {
  const argv = netns === undefined ? args : ['-n', netns, ...args];
  try {
    return execFileSync('ip', argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') {
      throw new NotSupportedError('the `ip` command (iproute2) is needed to set interface addresses: install iproute2');
    }
    throw new InvalidArgumentError(`ip ${argv.join(' ')} failed: ${(e.stderr ?? e.message).toString().trim()}`);
  }
}

/** Parse and check an address with prefix, e.g. 10.0.0.1/24 or fd00::1/64. */
export function checkCidr(cidr: string): { family: 4 | 6; address: string; prefix: number } {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr);
  const bad = () =>
    new InvalidArgumentError(`address ${JSON.stringify(cidr)} is not ADDRESS/PREFIX (e.g. 10.0.0.1/24 or fd00::1/64)`);
  if (!m) throw bad();
  const address = m[1]!;
  const prefix = Number(m[2]);
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  if (v4) {
    if (v4.slice(1).some((x) => Number(x) > 255) || prefix > 32) throw bad();
    return { family: 4, address, prefix };
  }
  if (/^[0-9a-f:]+$/i.test(address) && address.includes(':') && prefix <= 128) return { family: 6, address, prefix };
  throw bad();
}

export interface TapInfo {
  name: string;
  netns: string | undefined;
  ifindex: number;
  mtu: number;
  mac: string;
  up: boolean;
  running: boolean;
  created: boolean;
}

/** An open TAP device: read and write Ethernet frames, set MTU, MAC, addresses and link state. */
export class TapDevice {
  /** Non-blocking fd; one read or write = one frame. */
  readonly fd: number;
  readonly name: string;
  readonly netns: string | undefined;
  /** True when this object created the interface (it disappears on close). */
  readonly created: boolean;
  /** Bytes of virtio_net_hdr before each frame (0 without IFF_VNET_HDR). */
  readonly vnetHdrLen: number;
  private readonly ctl: number;
  private readonly addresses: string[] = [];
  private closed = false;
  private readonly carrierArg = new Int32Array(1);

  private constructor(fd: number, ctl: number, name: string, netns: string | undefined, created: boolean, vnetHdrLen: number) {
    this.fd = fd;
    this.ctl = ctl;
    this.name = name;
    this.netns = netns;
    this.created = created;
    this.vnetHdrLen = vnetHdrLen;
  }

  /** Create (or attach to a persistent) TAP, inside `netns` when given. */
  static open(opts: TapOptions): TapDevice {
    checkIfName(opts.name);
    if (opts.netns !== undefined) checkNetnsName(opts.netns);
    const mac = opts.mac === undefined ? undefined : parseMac(opts.mac);
    if (opts.mtu !== undefined && (!Number.isInteger(opts.mtu) || opts.mtu < 68 || opts.mtu > 65535)) {
      throw new InvalidArgumentError(`MTU ${opts.mtu} is out of range 68..65535`);
    }
    // The TAP belongs to the namespace of the thread that opens /dev/net/tun,
    // and the control socket to the one it is created in: both inside.
    const { fd, ctl, created } = withNetns(opts.netns, () => {
      const ctl = c.socket(AF_INET, K.SOCK_DGRAM | K.SOCK_CLOEXEC, 0) as number;
      if (ctl < 0) throw callError('socket', 'AF_INET control socket');
      let fd = -1;
      try {
        const probe = ifreq(opts.name);
        const existed = (c.ioctl_ptr(ctl, SIOCGIFINDEX, probe) as number) >= 0;
        fd = openTunDev();
        const req = ifreq(opts.name);
        req.writeUInt16LE(IFF_TAP | IFF_NO_PI | (opts.vnetHdr ? IFF_VNET_HDR : 0), 16);
        if ((c.ioctl_ptr(fd, TUNSETIFF, req) as number) < 0) {
          const code = errno();
          const where = opts.netns ? ` in namespace ${opts.netns}` : '';
          let hint = '';
          if (code === E.EPERM || code === E.EACCES) hint = 'creating or attaching a TAP device needs root or CAP_NET_ADMIN';
          else if (code === E.EBUSY) hint = `${opts.name}${where} is already attached to another process; stop it or pick another --tap name`;
          else if (code === E.EINVAL) hint = `an interface ${opts.name} exists${where} and is not a TAP device (or was created with other flags); pick another --tap name`;
          throw osError('ioctl', code, `TUNSETIFF(${opts.name}${where}) failed: ${errnoName(code)}${hint ? `; ${hint}` : ''}`);
        }
        return { fd, ctl, created: !existed };
      } catch (err) {
        closeFd(fd);
        closeFd(ctl);
        throw err;
      }
    });
    const tap = new TapDevice(fd, ctl, opts.name, opts.netns, created, opts.vnetHdr ? VNET_HDR_LEN : 0);
    try {
      setNonBlocking(fd);
      if (opts.vnetHdr) {
        const sz = new Int32Array([VNET_HDR_LEN]);
        if ((c.ioctl_ptr(fd, TUNSETVNETHDRSZ, sz) as number) < 0) throw callError('ioctl', `TUNSETVNETHDRSZ ${opts.name}`);
        // No offloads: the kernel hands us complete frames with valid checksums,
        // which is what an ivshmem-net peer expects on the wire (c.4 step 5).
        if ((c.ioctl_int(fd, TUNSETOFFLOAD, 0) as number) < 0) throw callError('ioctl', `TUNSETOFFLOAD ${opts.name}`);
      }
      tap.setCarrier(opts.carrier ?? false);
      if (opts.mtu !== undefined) tap.setMtu(opts.mtu);
      if (mac) tap.setMac(mac);
      if (opts.up ?? true) tap.setUp(true);
    } catch (err) {
      tap.close();
      throw err;
    }
    return tap;
  }

  private ioctlIfreq(req: number, what: string, fill?: (b: Buffer) => void): Buffer {
    this.assertOpen();
    const b = ifreq(this.name);
    fill?.(b);
    if ((c.ioctl_ptr(this.ctl, req, b) as number) < 0) {
      const code = errno();
      if (code === E.ENODEV) throw this.vanishedError(what);
      throw callError('ioctl', `${what} ${this.name}`,
        code === E.EPERM ? 'changing an interface needs root or CAP_NET_ADMIN'
          : code === E.EINVAL && req === SIOCSIFMTU ? `a TAP accepts MTUs ${68}..${TAP_MAX_MTU}` : '');
    }
    return b;
  }

  private vanishedError(what: string): OsError {
    return new OsError('ioctl', E.ENODEV, `${what}: TAP ${this.name}${this.netns ? ` in namespace ${this.netns}` : ''} no longer exists (deleted under us)`);
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError(`TAP ${this.name} is closed`);
  }

  get ifindex(): number {
    return this.ioctlIfreq(SIOCGIFINDEX, 'SIOCGIFINDEX').readInt32LE(16);
  }

  get mtu(): number {
    return this.ioctlIfreq(SIOCGIFMTU, 'SIOCGIFMTU').readInt32LE(16);
  }

  setMtu(mtu: number): void {
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
      throw new InvalidArgumentError(`MTU ${mtu} is out of range 68..65535`);
    }
    this.ioctlIfreq(SIOCSIFMTU, `SIOCSIFMTU ${mtu}`, (b) => b.writeInt32LE(mtu, 16));
  }

  get mac(): string {
    return formatMac(this.ioctlIfreq(SIOCGIFHWADDR, 'SIOCGIFHWADDR').subarray(18, 24));
  }

  setMac(mac: string | Uint8Array): void {
    const m = parseMac(mac);
    this.ioctlIfreq(SIOCSIFHWADDR, `SIOCSIFHWADDR ${formatMac(m)}`, (b) => {
      b.writeUInt16LE(ARPHRD_ETHER, 16);
      m.copy(b, 18);
    });
  }

  private get flags(): number {
    return this.ioctlIfreq(SIOCGIFFLAGS, 'SIOCGIFFLAGS').readUInt16LE(16);
  }

  get isUp(): boolean {
    return (this.flags & IFF_UP) !== 0;
  }

  /** IFF_RUNNING: up and carrier on (what `ip link` shows as LOWER_UP/state UP). */
  get isRunning(): boolean {
    return (this.flags & IFF_RUNNING) !== 0;
  }

  setUp(up: boolean): void {
    const f = this.flags;
    const next = up ? f | IFF_UP : f & ~IFF_UP;
    if (next !== f) this.ioctlIfreq(SIOCSIFFLAGS, up ? 'SIOCSIFFLAGS up' : 'SIOCSIFFLAGS down', (b) => b.writeUInt16LE(next, 16));
  }

  /** TUNSETCARRIER: what `ip link` shows as NO-CARRIER / LOWER_UP. */
  setCarrier(on: boolean): void {
    this.assertOpen();
    this.carrierArg[0] = on ? 1 : 0;
    if ((c.ioctl_ptr(this.fd, TUNSETCARRIER, this.carrierArg) as number) < 0) {
      const code = errno();
      if (code === EBADFD) throw this.vanishedError('TUNSETCARRIER');
      throw callError('ioctl', `TUNSETCARRIER ${this.name}`);
    }
  }

  /** Add an address (ADDRESS/PREFIX) with iproute2; removed again on close when the TAP outlives us. */
  addAddress(cidr: string): void {
    this.assertOpen();
    checkCidr(cidr);
    ipCommand(this.netns, ['address', 'add', cidr, 'dev', this.name]);
    this.addresses.push(cidr);
  }

  info(): TapInfo {
    const f = this.flags;
    return {
      name: this.name, netns: this.netns, ifindex: this.ifindex, mtu: this.mtu, mac: this.mac,
      up: (f & IFF_UP) !== 0, running: (f & IFF_RUNNING) !== 0, created: this.created,
    };
  }

  /**
   * Read one frame into `into` (non-blocking). Returns its length, 0 when none
   * is queued, or -errno (-EBADFD: the interface was deleted under us).
   */
  read(into: Uint8Array): number {
    const n = c.read(this.fd, into, into.byteLength) as number;
    if (n >= 0) return n;
    const e = errno();
    return e === E.EAGAIN ? 0 : -e;
  }

  /** Write one frame; 0 on success or the errno. */
  write(frame: Uint8Array, length = frame.byteLength): number {
    const n = c.write(this.fd, frame, length) as number;
    return n < 0 ? errno() : 0;
  }

  /** Readiness callback on the event loop (level-triggered: drain in it). */
  watch(onReadable: (hangup: boolean) => void): Watch {
    return watchReadable(this.fd, onReadable);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Close the fd. A TAP we created vanishes with it; one we attached to gets
   * its carrier dropped and the addresses we added removed. Never throws.
   */
  close(): void {
    if (this.closed) return;
    if (!this.created) {
      try {
        this.setCarrier(false);
      } catch { /* already gone */ }
      for (const a of this.addresses) {
        try {
          ipCommand(this.netns, ['address', 'del', a, 'dev', this.name]);
        } catch { /* already gone */ }
      }
    }
    this.closed = true;
    closeFd(this.fd);
    closeFd(this.ctl);
  }
}

/** Create (or attach to) a TAP device, optionally in a network namespace, with MTU, MAC and address. */
export const openTap = (opts: TapOptions): TapDevice => TapDevice.open(opts);
