// What a supervised cell receives from `ivshm up`, and how it uses it.
//
// The supervisor starts each cell with these environment variables:
//   IVSHM_CELL      the cell's name
//   IVSHM_SYSTEM    the system's name
//   IVSHM_LINKS     JSON: { "<link>": { socket, id, token, kind, protocol } }
//                   for the links this cell is a member of, and only those
//   IVSHM_REPORT    path of the supervisor's report socket (counters for
//                   status and the dashboard); IVSHM_REPORT_TOKEN names the cell
//
// Each broker is started with one token per member ID, so a cell can join
// only the links it was given, and only with its configured ID: knowing
// another link's socket path is not enough (docs/supervisor.md, "Cells").
import net from 'node:net';
import { LINKS_ENV } from '../ivshmem/cell-links.js';
import { encodeReport, type LinkCounters } from './report.js';


/** The variables the supervisor sets for a cell (above). */
export const ENV = {
  cell: 'IVSHM_CELL',
  system: 'IVSHM_SYSTEM',
  links: LINKS_ENV,
  report: 'IVSHM_REPORT',
  reportToken: 'IVSHM_REPORT_TOKEN',
} as const;

export type { LinkCounters } from './report.js';

/**
 * Sends cumulative counters to the supervisor's report socket twice a second. Losing the
 * supervisor is harmless: reports are dropped, the cell keeps running.
 */
export class CounterReporter {
  private sock: net.Socket | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly sources = new Map<string, () => LinkCounters>();

  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  /** Report `read()` for `link` on every tick. */
  track(link: string, read: () => LinkCounters): this {
    this.sources.set(link, read);
    if (!this.timer && this.env[ENV.report]) {
      this.timer = setInterval(() => this.flush(), 500);
      this.timer.unref();
    }
    return this;
  }

  flush(): void {
    const path = this.env[ENV.report];
    if (!path) return;
    if (!this.sock) {
      this.sock = net.createConnection(path);
      this.sock.unref();
      this.sock.on('error', () => {
        this.sock?.destroy();
        this.sock = null;
      });
      this.sock.on('close', () => {
        this.sock = null;
      });
    }
    const links: Record<string, LinkCounters> = {};
    for (const [name, read] of this.sources) links[name] = read();
    this.sock.write(encodeReport({ token: this.env[ENV.reportToken] ?? '', links }));
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sock?.end();
    this.sock = null;
  }
}
