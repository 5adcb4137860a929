// Malicious-peer simulator for ivshmem-net (issue 3 "Hostile peer").
//
// A victim endpoint runs normally on an in-process link. The attacker is an
// ivshmem-net endpoint of its own (so it can drive the handshake and send
// legitimate frames) plus a mutator that, while both run, writes random and
// adversarial values into everything the attacker owns: its avail and used
// indices (backwards, far ahead), descriptor ids >= N, descriptors pointing
// into the ring header or past the section, lengths that overflow 32 bits,
// completions of never-posted or already-freed descriptors, frames rewritten
// after publication, event indices, doorbell floods and STATE flapping.
//
// Checked after every step:
//  - the victim never throws, neither out of its API nor out of an event
//    handler (uncaughtException is trapped and is a failure);
//  - every frame the victim delivers has a legal length and is byte-equal
//    to a range inside the attacker's data area at the moment it was
//    delivered (so it was read from inside the peer section, after
//    validation, from one copy);
//  - each 'violation' event is counted (events == counters, per reason);
//  - targeted injections are counted under the expected reason;
//  - after the next handshake (attacker restart or RESET + ifdown/ifup)
//    legitimate frames flow both ways again, in order and intact;
//  - every round finishes (a hang is caught by the caller's watchdog).
import { LocalLink, type LocalEndpoint } from '../../src/ivshmem/local-link.js';
import type { IvshmemEndpoint } from '../../src/ivshmem/endpoint.js';
import { openNet, type NetEndpoint } from '../../src/net/endpoint.js';
import { ivshmNetSizing, type NetSizing } from '../../src/net/sizing.js';
import { checkFrame, makeFrame } from '../fixtures/net-util.js';
import { until, WaitTimeout } from '../helpers/wait.js';

export interface HostileOptions {
  seed: number;
  /** Stop after this many rounds (default: unbounded, use seconds). */
  rounds?: number;
  /** Stop after this many seconds (default: unbounded, use rounds). */
  seconds?: number;
  log?: (line: string) => void;
}

export interface HostileReport {
  seed: number;
  rounds: number;
  mutations: number;
  targeted: number;
  recoveries: number;
  forgedFramesDelivered: number;
  legitFramesChecked: number;
  violations: Record<string, number>;
  failures: string[];
}

/** mulberry32: small, seedable, good enough to pick mutations. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
    u32: () => Math.floor(next() * 4294967296) >>> 0,
    chance: (p: number) => next() < p,
  };
}
export type Rng = ReturnType<typeof rng>;

const turn = () => new Promise<void>((r) => setImmediate(r));
async function turns(n: number) {
  for (let i = 0; i < n; i++) await turn();
}

class Failure extends Error {}

/** Waits are counted in event-loop turns, not time, so a seed fails the same way on any machine. */
const WAIT_TURNS = 4000;

const SIZES = [0x1000, 0x4000, 0x10000];
const MTU = (s: NetSizing) => Math.min(1500, s.maxMtu);

export async function runHostile(o: HostileOptions): Promise<HostileReport> {
  const r = rng(o.seed);
  const report: HostileReport = {
    seed: o.seed,
    rounds: 0,
    mutations: 0,
    targeted: 0,
    recoveries: 0,
    forgedFramesDelivered: 0,
    legitFramesChecked: 0,
    violations: {},
    failures: [],
  };
  const log = o.log ?? (() => {});
  const deadline = o.seconds !== undefined ? Date.now() + o.seconds * 1000 : Infinity;
  const maxRounds = o.rounds ?? Infinity;

  const uncaught = (err: unknown) => {
    report.failures.push(`uncaught exception in an event handler: ${err instanceof Error ? err.stack : String(err)}`);
  };
  process.on('uncaughtException', uncaught);
  try {
    while (report.rounds < maxRounds && Date.now() < deadline && report.failures.length === 0) {
      const size = r.pick(SIZES);
      try {
        await oneLink(r, size, report, log, () => report.rounds < maxRounds && Date.now() < deadline);
      } catch (err) {
        report.failures.push(err instanceof Failure || err instanceof WaitTimeout ? err.message : `victim threw: ${err instanceof Error ? err.stack : String(err)}`);
      }
    }
  } finally {
    process.off('uncaughtException', uncaught);
  }
  return report;
}

