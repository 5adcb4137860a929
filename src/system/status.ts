// The status of a running system, as `ivshm status`, the control socket's
// `status` operation and the dashboard show it (docs/supervisor.md,
// "Control socket"): one record per cell and per link, and the rate history.
import type { Broker } from '../ivshmem/broker.js';
import type { ResolvedCell, ResolvedLink } from './check.js';
import type { LinkBroker } from './brokers.js';
import type { CellProcess, CellState, ExitInfo } from './cell-process.js';
import type { RateSample } from './rates.js';
import type { Counters } from './report.js';

export type { RateSample } from './rates.js';

/** The status of one link: its parameters, members and counters. */
export interface LinkStatus extends Pick<ResolvedLink, 'name' | 'kind' | 'peers' | 'vectors' | 'protocol' | 'outputSize' | 'rwSize' | 'stateSize'> {
  bridged: boolean;
  members: { cell: string; id: number; joined: boolean; state: number; pid: number | null; interface?: string; address?: string }[];
  broker: Broker['counters'];
  totals: Counters;
  rates: RateSample;
}

/** The status of one cell. */
export interface CellStatus {
  name: string;
  state: CellState;
  pid: number | null;
  netns: string | null;
  restarts: number;
  restartPolicy: string;
  uptimeMs: number | null;
  lastExit: ExitInfo | null;
  links: string[];
  log: string[];
}

/** The status of a running system (what `ivshm status --json` prints). */
export interface SystemStatus {
  system: string;
  file: string;
  pid: number;
  dir: string;
  privileged: boolean;
  startedAt: number;
  dashboard: string | null;
  cells: CellStatus[];
  links: LinkStatus[];
  /** Per link, the last samples of per-second rates (oldest first). */
  history: Record<string, RateSample[]>;
}

/** A configured cell and its process (none before the supervisor made it). */
export function cellStatus(cfg: ResolvedCell, c: CellProcess | undefined, links: string[], now = Date.now()): CellStatus {
  return {
    name: cfg.name,
    state: c?.state ?? 'stopped',
    pid: c?.pid ?? null,
    netns: cfg.netns ?? null,
    restarts: c?.restarts ?? 0,
    restartPolicy: cfg.restart.policy,
    uptimeMs: c?.child && c.startedAt ? now - c.startedAt : null,
    lastExit: c?.lastExit ?? null,
    links,
    log: c ? c.log.slice(-10) : [],
  };
}

/** A link: its configuration, who joined (from its broker), what was reported. */
export function linkStatus(lb: LinkBroker, bridged: boolean, totals: Counters, rates: RateSample): LinkStatus {
  const b = lb.broker.status();
  const l = lb.config;
  return {
    name: l.name,
    kind: l.kind,
    peers: l.peers,
    vectors: l.vectors,
    protocol: l.protocol,
    outputSize: l.outputSize,
    rwSize: l.rwSize,
    stateSize: l.stateSize,
    bridged,
    members: l.members.map((m) => {
      const p = b.peers.find((x) => x.id === m.id);
      return {
        cell: m.cell,
        id: m.id,
        joined: !!p,
        state: p?.state ?? 0,
        pid: p?.pid ?? null,
        ...(m.interface && l.kind === 'net' ? { interface: m.interface } : {}),
        ...(m.address ? { address: m.address } : {}),
      };
    }),
    broker: b.counters,
    totals,
    rates,
  };
}
