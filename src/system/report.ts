// The report socket (docs/supervisor.md, "Report socket"): cells send their
// cumulative per-link counters, one JSON line at a time, for status and the
// dashboard. Reports are untrusted input: bounded, validated, and counted
// only for a link the reporting cell is a member of, under the cell its token
// was issued to.
import { randomBytes } from 'node:crypto';
import { LineServer } from './line-server.js';

/** Counters a cell may report for one link; cumulative since the cell started. */
export interface LinkCounters {
  frames?: number;
  messages?: number;
  bytes?: number;
  doorbells?: number;
}

export type Counters = Required<LinkCounters>;

export const COUNTER_NAMES = ['frames', 'messages', 'bytes', 'doorbells'] as const satisfies readonly (keyof Counters)[];

export const zeroCounters = (): Counters => ({ frames: 0, messages: 0, bytes: 0, doorbells: 0 });

/** One line on the report socket. */
export interface ReportMessage {
  token: string;
  links: Record<string, LinkCounters>;
}

export const encodeReport = (msg: ReportMessage): string => `${JSON.stringify(msg)}\n`;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A counter value: a finite, non-negative safe integer, else 0. */
const count = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 && v < 2 ** 53 ? Math.floor(v) : 0);

/** A report line, or null when it is not one (ignored without a word: cells are untrusted). */
export function parseReport(line: string): { token: string; links: Map<string, Counters> } | null {
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    return null;
  }
  if (!isObject(msg) || typeof msg.token !== 'string' || !isObject(msg.links)) return null;
  const links = new Map<string, Counters>();
  for (const [link, raw] of Object.entries(msg.links)) {
    if (!isObject(raw)) continue;
    const c = zeroCounters();
    for (const k of COUNTER_NAMES) c[k] = count(raw[k]);
    links.set(link, c);
  }
  return { token: msg.token, links };
}

export class ReportServer {
  private readonly server = new LineServer((line) => this.accept(line));
  /** Report token -> cell it was issued to. */
  private readonly tokens = new Map<string, string>();
  /** Link -> report token -> the last counters reported. */
  private readonly reported = new Map<string, Map<string, Counters>>();

  /** @param isMember whether `cell` is a member of `link` (reports for other links are dropped). */
  constructor(private readonly isMember: (cell: string, link: string) => boolean) {}

  /** A new reporting identity for a process of `cell` (a cell and its bridges report apart). */
  issueToken(cell: string): string {
    const token = randomBytes(16).toString('hex');
    this.tokens.set(token, cell);
    return token;
  }

  listen(socketPath: string): Promise<void> {
    return this.server.listen(socketPath);
  }

  close(): Promise<void> {
    return this.server.close();
  }

  private accept(line: string): void {
    const msg = parseReport(line);
    const cell = msg && this.tokens.get(msg.token);
    if (!msg || !cell) return;
    for (const [link, counters] of msg.links) {
      if (!this.isMember(cell, link)) continue;
      let byToken = this.reported.get(link);
      if (!byToken) this.reported.set(link, (byToken = new Map()));
      byToken.set(msg.token, counters);
    }
  }

  /** The sum of what every process reported for `link`. */
  totals(link: string): Counters {
    const t = zeroCounters();
    for (const r of this.reported.get(link)?.values() ?? []) for (const k of COUNTER_NAMES) t[k] += r[k];
    return t;
  }
}
