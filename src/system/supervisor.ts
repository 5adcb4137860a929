// The supervisor: `ivshm up` plays Jailhouse's root cell. It creates the
// network namespaces, starts one broker per link (the hypervisor part), the
// TAP bridges of net links and the cells; hands each cell exactly its own
// link endpoints (IVSHM_LINKS with a per-member token the broker checks);
// restarts cells per policy; answers status and cell commands on a control
// socket; and on stop removes everything it made (ivshmem-v2-notes.md e;
// issue 6 item 3).
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ConfigError, IvshmError } from '../errors.js';
import { Broker } from '../ivshmem/broker.js';
import type { ResolvedLink, ResolvedSystem } from './check.js';
import { CellProcess, type CellState, type ExitInfo } from './cell-process.js';
import { ENV, type CellLinkEndpoint, type LinkCounters } from './cell-env.js';
import { controlSocket, linkSocket, reportSocket, runtimeBase, systemDir } from './runtime-dir.js';

const run = promisify(execFile);

export interface SupervisorOptions {
  /** Runtime directory of this system (default <runtimeBase>/<system name>). */
  dir?: string;
  /** Base of runtime directories (default: runtimeDir of the file, else runtimeBase()). */
  runtimeBase?: string;
  /** Use network namespaces and TAP bridges (default: when root). */
  privileged?: boolean;
  /** Progress and log lines. */
  log?: (line: string) => void;
  /** Called before each step of start(), for a progress display. */
  progress?: (step: number, total: number, what: string) => void;
  /** Print cells' output lines to the log (default true). */
  cellOutput?: boolean;
}

export interface RateSample {
  t: number;
  frames: number;
  messages: number;
  bytes: number;
  doorbells: number;
}

export interface LinkStatus {
  name: string;
  kind: string;
  peers: number;
  vectors: number;
  protocol: number;
  outputSize: number;
  rwSize: number;
  stateSize: number;
  bridged: boolean;
  members: { cell: string; id: number; joined: boolean; state: number; pid: number | null; interface?: string; address?: string }[];
  broker: Broker['counters'];
  totals: Required<LinkCounters>;
  rates: RateSample;
}

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

const HISTORY = 120;
const ZERO = (): Required<LinkCounters> => ({ frames: 0, messages: 0, bytes: 0, doorbells: 0 });

/** The TAP bridge process of net links (needs the ivshmem-net layer). */
const NET_BRIDGE = fileURLToPath(new URL('./net-bridge.js', import.meta.url));
const NET_ENDPOINT = fileURLToPath(new URL('../net/endpoint.js', import.meta.url));

interface LinkRuntime {
  config: ResolvedLink;
  broker: Broker;
  socket: string;
  tokens: Record<number, string>;
  bridges: CellProcess[];
  /** Last cumulative counters reported per process (by report token). */
  reported: Map<string, Required<LinkCounters>>;
  prevTotals: Required<LinkCounters> | null;
  prevAt: number;
  rates: RateSample;
  history: RateSample[];
}

export class Supervisor extends EventEmitter<{ stopped: [] }> {
  readonly dir: string;
  readonly privileged: boolean;
  readonly cells = new Map<string, CellProcess>();
  readonly links = new Map<string, LinkRuntime>();
  dashboardUrl: string | null = null;
  private readonly log: (line: string) => void;
  private readonly createdNetns: string[] = [];
  private control: net.Server | null = null;
  private report: net.Server | null = null;
  private readonly reportTokens = new Map<string, string>();
  private sampler: NodeJS.Timeout | null = null;
  private startedAt = Date.now();
  private stopping: Promise<void> | null = null;
  private readonly conns = new Set<net.Socket>();
  private ownsDir = false;

  constructor(
    readonly system: ResolvedSystem,
    private readonly opts: SupervisorOptions = {},
  ) {
    super();
    this.dir = opts.dir ?? systemDir(system.name, opts.runtimeBase ?? system.runtimeDir ?? runtimeBase());
    this.privileged = opts.privileged ?? process.getuid?.() === 0;
    this.log = opts.log ?? ((l) => console.log(l));
  }

