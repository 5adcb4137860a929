// The dashboard server of `ivshm up --http HOST:PORT`: the static page, the
// status as JSON, and a server-sent event stream that pushes the status once
// a second so the page updates without reloading (docs/supervisor.md).
import fs from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { ConfigError, InvalidArgumentError } from '../errors.js';
import type { Supervisor } from './supervisor.js';

/** The page lives next to the sources (no build step); dist/ code finds it from there. */
function dashboardFile(): string {
  const candidates = [
    new URL('./dashboard/index.html', import.meta.url),
    new URL('../../../src/system/dashboard/index.html', import.meta.url),
  ].map((u) => fileURLToPath(u));
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new ConfigError(`dashboard page not found (looked in ${candidates.join(', ')})`);
  return found;
}

export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-f:]+)\]|([^:]+)):(\d{1,5})$/i.exec(text) ?? /^()()(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError(`--http ${text}: give HOST:PORT, e.g. 127.0.0.1:8080 (port 0 picks a free one)`);
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

export class StatusServer {
  private server: http.Server | null = null;
  private readonly streams = new Set<http.ServerResponse>();
  private timer: NodeJS.Timeout | null = null;
  url = '';

  constructor(private readonly supervisor: Supervisor) {}

  async listen(host: string, port: number): Promise<string> {
    const page = fs.readFileSync(dashboardFile());
    this.server = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (req.method !== 'GET') {
        res.writeHead(405).end();
      } else if (url.pathname === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(page);
      } else if (url.pathname === '/api/status') {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(this.supervisor.status()));
      } else if (url.pathname === '/api/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
        res.write(`retry: 1000\ndata: ${JSON.stringify(this.supervisor.status())}\n\n`);
        this.streams.add(res);
        req.on('close', () => this.streams.delete(res));
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      }
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', (err: NodeJS.ErrnoException) =>
        reject(new InvalidArgumentError(`--http ${host}:${port}: cannot listen (${err.code}); choose another port`)),
      );
      this.server!.listen(port, host, () => resolve());
    });
    const addr = this.server.address() as { port: number };
    this.url = `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}/`;
    this.timer = setInterval(() => this.push(), 1000);
    return this.url;
  }

  private push(): void {
    if (!this.streams.size) return;
    const data = `data: ${JSON.stringify(this.supervisor.status())}\n\n`;
    for (const s of this.streams) s.write(data);
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const s of this.streams) s.end();
    this.streams.clear();
    const srv = this.server;
    this.server = null;
    if (srv) {
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  }
}