interface World {
  link: LocalLink;
  sizing: NetSizing;
  mtu: number;
  victim: NetEndpoint;
  victimDev: LocalEndpoint;
  attackerDev: LocalEndpoint;
  attacker: NetEndpoint;
  /** Frames the victim delivered since the last reset of this list. */
  delivered: Buffer[];
  violationEvents: Record<string, number>;
  violationEventTotal: number;
}

async function oneLink(r: Rng, size: number, report: HostileReport, log: (l: string) => void, more: () => boolean): Promise<void> {
  const link = new LocalLink({ name: 'hostile', peers: 2, outputSize: size, vectors: r.chance(0.8) ? 2 : 1, protocol: 1 });
  const sizing = ivshmNetSizing(size);
  const mtu = MTU(sizing);
  const victimDev = link.join(0);
  const victim = openNet(victimDev, { mtu, wait: r.pick(['event', 'event', 'hybrid', 'poll'] as const) });
  const w: World = {
    link,
    sizing,
    mtu,
    victim,
    victimDev,
    attackerDev: null as unknown as LocalEndpoint,
    attacker: null as unknown as NetEndpoint,
    delivered: [],
    violationEvents: {},
    violationEventTotal: 0,
  };
  victim.on('frame', (f) => {
    // Oracle: legal length, and a copy of a range inside the attacker's data area right now.
    if (f.byteLength < 14 || f.byteLength > w.mtu + 18) report.failures.push(`victim delivered a ${f.byteLength}-byte frame`);
    const out = w.attackerDev.output;
    const at = out.indexOf(f, sizing.dataOffset);
    if (at < 0 || at + f.byteLength > sizing.sectionSize) {
      report.failures.push(`victim delivered a frame (${f.byteLength} bytes) that is not a range of the peer's data area`);
    }
    w.delivered.push(f);
  });
  victim.on('violation', (v) => {
    w.violationEvents[v.reason] = (w.violationEvents[v.reason] ?? 0) + 1;
    w.violationEventTotal++;
  });
  victim.up();
  startAttacker(w, r);
  try {
    for (let round = 0; round < 8 && more() && report.failures.length === 0; round++) {
      report.rounds++;
      await handshake(w, report, r);
      await legitExchange(w, r, report);
      if (r.chance(0.3)) await targeted(w, r, report);
      else await attack(w, r, report);
      checkCounters(w);
      await recover(w, r, report);
    }
  } finally {
    const c = victim.counters();
    for (const [k, v] of Object.entries(c.violations)) report.violations[k] = (report.violations[k] ?? 0) + v;
    log(`link 0x${size.toString(16)}: rounds ${report.rounds}, mutations ${report.mutations}, violations ${c.violationsTotal}, rx ${c.rxPackets}`);
    victim.close();
    w.attacker.close();
  }
}

function startAttacker(w: World, r: Rng): void {
  w.attackerDev = w.link.join(1);
  w.attacker = openNet(w.attackerDev, { mtu: w.mtu, wait: r.pick(['event', 'hybrid'] as const) });
  w.attacker.up();
}

const handshakeState = (w: World): string => `victim ${w.victim.localState}/${w.victim.peerState}, attacker ${w.attacker.localState}/${w.attacker.peerState}`;

async function handshake(w: World, report: HostileReport, r: Rng): Promise<void> {
  await until(() => w.victim.carrier && w.attacker.carrier, 'handshake', { turns: WAIT_TURNS, state: () => handshakeState(w) });
  void report;
  void r;
}

