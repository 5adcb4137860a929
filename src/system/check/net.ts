// Net links (ivshmem-net, docs/spec-net.md): the link's shape, its MTU, and
// per member the TAP interface, address and MAC, across all links of the
// file (interface names per namespace, overlapping subnets, duplicate MACs).
// The sizing, the MAC derivation and the TAP limits are the library's own
// (src/net/sizing.ts, src/net/mac.ts, src/sys/tap.ts).
import { isIPv4 } from 'node:net';
import { deriveMac } from '../../net/mac.js';
import { ETH_MIN_MTU, ivshmNetSizing, type NetSizing } from '../../net/sizing.js';
import { MAX_VECTORS } from '../../ivshmem/params.js';
import { TAP_MAX_MTU } from '../../sys/tap.js';
import { IFNAME_RULE, isInterfaceName, PAGE } from '../../units.js';
import type { LinkConfig } from '../config-schema.js';
import { pathText, type AddProblem } from './format.js';
import type { ResolvedMember } from './links.js';

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** Parse "10.0.0.1/24" into its address and network range, or null. */
function parseCidr(text: string): { addr: number; start: number; end: number } | null {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
  if (!m || !isIPv4(m[1]!)) return null;
  const prefix = Number(m[2]);
  if (prefix > 32) return null;
  const addr = m[1]!.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  const size = 2 ** (32 - prefix);
  const start = Math.floor(addr / size) * size;
  return { addr, start, end: start + size - 1 };
}

/** The sizing of an output section, or null when it cannot hold an ivshmem-net queue. */
function sizingOf(outputSize: number): NetSizing | null {
  try {
    return ivshmNetSizing(outputSize);
  } catch {
    return null;
  }
}

/** Checks of net links; one instance per file, since addresses, MACs and interface names must be unique across links. */
export class NetLinkChecker {
  private readonly addrs: { ns: string; cidr: NonNullable<ReturnType<typeof parseCidr>>; text: string; link: string; at: string }[] = [];
  private readonly macs = new Map<string, string>();
  private readonly ifnames = new Map<string, string>();

  constructor(private readonly add: AddProblem) {}

  /**
   * The link's own rules (docs/spec-net.md §1, §2, §10). `outputSize` is
   * undefined when it already has a problem of its own.
   */
  checkLink(l: LinkConfig, lp: readonly PropertyKey[], peers: number, vectors: number, outputSize: number | undefined): void {
    const add = this.add;
    if (l.peers !== undefined && peers !== 2) add([...lp, 'peers'], `an ivshmem-net link joins exactly 2 peers, not ${peers}`);
    if (vectors > 2 && vectors <= MAX_VECTORS) add([...lp, 'vectors'], `an ivshmem-net link uses 1 or 2 vectors (state, TX/RX), not ${vectors}`);
    if (outputSize === undefined) return;
    const sizing = sizingOf(outputSize);
    if (!sizing) {
      add([...lp, 'outputSize'], `${outputSize} bytes cannot hold an ivshmem-net queue (ring plus 4 minimum frames); use at least ${PAGE} (Jailhouse uses 0x7F000)`);
    } else if (l.mtu !== undefined) {
      // `ivshm up` bridges every member to a TAP device, whose limit may be the lower one.
      if (l.mtu < ETH_MIN_MTU || l.mtu > sizing.maxMtu) {
        add([...lp, 'mtu'], `${l.mtu} is outside ${ETH_MIN_MTU}..${sizing.maxMtu}, the MTUs a ${outputSize}-byte output section allows`);
      } else if (l.mtu > TAP_MAX_MTU) {
        add([...lp, 'mtu'], `${l.mtu} is outside ${ETH_MIN_MTU}..${TAP_MAX_MTU}, the MTUs a TAP device allows`);
      }
    }
  }

  /** Each member's interface, address and MAC; fills them into `members`. */
  checkMembers(l: LinkConfig, lp: readonly PropertyKey[], memberPaths: readonly number[], members: ResolvedMember[], netnsOf: (cell: string) => string): void {
    const add = this.add;
    l.members.forEach((m, mi) => {
      const mp: PropertyKey[] = [...lp, 'members', memberPaths[mi]!];
      const r = members[mi]!;
      const ns = netnsOf(m.cell);
      const ifname = m.interface ?? l.name;
      if (!isInterfaceName(ifname)) {
        const from = m.interface === undefined ? ' (the default is the link name; set interface)' : '';
        add([...mp, 'interface'], `${JSON.stringify(ifname)} is not a valid interface name${from}: ${IFNAME_RULE}`);
      } else {
        const key = `${ns}\0${ifname}`;
        const prev = this.ifnames.get(key);
        if (prev) add([...mp, 'interface'], `interface ${JSON.stringify(ifname)} is already used by ${prev} in namespace ${JSON.stringify(ns)}`);
        else this.ifnames.set(key, pathText(mp));
      }
      r.interface = ifname;
      if (m.address !== undefined) {
        const cidr = parseCidr(m.address);
        if (!cidr) add([...mp, 'address'], `${JSON.stringify(m.address)} is not an IPv4 address with prefix length, like 10.19.0.1/24`);
        else {
          for (const o of this.addrs) {
            if (o.ns !== ns) continue;
            if (o.link !== l.name && cidr.start <= o.cidr.end && o.cidr.start <= cidr.end) {
              add([...mp, 'address'], `${m.address} overlaps ${o.text} of link ${JSON.stringify(o.link)} (${o.at}) in namespace ${JSON.stringify(ns)}`);
            } else if (o.link === l.name && o.cidr.addr === cidr.addr) {
              add([...mp, 'address'], `${m.address} is also the address of ${o.at}`);
            }
          }
          this.addrs.push({ ns, cidr, text: m.address, link: l.name, at: pathText(mp) });
          r.address = m.address;
        }
      }
      // The MAC `ivshm net` would pick for this link and ID, unless one is set.
      const mac = (m.mac ?? deriveMac(l.name, r.id)).toLowerCase();
      if (!MAC_RE.test(mac)) add([...mp, 'mac'], `${JSON.stringify(m.mac)} is not a MAC address like 02:00:00:00:00:01`);
      else if ((parseInt(mac.slice(0, 2), 16) & 1) !== 0) add([...mp, 'mac'], `${mac} is a multicast address; the first octet must be even`);
      else if (mac === '00:00:00:00:00:00') add([...mp, 'mac'], `the all-zero MAC is not a valid address`);
      else {
        const prev = this.macs.get(mac);
        if (prev) add([...mp, 'mac'], `MAC ${mac} is already used by ${prev}`);
        else this.macs.set(mac, pathText(mp));
      }
      r.mac = mac;
    });
  }
}
