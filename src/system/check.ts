// `ivshm check`: every mistake in a system file, reported at once with the
// file, the line, the path inside the file and the reason.
//
// Jailhouse's own checker parses no ivshmem device at all (ivshmem-v2-notes.md
// e.5) and the hypervisor compares nothing between the peers of a link (e.4).
// This one covers g.37-g.40 as far as they apply to this model:
//  - g.37 (peers/vectors/protocol/sizes disagree between peers): a link is
//    declared once; a member that repeats a parameter must agree with it.
//  - g.38 (wrong read/write flags): there are no flags to get wrong; the
//    broker grants R/W on the R/W section and the owner's output section
//    only, by construction (DESIGN.md "Security model").
//  - g.39: sizes must be page multiples; IDs unique and below `peers`.
//    Regions cannot be non-contiguous: each section is its own memfd.
//  - g.40: zero-size R/W sections are allowed (ignored); there are no
//    physical addresses to overlap, but net addresses can (checked below).
import fs from 'node:fs';
import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { MAX_PEERS_LIMIT, MAX_VECTORS, MIN_PEERS } from '../ivshmem/layout.js';
import { formatBytes, integerValue, IFNAME_RULE, isInterfaceName, nameProblem, PAGE, sectionSizeProblem, sizeValue } from '../units.js';
import {
  cellSchema,
  KIND_OUTPUT_SIZE,
  KIND_PROTOCOL,
  linkShellSchema,
  memberSchema,
  systemShellSchema,
  type CellConfig,
  type LinkConfig,
  type MemberConfig,
  type LinkKind,
  type RestartConfig,
} from './config-schema.js';
import { netQueueSizing } from './net-sizing.js';

export interface Problem {
  /** Path inside the file, e.g. links[0].members[1].id. */
  path: string;
  message: string;
  line?: number;
  column?: number;
}

export interface ResolvedMember {
  cell: string;
  id: number;
  /** net links: TAP interface name, address (CIDR) and MAC. */
  interface?: string;
  address?: string;
  mac?: string;
}

export interface ResolvedLink {
  name: string;
  kind: LinkKind;
  peers: number;
  vectors: number;
  protocol: number;
  outputSize: number;
  rwSize: number;
  stateSize: number;
  mtu?: number;
  members: ResolvedMember[];
}

export interface ResolvedCell extends Omit<CellConfig, 'restart'> {
  restart: RestartConfig;
}

export interface ResolvedSystem {
  name: string;
  file: string;
  runtimeDir?: string;
  sharedMemoryLimit: number;
  /** Bytes of shared memory all links need together. */
  sharedMemory: number;
  cells: ResolvedCell[];
  links: ResolvedLink[];
}

export interface CheckOptions {
  /** Override the file's limits.sharedMemory (bytes). */
  maxSharedMemory?: number;
  /** Free bytes on /dev/shm; default: statfs of /dev/shm; null skips the rule. */
  shmFree?: number | null;
}

