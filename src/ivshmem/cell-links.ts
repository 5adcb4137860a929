// The links a supervised cell was given (docs/supervisor.md "Cells"):
// `ivshm up` starts each cell with IVSHM_LINKS, JSON
// { "<link>": { socket, id, token, kind, protocol } } for its own links only.
// Each broker knows one token per member ID, so a cell can join only those
// links, and only with its configured ID. connect() with no socket reads
// this, so a cell needs no other configuration. The supervisor's other
// variables belong to src/system/ (cell-env.ts); this layer knows only what
// connect() needs.
import { ConfigError } from '../errors.js';

/** One link a supervised cell was given (from `IVSHM_LINKS`): socket, peer ID, token, kind and protocol. */
export interface CellLinkEndpoint {
  socket: string;
  id: number;
  token: string;
  kind: string;
  protocol: number;
}

/** The environment variable that carries a cell's links. */
export const LINKS_ENV = 'IVSHM_LINKS';

/** The links given to this cell (empty outside a supervised cell). */
export function cellLinks(env: NodeJS.ProcessEnv = process.env): Record<string, CellLinkEndpoint> {
  const text = env[LINKS_ENV];
  if (!text) return {};
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new ConfigError(`${LINKS_ENV} is not valid JSON; it is set by ivshm up, do not set it by hand`);
  }
  const out: Record<string, CellLinkEndpoint> = {};
  if (typeof data !== 'object' || data === null) return out;
  for (const [name, v] of Object.entries(data as Record<string, unknown>)) {
    const e = v as Partial<CellLinkEndpoint>;
    if (typeof e?.socket === 'string' && Number.isInteger(e.id) && typeof e.token === 'string') {
      out[name] = { socket: e.socket, id: e.id!, token: e.token, kind: String(e.kind ?? 'raw'), protocol: Number(e.protocol ?? 0) };
    }
  }
  return out;
}

/** Where and as whom to join link `name` (may be omitted when the cell has exactly one link). */
export function cellConnectOptions(name?: string, env: NodeJS.ProcessEnv = process.env): Pick<CellLinkEndpoint, 'socket' | 'id' | 'token'> {
  const links = cellLinks(env);
  const names = Object.keys(links);
  if (names.length === 0) {
    throw new ConfigError(`this process is not a cell with links (${LINKS_ENV} is not set); start it with ivshm up, or pass a socket`);
  }
  const chosen = name ?? (names.length === 1 ? names[0]! : undefined);
  if (chosen === undefined) throw new ConfigError(`this cell has several links (${names.join(', ')}); name the one to join`);
  const e = links[chosen];
  if (!e) throw new ConfigError(`this cell was given no link named "${chosen}"; its links are ${names.join(', ')}`);
  return { socket: e.socket, id: e.id, token: e.token };
}