/** Legitimate frames both ways after a fresh handshake: all delivered, in order, intact. */
async function legitExchange(w: World, r: Rng, report: HostileReport): Promise<void> {
  w.delivered.length = 0;
  const n = r.int(1, 40);
  const toVictim: number[] = [];
  const gotByAttacker: number[] = [];
  const onA = (f: Buffer) => gotByAttacker.push(checkFrame(f));
  w.attacker.on('frame', onA);
  try {
    for (let i = 0; i < n; i++) {
      const len = r.int(14, w.mtu + 18);
      if (w.attacker.send(makeFrame(i, len, 1))) toVictim.push(i);
      if (!w.victim.send(makeFrame(i, r.int(14, w.mtu + 18), 2))) await turns(3);
      if (r.chance(0.2)) await turns(1);
    }
    await until(() => w.delivered.length >= toVictim.length, 'legit frames to the victim', { turns: WAIT_TURNS, state: () => `${w.delivered.length}/${toVictim.length} delivered` });
    const seqs = w.delivered.map((f) => checkFrame(f));
    if (JSON.stringify(seqs) !== JSON.stringify(toVictim)) throw new Failure(`legit frames arrived as ${seqs.slice(0, 10)}... expected ${toVictim.slice(0, 10)}...`);
    report.legitFramesChecked += seqs.length;
    await turns(5);
  } finally {
    w.attacker.off('frame', onA);
  }
  w.delivered.length = 0;
}

// ---------------------------------------------------------------- mutations

/** What a mutation needs: the attacker's own device and the link's sizing. */
export interface Target {
  attackerDev: IvshmemEndpoint;
  sizing: NetSizing;
  mtu: number;
}

function views(w: Target) {
  const out = w.attackerDev.output;
  return { out, dv: new DataView(out.buffer, out.byteOffset, out.byteLength), s: w.sizing };
}

const nastyU16 = (r: Rng, n: number, cur: number) =>
  r.pick([0, 1, 0xffff, 0x8000, n, n + 1, (cur - 1) & 0xffff, (cur + n + 1) & 0xffff, (cur + r.int(1, n)) & 0xffff, r.int(0, 0xffff)]);
const nastyU32 = (r: Rng, n: number) => r.pick([0, 1, 13, 14, n, n - 1, 0xffffffff, 0x80000000, r.u32(), r.int(0, 64)]);
function nastyAddr(r: Rng, s: NetSizing): bigint {
  return r.pick([
    0n,
    BigInt(r.int(0, s.dataOffset - 1)), // ring header
    BigInt(s.sectionSize),
    BigInt(s.sectionSize - r.int(1, 64)),
    1n << 63n,
    (1n << 64n) - 1n,
    BigInt(s.dataOffset + r.int(0, s.dataSize - 1)), // inside the data area
    BigInt(r.u32()) * 4294967296n + BigInt(r.u32()),
  ]);
}

export type Mutation = (w: Target, r: Rng) => void;

