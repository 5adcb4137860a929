// The supervisor's side of the control socket (docs/supervisor.md, "Control
// socket"): each request line is checked, handed to the supervisor, and
// answered with one reply line. Only the supervisor's user may connect.
import fs from 'node:fs';
import { IvshmError } from '../errors.js';
import { parseControlRequest, type ControlOp, type ControlReply, type ControlRequest, type ControlResults } from './control-protocol.js';
import { LineServer } from './line-server.js';
import type { SystemStatus } from './status.js';

/** What the control socket can ask of the supervisor. */
export interface ControlHandler {
  status(): SystemStatus;
  stopCell(name: string): Promise<void>;
  startCell(name: string): Promise<void>;
  restartCell(name: string): Promise<void>;
  /** Stop the whole system (after the reply is sent). */
  shutdown(): void;
}

type Ops = { [O in ControlOp]: (h: ControlHandler, req: Extract<ControlRequest, { op: O }>) => Promise<ControlResults[O]> };

const OPS: Ops = {
  status: async (h) => h.status(),
  'cell-stop': async (h, r) => (await h.stopCell(r.cell), h.status()),
  'cell-start': async (h, r) => (await h.startCell(r.cell), h.status()),
  'cell-restart': async (h, r) => (await h.restartCell(r.cell), h.status()),
  shutdown: async (h) => {
    setImmediate(() => h.shutdown());
    return null;
  },
};

export class ControlServer {
  private readonly server = new LineServer((line, client) => void this.handle(line).then((reply) => client.reply(reply)));

  constructor(private readonly handler: ControlHandler) {}

  async listen(socketPath: string): Promise<void> {
    await this.server.listen(socketPath);
    fs.chmodSync(socketPath, 0o600);
  }

  close(): Promise<void> {
    return this.server.close();
  }

  /** One request line -> its reply; failures become `{ ok: false, error }`. */
  async handle(line: string): Promise<ControlReply> {
    try {
      const req = parseControlRequest(line);
      const op = OPS[req.op] as (h: ControlHandler, r: ControlRequest) => Promise<unknown>;
      return { ok: true, result: await op(this.handler, req) };
    } catch (err) {
      return { ok: false, error: err instanceof IvshmError ? err.message : `request failed: ${(err as Error).message}` };
    }
  }
}
