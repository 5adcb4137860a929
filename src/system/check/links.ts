// Links: the parameters (the library's own rules, src/ivshmem/params.ts, with
// sizes given as exact page multiples), the kind's protocol range, and the
// members: references to cells, IDs, parameters a member repeats (they must
// agree with the link, since Jailhouse compares nothing between the peers of
// a link: docs/system.md "Links"), and the IDs left out.
import { checkLinkParams, MIN_PEERS, type LinkParamKey, type LinkParams } from '../../ivshmem/params.js';
import { hex4, integerValue, PAGE, sizeValue } from '../../units.js';
import { KIND_OUTPUT_SIZE, KIND_PROTOCOL, type LinkConfig, type LinkKind } from '../config-schema.js';
import type { AddProblem } from './format.js';
import type { NetLinkChecker } from './net.js';

export interface ResolvedMember {
  cell: string;
  id: number;
  /** net links: TAP interface name, address (CIDR) and MAC. */
  interface?: string;
  address?: string;
  mac?: string;
}

/** A link of a checked system: its parameters and its members. */
export interface ResolvedLink extends LinkParams {
  kind: LinkKind;
  /** net links: MTU of both TAP devices, when the file sets one. */
  mtu?: number;
  members: ResolvedMember[];
}

export interface LinkContext {
  add: AddProblem;
  /** Every cell name in the file, also of cells with other faults. */
  knownCells: ReadonlySet<string>;
  netnsOf: (cell: string) => string;
  net: NetLinkChecker;
}

/** Check one link; returns it resolved when it has no problem of its own, and the bytes it needs. */
export function checkLink(l: LinkConfig, lp: readonly PropertyKey[], memberPaths: readonly number[], ctx: LinkContext): { link?: ResolvedLink; bytes: number } {
  const { add } = ctx;
  const kp = KIND_PROTOCOL[l.kind];
  // The schema has accepted these forms; the defaults depend on the kind (docs/system.md "Links").
  const peers = l.peers ?? Math.max(MIN_PEERS, l.members.length);
  const vectors = l.vectors ?? (l.kind === 'net' ? 2 : 1);
  const protocol = l.protocol === undefined ? kp.default : integerValue(l.protocol)!;
  const outputSize = l.outputSize === undefined ? KIND_OUTPUT_SIZE[l.kind] : sizeValue(l.outputSize)!;
  const rwSize = sizeValue(l.rwSize)!;
  const stateSize = sizeValue(l.stateSize)!;

  const checked = checkLinkParams({ name: l.name, peers, vectors, protocol, stateSize, rwSize, outputSize }, { pages: 'exact' });
  const bad = new Set<LinkParamKey>();
  for (const p of checked.problems) {
    add([...lp, p.key], p.message);
    bad.add(p.key);
  }
  if (!bad.has('protocol') && (protocol < kp.min || protocol > kp.max)) {
    add([...lp, 'protocol'], `${hex4(protocol)} is outside ${kp.what}, the range of a ${l.kind} link`);
  }

  let mtu: number | undefined;
  if (l.kind === 'net') {
    ctx.net.checkLink(l, lp, peers, vectors, bad.has('outputSize') ? undefined : outputSize);
    mtu = l.mtu;
  } else {
    if (l.mtu !== undefined) add([...lp, 'mtu'], `only net links have an MTU`);
    if ((l.kind === 'channel' || l.kind === 'pubsub') && outputSize === 0) {
      add([...lp, 'outputSize'], `a ${l.kind} link needs an output section per peer; use at least ${PAGE}`);
    }
  }

  const members = checkMembers(l, lp, memberPaths, { peers, vectors, protocol, outputSize, rwSize, stateSize }, ctx);
  if (l.kind === 'net') ctx.net.checkMembers(l, lp, memberPaths, members, ctx.netnsOf);

  const bytes = stateSize + rwSize + peers * outputSize;
  const link = checked.params ? { ...checked.params, kind: l.kind, ...(mtu !== undefined ? { mtu } : {}), members } : undefined;
  return { link, bytes: Number.isFinite(bytes) ? bytes : 0 };
}

type Repeatable = 'peers' | 'vectors' | 'protocol' | 'outputSize' | 'rwSize' | 'stateSize';

function checkMembers(
  l: LinkConfig,
  lp: readonly PropertyKey[],
  memberPaths: readonly number[],
  link: Record<Repeatable, number>,
  { add, knownCells }: LinkContext,
): ResolvedMember[] {
  const { peers } = link;
  if (l.members.length > peers) {
    add([...lp, 'members'], `${l.members.length} members but the link has ${peers} peers; raise peers or remove a member`);
  }
  const byId = new Map<number, number>();
  const byCell = new Map<string, number>();
  l.members.forEach((m, mi) => {
    const mp: PropertyKey[] = [...lp, 'members', memberPaths[mi]!];
    if (!knownCells.has(m.cell)) {
      add([...mp, 'cell'], `unknown cell ${JSON.stringify(m.cell)}; the cells are ${[...knownCells].join(', ')}`);
    }
    const again = byCell.get(m.cell);
    if (again !== undefined) add([...mp, 'cell'], `cell ${JSON.stringify(m.cell)} is already members[${memberPaths[again]}] of this link; a cell joins a link once`);
    else byCell.set(m.cell, mi);
    if (m.id !== undefined) {
      if (m.id >= peers) add([...mp, 'id'], `ID ${m.id} is outside 0..${peers - 1} (the link has ${peers} peers)`);
      const taken = byId.get(m.id);
      if (taken !== undefined) add([...mp, 'id'], `ID ${m.id} is already taken by members[${memberPaths[taken]}] (cell ${JSON.stringify(l.members[taken]!.cell)})`);
      else byId.set(m.id, mi);
    }
    for (const key of ['peers', 'vectors', 'protocol', 'outputSize', 'rwSize', 'stateSize'] as const) {
      const v = m[key];
      if (v === undefined) continue;
      const n = key === 'outputSize' || key === 'rwSize' || key === 'stateSize' ? sizeValue(v)! : integerValue(v)!;
      if (n !== link[key]) {
        const show = (x: number): string => (key === 'protocol' ? hex4(x) : String(x));
        add([...mp, key], `${show(n)} differs from the link's ${show(link[key])}; all peers of a link must agree`);
      }
    }
    if (l.kind !== 'net') {
      for (const key of ['interface', 'address', 'mac'] as const) {
        if (m[key] !== undefined) add([...mp, key], `only members of net links have ${key === 'address' ? 'an address' : `a ${key === 'mac' ? 'MAC' : key}`}`);
      }
    }
  });

  // The missing IDs: the lowest free one, in member order.
  const used = new Set(byId.keys());
  return l.members.map((m) => {
    let id = m.id;
    if (id === undefined) {
      id = 0;
      while (used.has(id)) id++;
      used.add(id);
    }
    return { cell: m.cell, id };
  });
}