export interface CheckResult {
  file: string;
  problems: Problem[];
  /** Present when there are no problems. */
  system?: ResolvedSystem;
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const HOST_NS = '(host)';

/** Bytes of a size the schema has accepted. */
const bytesOf = (v: number | string): number => sizeValue(v)!;
const parseIntish = (v: number | string): number => integerValue(v)!;
const hex4 = (n: number): string => `0x${n.toString(16).toUpperCase().padStart(4, '0')}`;

export const pathText = (path: readonly PropertyKey[]): string =>
  path.reduce<string>((s, k) => (typeof k === 'number' ? `${s}[${k}]` : s ? `${s}.${String(k)}` : String(k)), '');

/** One line per problem: FILE:LINE:COL: PATH: REASON (line omitted when unknown). */
export function formatProblem(file: string, p: Problem): string {
  const where = p.line !== undefined ? `${file}:${p.line}:${p.column ?? 1}` : file;
  return p.path ? `${where}: ${p.path}: ${p.message}` : `${where}: ${p.message}`;
}

function zodMessage(issue: z.core.$ZodIssue): { path: PropertyKey[]; message: string }[] {
  const path = issue.path as PropertyKey[];
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((k) => ({ path: [...path, k], message: 'unknown key; check the spelling against examples/ and docs/system.md' }));
    case 'invalid_type':
      if (issue.input === undefined) return [{ path, message: 'is required' }];
      return [{ path, message: `must be ${issue.expected === 'int' ? 'an integer' : `a${/^[aeiou]/.test(issue.expected) ? 'n' : ''} ${issue.expected}`}, not ${describe(issue.input)}` }];
    case 'invalid_value':
      return [{ path, message: `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, not ${describe(issue.input)}` }];
    case 'invalid_union':
      return [{ path, message: `has an unexpected form (${describe(issue.input)}); see docs/system.md` }];
    case 'too_small':
      if (issue.origin === 'array') return [{ path, message: `needs at least ${issue.minimum as number} entr${issue.minimum === 1 ? 'y' : 'ies'}` }];
      return [{ path, message: `must be at least ${issue.minimum as number}` }];
    case 'too_big':
      return [{ path, message: `must be at most ${issue.maximum as number}` }];
    default:
      return [{ path, message: issue.message }];
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  return String(v);
}

/** Stable locally administered unicast MAC for a net member (the request behind ML:4184563e: no random MAC per start). */
export function defaultMac(system: string, link: string, id: number): string {
  const h = createHash('sha256').update(`${system}\0${link}\0${id}`).digest();
  const b = [0x02 | (h[0]! & 0xfc), h[1]!, h[2]!, h[3]!, h[4]!, h[5]!];
  b[0] = (b[0]! | 0x02) & 0xfe;
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

function ipv4ToInt(a: string): number {
  return a.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

/** Parse "10.0.0.1/24" into [network start, network end] or null. */
function parseCidr(text: string): { addr: number; start: number; end: number; prefix: number } | null {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
  if (!m || !isIPv4(m[1]!)) return null;
  const prefix = Number(m[2]);
  if (prefix > 32) return null;
  const addr = ipv4ToInt(m[1]!);
  const size = 2 ** (32 - prefix);
  const start = Math.floor(addr / size) * size;
  return { addr, start, end: start + size - 1, prefix };
}

/** Check already-parsed data; `locate` maps a path to a line (optional). */
export function checkSystem(
  data: unknown,
  file: string,
  opts: CheckOptions = {},
  locate: (path: PropertyKey[]) => { line: number; column: number } | undefined = () => undefined,
): CheckResult {
  const problems: Problem[] = [];
  const add = (path: PropertyKey[], message: string): void => {
    problems.push({ path: pathText(path), message, ...locate(path) });
  };
  const shell = systemShellSchema.safeParse(data, { reportInput: true });
  if (!shell.success) {
    for (const issue of shell.error.issues) for (const p of zodMessage(issue)) add(p.path, p.message);
    return finish(file, problems);
  }
  // Parse each element on its own: a broken one is reported and left out of
  // the cross checks, the others are still checked.
  const parseAt = <T>(schema: z.ZodType<T>, value: unknown, at: PropertyKey[]): T | undefined => {
    const r = schema.safeParse(value, { reportInput: true });
    if (r.success) return r.data;
    for (const issue of r.error.issues) for (const p of zodMessage(issue)) add([...at, ...p.path], p.message);
    return undefined;
  };
  const sys = { ...shell.data, cells: [] as CellConfig[], links: [] as LinkConfig[] };
  const linkPaths: number[] = [];
  const cellPaths: number[] = [];
  const knownCells = new Set<string>();
  shell.data.cells.forEach((raw, i) => {
    const c = parseAt(cellSchema, raw, ['cells', i]);
    if (c) {
      sys.cells.push(c);
      cellPaths.push(i);
    }
    // A cell with other faults still exists for the references to it.
    const name = (raw as { name?: unknown } | null)?.name;
    if (typeof name === 'string') knownCells.add(name);
  });
  const memberPaths = new Map<LinkConfig, number[]>();
  shell.data.links.forEach((raw, i) => {
    const l = parseAt(linkShellSchema, raw, ['links', i]);
    if (!l) return;
    const members: MemberConfig[] = [];
    const paths: number[] = [];
    l.members.forEach((m, mi) => {
      const pm = parseAt(memberSchema, m, ['links', i, 'members', mi]);
      if (pm) {
        members.push(pm);
        paths.push(mi);
      } else {
        const cell = (m as { cell?: unknown } | null)?.cell;
        if (typeof cell === 'string' && !knownCells.has(cell)) {
          add(['links', i, 'members', mi, 'cell'], `unknown cell ${JSON.stringify(cell)}; the cells are ${[...knownCells].join(', ')}`);
        }
      }
    });
    const link: LinkConfig = { ...l, members };
    memberPaths.set(link, paths);
    sys.links.push(link);
    linkPaths.push(i);
  });

  // The system name becomes the runtime directory's name: a name, not a path.
  const badSystem = nameProblem(sys.name, 'system');
  if (badSystem) add(['name'], badSystem);

  // Cells: names, namespaces.
  const cellIndex = new Map<string, number>();
  sys.cells.forEach((c, ci) => {
    const i = cellPaths[ci]!;
    const badName = nameProblem(c.name, 'cell');
    if (badName) add(['cells', i, 'name'], badName);
    const first = cellIndex.get(c.name);
    if (first !== undefined) add(['cells', i, 'name'], `duplicate cell name ${JSON.stringify(c.name)} (first at cells[${cellPaths[first]}])`);
    else cellIndex.set(c.name, ci);
    const badNs = c.netns === undefined ? undefined : nameProblem(c.netns, 'network namespace');
    if (badNs) add(['cells', i, 'netns'], badNs);
  });
  const nsOf = (cell: string): string => sys.cells[cellIndex.get(cell) ?? -1]?.netns ?? HOST_NS;

  const limit = opts.maxSharedMemory ?? bytesOf(sys.limits.sharedMemory);
  const linkIndex = new Map<string, number>();
  const links: ResolvedLink[] = [];
  let total = 0;
  // Across links: net addresses per namespace, MACs, interface names per namespace.
  const addrs: { ns: string; cidr: NonNullable<ReturnType<typeof parseCidr>>; text: string; link: string; at: string; path: PropertyKey[] }[] = [];
  const macs = new Map<string, string>();
  const ifnames = new Map<string, string>();

  sys.links.forEach((l, li) => {
    const lp: PropertyKey[] = ['links', linkPaths[li]!];
    const mPaths = memberPaths.get(l)!;
    const badName = nameProblem(l.name, 'link');
    if (badName) add([...lp, 'name'], badName);
    const firstLink = linkIndex.get(l.name);
    if (firstLink !== undefined) add([...lp, 'name'], `duplicate link name ${JSON.stringify(l.name)} (first at links[${firstLink}])`);
    else linkIndex.set(l.name, li);

    const kp = KIND_PROTOCOL[l.kind];
    const peers = l.peers ?? Math.max(MIN_PEERS, l.members.length);
    const vectors = l.vectors ?? (l.kind === 'net' ? 2 : 1);
    const protocol = l.protocol === undefined ? kp.default : parseIntish(l.protocol);
    const outputSize = l.outputSize === undefined ? KIND_OUTPUT_SIZE[l.kind] : bytesOf(l.outputSize);
    const rwSize = bytesOf(l.rwSize);
    const stateSize = bytesOf(l.stateSize);

    if (peers < MIN_PEERS || peers > MAX_PEERS_LIMIT) add([...lp, 'peers'], `${peers} is outside ${MIN_PEERS}..${MAX_PEERS_LIMIT}`);
    if (vectors < 1 || vectors > MAX_VECTORS) add([...lp, 'vectors'], `${vectors} is outside 1..${MAX_VECTORS}`);
    if (protocol < kp.min || protocol > kp.max) {
      add([...lp, 'protocol'], `${hex4(protocol)} is outside ${kp.what}, the range of a ${l.kind} link`);
    }
    // Sizes: page multiples (g.39), since each section is mapped and protected per page.
    const sizes: [string, number][] = [['outputSize', outputSize], ['rwSize', rwSize], ['stateSize', stateSize]];
    for (const [key, n] of sizes) {
      if (n % PAGE !== 0) add([...lp, key], `${n} bytes is not a multiple of the ${PAGE}-byte page`);
      else {
        const tooBig = sectionSizeProblem(n);
        if (tooBig) add([...lp, key], tooBig);
      }
    }
    if (stateSize < peers * 4) add([...lp, 'stateSize'], `${stateSize} bytes cannot hold ${peers} 32-bit state entries`);

    // Protocol-specific sizes and fields.
    let mtu: number | undefined;
    if (l.kind === 'net') {
      // c.1: ivshmem-net joins exactly two peers and needs an output section.
      if (l.peers !== undefined && peers !== 2) add([...lp, 'peers'], `an ivshmem-net link joins exactly 2 peers, not ${peers}`);
      if (vectors > 2 && vectors <= MAX_VECTORS) add([...lp, 'vectors'], `an ivshmem-net link uses 1 or 2 vectors (state, TX/RX), not ${vectors}`);
      const sizing = outputSize % PAGE === 0 ? netQueueSizing(outputSize) : null;
      if (outputSize % PAGE === 0 && !sizing) {
        add([...lp, 'outputSize'], `${outputSize} bytes cannot hold an ivshmem-net queue (ring plus 4 minimum frames); use at least ${PAGE} (Jailhouse uses 0x7F000)`);
      }
      if (l.mtu !== undefined && sizing) {
        if (l.mtu < 68 || l.mtu > sizing.maxMtu) {
          add([...lp, 'mtu'], `${l.mtu} is outside 68..${sizing.maxMtu}, the MTUs a ${outputSize}-byte output section allows`);
        }
      }
      mtu = l.mtu;
    } else {
      if (l.mtu !== undefined) add([...lp, 'mtu'], `only net links have an MTU`);
      if ((l.kind === 'channel' || l.kind === 'pubsub') && outputSize === 0) {
        add([...lp, 'outputSize'], `a ${l.kind} link needs an output section per peer; use at least ${PAGE}`);
      }
    }

    // Members: references, IDs, per-member repetitions (g.37).
    if (l.members.length > peers) {
      add([...lp, 'members'], `${l.members.length} members but the link has ${peers} peers; raise peers or remove a member`);
    }
    const byId = new Map<number, number>();
    const byCell = new Map<string, number>();
    l.members.forEach((m, mi) => {
      const mp: PropertyKey[] = [...lp, 'members', mPaths[mi]!];
      if (!knownCells.has(m.cell)) {
        add([...mp, 'cell'], `unknown cell ${JSON.stringify(m.cell)}; the cells are ${[...knownCells].join(', ')}`);
      }
      const again = byCell.get(m.cell);
      if (again !== undefined) add([...mp, 'cell'], `cell ${JSON.stringify(m.cell)} is already members[${mPaths[again]}] of this link; a cell joins a link once`);
      else byCell.set(m.cell, mi);
      if (m.id !== undefined) {
        if (m.id >= peers) add([...mp, 'id'], `ID ${m.id} is outside 0..${peers - 1} (the link has ${peers} peers)`);
        const taken = byId.get(m.id);
        if (taken !== undefined) add([...mp, 'id'], `ID ${m.id} is already taken by members[${mPaths[taken]}] (cell ${JSON.stringify(l.members[taken]!.cell)})`);
        else byId.set(m.id, mi);
      }
      const repeat: [string, number | string | undefined, number][] = [
        ['peers', m.peers, peers],
        ['vectors', m.vectors, vectors],
        ['protocol', m.protocol, protocol],
        ['outputSize', m.outputSize, outputSize],
        ['rwSize', m.rwSize, rwSize],
        ['stateSize', m.stateSize, stateSize],
      ];
      for (const [key, v, linkValue] of repeat) {
        if (v === undefined) continue;
        const n = key === 'peers' || key === 'vectors' ? (v as number) : key === 'protocol' ? parseIntish(v) : bytesOf(v);
        if (n !== linkValue) {
          const show = (x: number): string => (key === 'protocol' ? hex4(x) : String(x));
          add([...mp, key], `${show(n)} differs from the link's ${show(linkValue)}; all peers of a link must agree`);
        }
      }
      if (l.kind !== 'net') {
        for (const key of ['interface', 'address', 'mac'] as const) {
          if (m[key] !== undefined) add([...mp, key], `only members of net links have ${key === 'address' ? 'an address' : `a ${key === 'mac' ? 'MAC' : key}`}`);
        }
      }
    });

    // Assign the missing IDs: lowest free, in member order.
    const used = new Set(byId.keys());
    const members: ResolvedMember[] = l.members.map((m) => {
      let id = m.id;
      if (id === undefined) {
        id = 0;
        while (used.has(id)) id++;
        used.add(id);
      }
      return { cell: m.cell, id };
    });

    if (l.kind === 'net') {
      l.members.forEach((m, mi) => {
        const mp: PropertyKey[] = [...lp, 'members', mPaths[mi]!];
        const r = members[mi]!;
        const ns = nsOf(m.cell);
        const ifname = m.interface ?? l.name;
        if (!isInterfaceName(ifname)) {
          const from = m.interface === undefined ? ' (the default is the link name; set interface)' : '';
          add([...mp, 'interface'], `${JSON.stringify(ifname)} is not a valid interface name${from}: ${IFNAME_RULE}`);
        } else {
          const key = `${ns}\0${ifname}`;
          const prev = ifnames.get(key);
          if (prev) add([...mp, 'interface'], `interface ${JSON.stringify(ifname)} is already used by ${prev} in namespace ${JSON.stringify(ns)}`);
          else ifnames.set(key, pathText(mp));
        }
        r.interface = ifname;
        if (m.address !== undefined) {
          const cidr = parseCidr(m.address);
          if (!cidr) add([...mp, 'address'], `${JSON.stringify(m.address)} is not an IPv4 address with prefix length, like 10.19.0.1/24`);
          else {
            for (const o of addrs) {
              if (o.ns !== ns) continue;
              if (o.link !== l.name && cidr.start <= o.cidr.end && o.cidr.start <= cidr.end) {
                add([...mp, 'address'], `${m.address} overlaps ${o.text} of link ${JSON.stringify(o.link)} (${o.at}) in namespace ${JSON.stringify(ns)}`);
              } else if (o.link === l.name && o.cidr.addr === cidr.addr) {
                add([...mp, 'address'], `${m.address} is also the address of ${o.at}`);
              }
            }
            addrs.push({ ns, cidr, text: m.address, link: l.name, at: pathText(mp), path: mp });
            r.address = m.address;
          }
        }
        const mac = (m.mac ?? defaultMac(sys.name, l.name, r.id)).toLowerCase();
        if (!MAC_RE.test(mac)) add([...mp, 'mac'], `${JSON.stringify(m.mac)} is not a MAC address like 02:00:00:00:00:01`);
        else if ((parseInt(mac.slice(0, 2), 16) & 1) !== 0) add([...mp, 'mac'], `${mac} is a multicast address; the first octet must be even`);
        else if (mac === '00:00:00:00:00:00') add([...mp, 'mac'], `the all-zero MAC is not a valid address`);
        else {
          const prev = macs.get(mac);
          if (prev) add([...mp, 'mac'], `MAC ${mac} is already used by ${prev}`);
          else macs.set(mac, pathText(mp));
        }
        r.mac = mac;
      });
    }

    const bytes = stateSize + rwSize + peers * outputSize;
    if (Number.isFinite(bytes)) total += bytes;
    links.push({ name: l.name, kind: l.kind, peers, vectors, protocol, outputSize, rwSize, stateSize, ...(mtu !== undefined ? { mtu } : {}), members });
  });

  if (total > limit) {
    const where = opts.maxSharedMemory !== undefined ? '--max-shm' : 'limits.sharedMemory';
    add(['links'], `the links need ${formatBytes(total)} of shared memory, above the limit of ${formatBytes(limit)}; shrink the links or raise ${where}`);
  }
  const free = opts.shmFree === undefined ? shmFreeBytes() : opts.shmFree;
  if (free !== null && total > free) {
    add(['links'], `the links need ${formatBytes(total)} of shared memory but /dev/shm has only ${formatBytes(free)} free`);
  }

  if (problems.length) return finish(file, problems);
  return {
    file,
    problems,
    system: {
      name: sys.name,
      file,
      ...(sys.runtimeDir !== undefined ? { runtimeDir: sys.runtimeDir } : {}),
      sharedMemoryLimit: limit,
      sharedMemory: total,
      cells: sys.cells,
      links,
    },
  };
}

function finish(file: string, problems: Problem[]): CheckResult {
  // In file order, so the list reads top to bottom (sort is stable for equal positions).
  problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
  return { file, problems };
}

/** Free bytes of /dev/shm (shared memory backing), or null when it cannot be measured. */
export function shmFreeBytes(): number | null {
  try {
    const s = fs.statfsSync('/dev/shm');
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

/** Check the text of a system file (YAML or JSON; JSON is valid YAML 1.2). */
export function checkSystemText(text: string, file: string, opts: CheckOptions = {}): CheckResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length) {
    const problems = doc.errors.map((e) => {
      const pos = lineCounter.linePos(e.pos[0]);
      return { path: '', message: `not valid YAML or JSON: ${e.message.split('\n')[0]}`, line: pos.line, column: pos.col };
    });
    return { file, problems };
  }
  const locate = (path: PropertyKey[]): { line: number; column: number } | undefined => {
    // Walk up until a node exists (a missing key is reported at its parent).
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n) as (string | number)[], true) as { range?: [number, number, number] } | undefined;
      if (node && typeof node === 'object' && node.range) {
        // For a key's value, point at the key when we can find it.
        const pos = lineCounter.linePos(keyStart(doc, path.slice(0, n)) ?? node.range[0]);
        return { line: pos.line, column: pos.col };
      }
    }
    return undefined;
  };
  return checkSystem(doc.toJS(), file, opts, locate);
}

function keyStart(doc: ReturnType<typeof parseDocument>, path: PropertyKey[]): number | undefined {
  const last = path[path.length - 1];
  if (typeof last !== 'string') return undefined;
  const parent = doc.getIn(path.slice(0, -1) as (string | number)[], true) as { items?: { key?: { value?: unknown; range?: [number, number, number] } }[] } | undefined;
  const pair = parent?.items?.find((p) => p.key?.value === last);
  return pair?.key?.range?.[0];
}

/** Read and check a system file. */
export function checkSystemFile(path: string, opts: CheckOptions = {}): CheckResult {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    return { file: path, problems: [{ path: '', message: `cannot read the file (${code}); give the path of a .yaml or .json system file` }] };
  }
  return checkSystemText(text, path, opts);
}
