// The client side of the control socket (docs/supervisor.md, "Control
// socket"): one request, one reply, with a deadline.
import net from 'node:net';
import { ConfigError, ProtocolError, TimeoutError } from '../errors.js';
import type { ControlReply, ControlRequest, ControlResults } from './control-protocol.js';
import { lineSplitter } from './line-server.js';

/** A reply (a whole system's status) may be far longer than a request. */
const MAX_REPLY = 64 * 1024 * 1024;

/** Send `request` to the supervisor listening on `socket`; resolves with its result. */
export function controlRequest<R extends ControlRequest>(socket: string, request: R, timeoutMs = 15000): Promise<ControlResults[R['op']]> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(socket);
    let done = false;
    const finish = (fn: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      fn();
    };
    const timer = setTimeout(
      () => finish(() => reject(new TimeoutError(`the supervisor at ${socket} did not answer within ${timeoutMs} ms`))),
      timeoutMs,
    );
    const feed = lineSplitter((line) =>
      finish(() => {
        let reply: ControlReply<ControlResults[R['op']]>;
        try {
          reply = JSON.parse(line) as typeof reply;
        } catch {
          return reject(new ProtocolError(`the supervisor at ${socket} sent an unreadable answer`));
        }
        if (reply?.ok === true) resolve(reply.result);
        else reject(new ConfigError(reply?.error ?? 'the supervisor refused the request'));
      }),
      MAX_REPLY,
    );
    s.setEncoding('utf8');
    s.on('connect', () => s.write(`${JSON.stringify(request)}\n`));
    s.on('data', (d: string) => {
      if (!feed(d)) finish(() => reject(new ProtocolError(`the supervisor at ${socket} sent an answer longer than a line may be`)));
    });
    s.on('end', () => finish(() => reject(new ProtocolError(`the supervisor at ${socket} closed the connection without answering`))));
    s.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? 'is not running' : `cannot be reached (${err.code})`;
      finish(() => reject(new ConfigError(`the supervisor at ${socket} ${why}; start the system with ivshm up FILE`)));
    });
  });
}
