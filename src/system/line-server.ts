// The one server of newline-delimited JSON on a UNIX socket, under the
// control and the report socket (docs/supervisor.md, "Control socket" and
// "Report socket"): one line in is one message; input is bounded.
import net from 'node:net';
import { closeFd, socketFileId, unixListen, unlinkSocketFile, type FileId } from '../sys/index.js';

/** Longest line accepted; a client that sends more without a newline is disconnected. */
export const MAX_LINE = 65536;

/**
 * Hands each complete line to `onLine`. Returns false, and hands over
 * nothing more, once a line is longer than `max` characters.
 */
export function lineSplitter(onLine: (line: string) => void, max = MAX_LINE): (chunk: string) => boolean {
  let buf = '';
  let over = false;
  return (chunk) => {
    if (over) return false;
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0 && nl <= max) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      onLine(line);
    }
    over = buf.length > max;
    return !over;
  };
}

export interface LineClient {
  /** Send one value as a JSON line (dropped once the client is gone). */
  reply(value: unknown): void;
}

export class LineServer {
  private server: net.Server | null = null;
  private readonly conns = new Set<net.Socket>();
  private socket: { path: string; id: FileId } | null = null;

  constructor(private readonly onLine: (line: string, client: LineClient) => void) {}

  /**
   * Listen on `socketPath`. The socket is made by the OS layer and handed to
   * Node as a descriptor, so that closing never removes a path by name: only
   * close() does, and only if it is still this socket file.
   */
  async listen(socketPath: string): Promise<void> {
    const fd = unixListen(socketPath, 'stream');
    this.socket = { path: socketPath, id: socketFileId(socketPath) };
    const server = net.createServer((s) => this.serve(s));
    this.server = server;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ fd }, () => resolve());
      });
    } catch (err) {
      closeFd(fd);
      throw err;
    }
  }

  private serve(s: net.Socket): void {
    this.conns.add(s);
    s.on('close', () => this.conns.delete(s));
    s.on('error', () => s.destroy());
    const client: LineClient = {
      reply: (value) => {
        if (!s.destroyed) s.write(`${JSON.stringify(value)}\n`);
      },
    };
    const feed = lineSplitter((line) => this.onLine(line, client));
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      if (!feed(d)) s.destroy();
    });
  }

  /** Disconnect every client, stop listening and remove the socket file. */
  async close(): Promise<void> {
    for (const s of this.conns) s.destroy();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((r) => server.close(() => r()));
    if (this.socket) unlinkSocketFile(this.socket.path, this.socket.id);
    this.socket = null;
  }
}