  /** Links cell `name` is a member of. */
  linksOf(name: string): ResolvedLink[] {
    return this.system.links.filter((l) => l.members.some((m) => m.cell === name));
  }

  async start(): Promise<void> {
    const sys = this.system;
    const needNs = [...new Set(sys.cells.flatMap((c) => (c.netns ? [c.netns] : [])))];
    if (needNs.length && !this.privileged) {
      throw new ConfigError(
        `cells ask for network namespaces (${needNs.join(', ')}); creating them needs root: run ivshm up as root, or remove netns from the cells`,
      );
    }
    const netLinks = sys.links.filter((l) => l.kind === 'net');
    const bridging = this.privileged && netLinks.length > 0 && fs.existsSync(NET_ENDPOINT);
    if (netLinks.length && !bridging) {
      this.log(
        this.privileged
          ? `net links (${netLinks.map((l) => l.name).join(', ')}): the ivshmem-net layer is not available in this build; running their brokers only`
          : `net links (${netLinks.map((l) => l.name).join(', ')}): TAP devices need root; running their brokers only`,
      );
    }
    const autostart = sys.cells.filter((c) => c.autostart);
    const total = 1 + needNs.length + sys.links.length + (bridging ? netLinks.length * 2 : 0) + autostart.length;
    let step = 0;
    const progress = (what: string): void => this.opts.progress?.(++step, total, what);

    try {
      progress(`runtime directory ${this.dir}`);
      await this.prepareDir();
      process.on('exit', this.exitHook);
      await this.listen();
      for (const ns of needNs) {
        progress(`network namespace ${ns}`);
        await this.createNetns(ns);
      }
      for (const l of sys.links) {
        progress(`broker for link ${l.name}`);
        await this.startBroker(l, bridging && l.kind === 'net');
      }
      for (const c of sys.cells) this.cells.set(c.name, this.makeCell(c.name));
      for (const l of sys.links) {
        for (const b of this.links.get(l.name)!.bridges) {
          progress(`TAP bridge ${b.spec.name}`);
          b.start();
        }
      }
      for (const c of autostart) {
        progress(`cell ${c.name}`);
        this.cells.get(c.name)!.start();
      }
      this.startedAt = Date.now();
      this.sampler = setInterval(() => this.sample(), 1000);
      this.sampler.unref();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private async prepareDir(): Promise<void> {
    if (fs.existsSync(controlSocket(this.dir)) && !(await answers(controlSocket(this.dir)))) {
      // A supervisor that was killed left its directory behind: nobody listens, so take it over.
      this.log(`removing the stale runtime directory ${this.dir} of a supervisor that is gone`);
      await this.removeStaleNetns();
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
    if (fs.existsSync(controlSocket(this.dir))) {
      throw new ConfigError(
        `${controlSocket(this.dir)} exists: system "${this.system.name}" seems to be running; stop it first (or remove the stale directory ${this.dir})`,
      );
    }
    fs.mkdirSync(path.join(this.dir, 'links'), { recursive: true, mode: 0o700 });
    this.ownsDir = true;
  }

  private async listen(): Promise<void> {
    this.control = net.createServer((s) => this.serveControl(s));
    this.report = net.createServer((s) => this.serveReport(s));
    for (const [server, p] of [
      [this.control, controlSocket(this.dir)],
      [this.report, reportSocket(this.dir)],
    ] as const) {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(p, () => resolve());
      });
    }
    fs.chmodSync(controlSocket(this.dir), 0o600);
  }

  private async removeStaleNetns(): Promise<void> {
    let names: unknown;
    try {
      names = JSON.parse(fs.readFileSync(path.join(this.dir, 'netns.json'), 'utf8'));
    } catch {
      return;
    }
    if (!Array.isArray(names)) return;
    for (const ns of names) {
      if (typeof ns !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(ns) || !fs.existsSync(`/run/netns/${ns}`)) continue;
      this.log(`deleting network namespace ${ns} left by the supervisor that is gone`);
      await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    }
  }

  private async createNetns(ns: string): Promise<void> {
    if (fs.existsSync(`/run/netns/${ns}`)) {
      throw new ConfigError(`network namespace ${ns} already exists; remove it (ip netns del ${ns}) or choose another netns name`);
    }
    await run('ip', ['netns', 'add', ns]);
    this.createdNetns.push(ns);
    // Remembered on disk, so an `up` after a killed supervisor can delete them.
    fs.writeFileSync(path.join(this.dir, 'netns.json'), JSON.stringify(this.createdNetns));
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }

  private async startBroker(l: ResolvedLink, bridged: boolean): Promise<void> {
    const socket = linkSocket(this.dir, l.name);
    const tokens: Record<number, string> = {};
    for (const m of l.members) tokens[m.id] = randomBytes(16).toString('hex');
    const broker = new Broker({
      socket,
      name: l.name,
      peers: l.peers,
      vectors: l.vectors,
      protocol: l.protocol,
      outputSize: l.outputSize,
      rwSize: l.rwSize,
      stateSize: l.stateSize,
      tokens,
    });
    broker.on('log', (e) => {
      // While stopping, peers vanish mid-message by design; those warnings are noise.
      if (e.level === 'warn' && !this.stopping) this.log(`[broker] ${e.message}`);
    });
    await broker.start();
    const rt: LinkRuntime = {
      config: l,
      broker,
      socket,
      tokens,
      bridges: [],
      reported: new Map(),
      prevTotals: null,
      prevAt: Date.now(),
      rates: { t: Date.now(), ...ZERO() },
      history: [],
    };
    this.links.set(l.name, rt);
    if (bridged) {
      for (const m of l.members) {
        const cell = this.system.cells.find((c) => c.name === m.cell)!;
        const args = [NET_BRIDGE, '--link', l.name, '--tap', m.interface!];
        if (cell.netns) args.push('--netns', cell.netns);
        if (m.address) args.push('--address', m.address);
        if (l.mtu) args.push('--mtu', String(l.mtu));
        if (m.mac) args.push('--mac', m.mac);
        const bridge = new CellProcess({
          name: `${l.name}:${m.cell}`,
          command: process.execPath,
          args,
          env: { ...process.env, ...this.cellEnv(m.cell, [l]) },
          restart: { policy: 'always', maxRestarts: 5, windowMs: 60_000, delayMs: 500 },
        });
        this.forward(bridge, `bridge ${bridge.spec.name}`);
        rt.bridges.push(bridge);
      }
    }
  }

  private cellEnv(cell: string, links: ResolvedLink[]): Record<string, string> {
    const endpoints: Record<string, CellLinkEndpoint> = {};
    for (const l of links) {
      const rt = this.links.get(l.name)!;
      const m = l.members.find((x) => x.cell === cell)!;
      endpoints[l.name] = { socket: rt.socket, id: m.id, token: rt.tokens[m.id]!, kind: l.kind, protocol: l.protocol };
    }
    // One reporting identity per process (a cell and its bridges report apart).
    const token = randomBytes(16).toString('hex');
    this.reportTokens.set(token, cell);
    return {
      [ENV.cell]: cell,
      [ENV.system]: this.system.name,
      [ENV.links]: JSON.stringify(endpoints),
      [ENV.report]: reportSocket(this.dir),
      [ENV.reportToken]: token,
    };
  }

  private makeCell(name: string): CellProcess {
    const c = this.system.cells.find((x) => x.name === name)!;
    // Net links are reached through the TAP device; the cell itself joins the others.
    const joined = this.linksOf(name).filter((l) => l.kind !== 'net');
    const env: NodeJS.ProcessEnv = { ...process.env, ...c.env, ...this.cellEnv(name, joined) };
    const cell = new CellProcess({
      name,
      command: c.command,
      args: c.args,
      env,
      cwd: c.cwd ? path.resolve(path.dirname(this.system.file), c.cwd) : path.dirname(path.resolve(this.system.file)),
      ...(c.netns ? { netns: c.netns } : {}),
      restart: c.restart,
    });
    this.forward(cell, name);
    return cell;
  }

  private forward(p: CellProcess, label: string): void {
    if (this.opts.cellOutput !== false) p.on('output', ({ line }) => this.log(`[${label}] ${line}`));
    p.on('exit', (e) => {
      const how = e.signal ? `signal ${e.signal}` : `code ${e.code}`;
      if (this.stopping) return;
      this.log(`${label}: exited (${how})${e.restarting ? `; restarting (${p.restarts})` : ` -> ${p.state}`}`);
    });
  }

  // ---- cell commands (like `jailhouse cell`) ----

  private cell(name: string): CellProcess {
    const c = this.cells.get(name);
    if (!c) throw new ConfigError(`no cell named "${name}"; the cells are ${[...this.cells.keys()].join(', ')}`);
    return c;
  }

  async stopCell(name: string): Promise<void> {
    await this.cell(name).stop();
  }

  async startCell(name: string): Promise<void> {
    const c = this.cell(name);
    if (c.child) throw new ConfigError(`cell ${name} is already running (pid ${c.pid})`);
    c.resetBudget();
    c.start();
  }

  async restartCell(name: string): Promise<void> {
    const c = this.cell(name);
    await c.stop();
    c.resetBudget();
    c.start();
  }

  // ---- status ----

  status(): SystemStatus {
    const now = Date.now();
    const cells: CellStatus[] = this.system.cells.map((cfg) => {
      const c = this.cells.get(cfg.name);
      return {
        name: cfg.name,
        state: c?.state ?? 'stopped',
        pid: c?.pid ?? null,
        netns: cfg.netns ?? null,
        restarts: c?.restarts ?? 0,
        restartPolicy: cfg.restart.policy,
        uptimeMs: c?.child && c.startedAt ? now - c.startedAt : null,
        lastExit: c?.lastExit ?? null,
        links: this.linksOf(cfg.name).map((l) => l.name),
        log: c ? c.log.slice(-10) : [],
      };
    });
    const links: LinkStatus[] = [...this.links.values()].map((rt) => {
      const b = rt.broker.status();
      const l = rt.config;
      return {
        name: l.name,
        kind: l.kind,
        peers: l.peers,
        vectors: l.vectors,
        protocol: l.protocol,
        outputSize: l.outputSize,
        rwSize: l.rwSize,
        stateSize: l.stateSize,
        bridged: rt.bridges.length > 0,
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
        totals: this.totals(rt),
        rates: rt.rates,
      };
    });
    const history: Record<string, RateSample[]> = {};
    for (const [name, rt] of this.links) history[name] = rt.history;
    return {
      system: this.system.name,
      file: this.system.file,
      pid: process.pid,
      dir: this.dir,
      privileged: this.privileged,
      startedAt: this.startedAt,
      dashboard: this.dashboardUrl,
      cells,
      links,
      history,
    };
  }

  private totals(rt: LinkRuntime): Required<LinkCounters> {
    const t = ZERO();
    for (const r of rt.reported.values()) {
      t.frames += r.frames;
      t.messages += r.messages;
      t.bytes += r.bytes;
      t.doorbells += r.doorbells;
    }
    return t;
  }

  /** Once a second: per-second rates per link from the reported counters. */
  private sample(): void {
    const now = Date.now();
    for (const rt of this.links.values()) {
      const t = this.totals(rt);
      const dt = Math.max(1, now - rt.prevAt) / 1000;
      const p = rt.prevTotals ?? t;
      // A restarted cell reports from zero again: never show a negative rate.
      const rate = (k: keyof LinkCounters): number => Math.max(0, Math.round((t[k] - p[k]) / dt));
      rt.rates = { t: now, frames: rate('frames'), messages: rate('messages'), bytes: rate('bytes'), doorbells: rate('doorbells') };
      rt.prevTotals = t;
      rt.prevAt = now;
      rt.history.push(rt.rates);
      if (rt.history.length > HISTORY) rt.history.shift();
    }
  }

  // ---- sockets ----

  /**
   * Feed each newline-terminated line of `s` to `onLine`. Input is bounded:
   * more than 64 KiB buffered at once disconnects the sender.
   */
  private serveLines(s: net.Socket, onLine: (line: string) => void): void {
    this.conns.add(s);
    s.on('close', () => this.conns.delete(s));
    s.on('error', () => s.destroy());
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      if (buf.length > 65536) return void s.destroy();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        onLine(line);
      }
    });
  }

  private serveControl(s: net.Socket): void {
    this.serveLines(s, (line) => {
      void this.handleControl(line).then((reply) => {
        if (!s.destroyed) s.write(`${JSON.stringify(reply)}\n`);
      });
    });
  }

  private async handleControl(line: string): Promise<{ ok: boolean; result?: unknown; error?: string }> {
    try {
      const req = JSON.parse(line) as { op?: unknown; cell?: unknown };
      const cell = typeof req.cell === 'string' ? req.cell : '';
      switch (req.op) {
        case 'status':
          return { ok: true, result: this.status() };
        case 'cell-stop':
          await this.stopCell(cell);
          return { ok: true, result: this.status() };
        case 'cell-start':
          await this.startCell(cell);
          return { ok: true, result: this.status() };
        case 'cell-restart':
          await this.restartCell(cell);
          return { ok: true, result: this.status() };
        case 'shutdown':
          setImmediate(() => void this.stop());
          return { ok: true };
        default:
          return { ok: false, error: `unknown request ${JSON.stringify(req.op)}` };
      }
    } catch (err) {
      return { ok: false, error: err instanceof IvshmError ? err.message : `bad request: ${(err as Error).message}` };
    }
  }

  /** Counters from cells: untrusted input, so bounded, validated and attributed by token. */
  private serveReport(s: net.Socket): void {
    this.serveLines(s, (line) => this.acceptReport(line));
  }

  private acceptReport(line: string): void {
    let msg: { token?: unknown; links?: unknown };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      return;
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return;
    const cell = typeof msg.token === 'string' ? this.reportTokens.get(msg.token) : undefined;
    if (!cell || typeof msg.links !== 'object' || msg.links === null) return;
    const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 && v < 2 ** 53 ? Math.floor(v) : 0);
    for (const [link, raw] of Object.entries(msg.links as Record<string, unknown>)) {
      const rt = this.links.get(link);
      // Only links the cell is a member of count.
      if (!rt || !rt.config.members.some((m) => m.cell === cell) || typeof raw !== 'object' || raw === null) continue;
      const r = raw as Record<string, unknown>;
      rt.reported.set(msg.token as string, { frames: num(r.frames), messages: num(r.messages), bytes: num(r.bytes), doorbells: num(r.doorbells) });
    }
  }

  // ---- shutdown ----

  /** Stop cells, bridges and brokers, delete namespaces and sockets. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  /**
   * Last resort when this process exits without stop() (uncaught error,
   * process.exit): kill the cells' process groups and delete what we made,
   * synchronously, so a crashed supervisor leaves nothing behind either.
   */
  private readonly exitHook = (): void => {
    for (const p of [...this.cells.values(), ...[...this.links.values()].flatMap((rt) => rt.bridges)]) {
      if (p.pid) {
        try {
          process.kill(-p.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    for (const ns of this.createdNetns) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        /* best effort */
      }
    }
    if (this.ownsDir) fs.rmSync(this.dir, { recursive: true, force: true });
  };

  private async doStop(): Promise<void> {
    process.off('exit', this.exitHook);
    if (this.sampler) clearInterval(this.sampler);
    await Promise.all([...this.cells.values()].map((c) => c.stop()));
    await Promise.all([...this.links.values()].flatMap((rt) => rt.bridges.map((b) => b.stop())));
    for (const rt of this.links.values()) await rt.broker.stop();
    for (const ns of this.createdNetns.splice(0)) {
      try {
        await run('ip', ['netns', 'del', ns]);
      } catch (err) {
        this.log(`could not delete network namespace ${ns}: ${(err as Error).message}`);
      }
    }
    for (const s of this.conns) s.destroy();
    await Promise.all(
      [this.control, this.report].map((srv) => (srv ? new Promise<void>((r) => srv.close(() => r())) : undefined)),
    );
    if (this.ownsDir) fs.rmSync(this.dir, { recursive: true, force: true });
    this.emit('stopped');
  }
}

/** Whether something accepts connections on a UNIX socket path. */
function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