export const MUTATIONS: [string, Mutation][] = [
  ['avail.idx', (w, r) => {
    const { dv, s } = views(w);
    dv.setUint16(s.ring.availIdx, nastyU16(r, s.num, dv.getUint16(s.ring.availIdx, true)), true);
  }],
  ['avail ring entry', (w, r) => {
    const { dv, s } = views(w);
    dv.setUint16(s.ring.availRing + 2 * r.int(0, s.num - 1), nastyU16(r, s.num, 0), true);
  }],
  ['descriptor', (w, r) => {
    const { dv, s } = views(w);
    const i = r.int(0, s.num - 1);
    if (r.chance(0.7)) dv.setBigUint64(16 * i, nastyAddr(r, s), true);
    if (r.chance(0.7)) dv.setUint32(16 * i + 8, nastyU32(r, w.mtu + 18), true);
    if (r.chance(0.3)) dv.setUint16(16 * i + 12, r.pick([1, 2, 4, 7, r.int(0, 0xffff)]), true);
    if (r.chance(0.3)) dv.setUint16(16 * i + 14, nastyU16(r, s.num, i), true);
  }],
  ['forged publication', (w, r) => {
    // A whole descriptor + avail entry + idx bump, mostly plausible.
    const { dv, s } = views(w);
    const idx = dv.getUint16(s.ring.availIdx, true);
    const head = r.chance(0.8) ? r.int(0, s.num - 1) : r.int(s.num, 0xffff);
    if (head < s.num) {
      const addr = r.chance(0.6) ? BigInt(s.dataOffset + r.int(0, s.dataSize - 14)) : nastyAddr(r, s);
      dv.setBigUint64(16 * head, addr, true);
      dv.setUint32(16 * head + 8, r.chance(0.6) ? r.int(14, w.mtu + 18) : nastyU32(r, w.mtu + 18), true);
      dv.setUint16(16 * head + 12, r.chance(0.8) ? 0 : r.int(1, 0xffff), true);
    }
    dv.setUint16(s.ring.availRing + 2 * (idx & (s.num - 1)), head & 0xffff, true);
    dv.setUint16(s.ring.availIdx, (idx + 1) & 0xffff, true);
  }],
  ['used.idx', (w, r) => {
    const { dv, s } = views(w);
    dv.setUint16(s.ring.usedIdx, nastyU16(r, s.num, dv.getUint16(s.ring.usedIdx, true)), true);
  }],
  ['used element', (w, r) => {
    const { dv, s } = views(w);
    const slot = r.int(0, s.num - 1);
    dv.setUint32(s.ring.usedRing + 8 * slot, r.pick([r.int(0, s.num - 1), s.num, 0xffffffff, r.u32()]), true);
    dv.setUint32(s.ring.usedRing + 8 * slot + 4, r.pick([1, 1, 0, 2, 0xffffffff, r.u32()]), true);
  }],
  ['forged completion', (w, r) => {
    // Complete something the victim may never have posted, or complete twice.
    const { dv, s } = views(w);
    const idx = dv.getUint16(s.ring.usedIdx, true);
    const slot = idx & (s.num - 1);
    dv.setUint32(s.ring.usedRing + 8 * slot, r.int(0, s.num - 1), true);
    dv.setUint32(s.ring.usedRing + 8 * slot + 4, r.chance(0.8) ? 1 : r.u32(), true);
    dv.setUint16(s.ring.usedIdx, (idx + r.int(1, 3)) & 0xffff, true);
  }],
  ['event indices', (w, r) => {
    const { dv, s } = views(w);
    if (r.chance(0.5)) dv.setUint16(s.ring.usedEvent, r.int(0, 0xffff), true);
    else dv.setUint16(s.ring.availEvent, r.int(0, 0xffff), true);
  }],
  ['rewrite frames after publication', (w, r) => {
    const { out, s } = views(w);
    const from = s.dataOffset + r.int(0, s.dataSize - 1);
    const to = Math.min(s.sectionSize, from + r.int(1, 4096));
    out.fill(r.int(0, 255), from, to);
  }],
  ['random bytes in the ring header', (w, r) => {
    const { out, s } = views(w);
    for (let k = r.int(1, 32); k > 0; k--) out[r.int(0, s.dataOffset - 1)] = r.int(0, 255);
  }],
  ['scribble everything', (w, r) => {
    const { out } = views(w);
    for (let i = 0; i < out.byteLength; i += 4) out.writeUInt32LE(r.u32(), i);
  }],
  ['doorbell flood', (w, r) => {
    for (let k = r.int(1, 1000); k > 0; k--) w.attackerDev.ring(0, r.int(0, 3));
  }],
  ['STATE flapping', (w, r) => {
    for (let k = r.int(1, 5); k > 0; k--) w.attackerDev.setState(r.pick([0, 1, 2, 3, 3, 4, 0xffffffff, r.u32()]));
  }],
];

async function attack(w: World, r: Rng, report: HostileReport): Promise<void> {
  const n = r.int(1, 30);
  for (let i = 0; i < n; i++) {
    const [, m] = r.pick(MUTATIONS);
    m(w, r);
    report.mutations++;
    if (r.chance(0.5)) w.attackerDev.ring(0, w.attackerDev.vectors - 1);
    // The victim keeps using its API while under attack: it must never throw.
    if (r.chance(0.3)) w.victim.send(makeFrame(i, r.int(14, w.mtu + 18), 3));
    if (r.chance(0.1)) w.victim.sendBatch([makeFrame(i, 60, 3), makeFrame(i + 1, 70, 3)]);
    w.victim.counters();
    w.victim.regs();
    if (r.chance(0.6)) await turns(r.int(1, 3));
  }
  await turns(20);
  report.forgedFramesDelivered += w.delivered.length;
  w.delivered.length = 0;
}

