// The control socket's operations (docs/supervisor.md, "Control socket"):
// what `ivshm status` and `ivshm cell` send to a running supervisor. One JSON
// line per request, one JSON line per reply; a request is validated here
// before anything acts on it.
import { ProtocolError } from '../errors.js';
import type { SystemStatus } from './status.js';

/** A request on a supervisor's control socket (docs/supervisor.md). */
export type ControlRequest =
  | { op: 'status' }
  | { op: 'cell-stop'; cell: string }
  | { op: 'cell-start'; cell: string }
  | { op: 'cell-restart'; cell: string }
  | { op: 'shutdown' };

export type ControlOp = ControlRequest['op'];

/** What each operation answers with. */
export interface ControlResults {
  status: SystemStatus;
  'cell-stop': SystemStatus;
  'cell-start': SystemStatus;
  'cell-restart': SystemStatus;
  shutdown: null;
}

export type ControlReply<T = unknown> = { ok: true; result: T } | { ok: false; error: string };

/** The operations that act on one cell, named by `cell`. */
const CELL_OPS: ReadonlySet<ControlOp> = new Set(['cell-stop', 'cell-start', 'cell-restart']);
const OPS: ReadonlySet<ControlOp> = new Set([...CELL_OPS, 'status', 'shutdown']);

/** A request line, checked: ProtocolError naming what is wrong otherwise. */
export function parseControlRequest(line: string): ControlRequest {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch (err) {
    throw new ProtocolError(`bad request: not JSON (${(err as Error).message})`);
  }
  if (typeof req !== 'object' || req === null || Array.isArray(req)) throw new ProtocolError('bad request: send a JSON object with an "op"');
  const { op, cell } = req as { op?: unknown; cell?: unknown };
  if (typeof op !== 'string' || !OPS.has(op as ControlOp)) throw new ProtocolError(`unknown request ${JSON.stringify(op)}`);
  if (!CELL_OPS.has(op as ControlOp)) return { op } as ControlRequest;
  if (typeof cell !== 'string') throw new ProtocolError(`bad request: ${op} needs "cell", the name of a cell`);
  return { op, cell } as ControlRequest;
}