/** One violation with a known reason on a fresh link: counted exactly once under that reason. */
async function targeted(w: World, r: Rng, report: HostileReport): Promise<void> {
  const { dv, s } = views(w);
  const H = s.dataOffset;
  const publish = (head: number, addr: bigint, len: number, flags = 0) => {
    const idx = dv.getUint16(s.ring.availIdx, true);
    if (head < s.num) {
      dv.setBigUint64(16 * head, addr, true);
      dv.setUint32(16 * head + 8, len, true);
      dv.setUint16(16 * head + 12, flags, true);
    }
    dv.setUint16(s.ring.availRing + 2 * (idx & (s.num - 1)), head, true);
    dv.setUint16(s.ring.availIdx, (idx + 1) & 0xffff, true);
  };
  const cases: [string, () => void][] = [
    ['avail-head-range', () => publish(s.num + r.int(0, 100), 0n, 0)],
    ['desc-flags', () => publish(0, BigInt(H), 60, r.int(1, 0xffff))],
    ['rx-desc-addr', () => publish(0, r.chance(0.5) ? BigInt(r.int(0, H - 1)) : BigInt(s.sectionSize + r.int(0, 1000)), 60)],
    ['rx-desc-len', () => publish(0, BigInt(s.sectionSize - 20), r.chance(0.5) ? 0xffffffff : 21)],
    ['rx-frame-short', () => publish(0, BigInt(H), r.int(0, 13))],
    ['rx-frame-long', () => publish(0, BigInt(H), w.mtu + 19 + r.int(0, 100))],
    ['avail-idx-jump', () => dv.setUint16(s.ring.availIdx, (dv.getUint16(s.ring.availIdx, true) + s.num + 1 + r.int(0, 1000)) & 0xffff, true)],
    // Past everything the victim can have outstanding, whatever it has reclaimed so far.
    ['used-idx-jump', () => dv.setUint16(s.ring.usedIdx, (dv.getUint16(s.ring.usedIdx, true) + s.num + 1 + r.int(0, 1000)) & 0xffff, true)],
    ['peer-state', () => w.attackerDev.setState(4 + r.int(0, 1000))],
  ];
  const [reason, act] = r.pick(cases);
  const before = w.victim.counters().violations[reason] ?? 0;
  const resetsBefore = w.victim.counters().resets;
  act();
  report.targeted++;
  report.mutations++;
  w.attackerDev.ring(0, w.attackerDev.vectors - 1);
  await until(() => (w.victim.counters().violations[reason] ?? 0) > before, `victim counts ${reason}`, { turns: 2000 });
  const after = w.victim.counters().violations[reason] ?? 0;
  if (after !== before + 1) throw new Failure(`${reason} counted ${after - before} times for one injection`);
  // A broken queue is recovered by renegotiation: the victim wrote RESET.
  if (w.victim.counters().resets <= resetsBefore) throw new Failure(`victim did not reset the link after ${reason}`);
  report.forgedFramesDelivered += w.delivered.length;
  w.delivered.length = 0;
}

function checkCounters(w: World): void {
  const c = w.victim.counters();
  const sum = Object.values(c.violations).reduce((a, b) => a + b, 0);
  if (sum !== c.violationsTotal) throw new Failure(`violation counters disagree: per reason ${sum}, total ${c.violationsTotal}`);
  if (c.violationsTotal !== w.violationEventTotal) throw new Failure(`${w.violationEventTotal} 'violation' events but ${c.violationsTotal} counted`);
  for (const [k, v] of Object.entries(c.violations)) {
    if (w.violationEvents[k] !== v) throw new Failure(`reason ${k}: ${w.violationEvents[k]} events, ${v} counted`);
  }
}

/** The next handshake: the attacker restarts, or drops to RESET and does ifdown/ifup. */
async function recover(w: World, r: Rng, report: HostileReport): Promise<void> {
  if (r.chance(0.5)) {
    w.attacker.close();
    w.attackerDev.close();
    await turns(r.int(0, 3));
    startAttacker(w, r);
  } else {
    w.attackerDev.setState(0);
    await turns(r.int(1, 5));
    w.attacker.down();
    w.attacker.up();
  }
  report.recoveries++;
  await until(() => w.victim.carrier && w.attacker.carrier, 'recovery handshake', { turns: WAIT_TURNS, state: () => handshakeState(w) });
}
