// The supervisor: `ivshm up` plays Jailhouse's root cell (docs/supervisor.md).
// It creates the runtime directory and the network namespaces, starts one
// broker per link, the TAP bridges of net links and the cells; hands each cell
// exactly its own link endpoints; restarts cells per policy; answers the
// control and report sockets; and on stop removes exactly what it created.
// Each of those jobs lives in its own module; this one puts them in order.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { createNetns, deleteNetns, netnsExists } from '../sys/netns.js';
import { bridgeSpec, netLayerAvailable } from './bridges.js';
import { LinkBroker } from './brokers.js';
import type { CellLinkEndpoint } from '../ivshmem/cell-links.js';
import { ENV } from './cell-env.js';
import { CellProcess, exitText } from './cell-process.js';
import type { ResolvedLink, ResolvedSystem } from './check.js';
import { ControlServer, type ControlHandler } from './control-server.js';
import { OwnedDir } from './owned-dir.js';
import { LinkRates } from './rates.js';
import { ReportServer } from './report.js';
import { CONTROL_SOCKET, controlSocket, LINKS_DIR, linkSocketName, REPORT_SOCKET, reportSocket, runtimeBase, systemDir } from './runtime-dir.js';
import { cellStatus, linkStatus, type RateSample, type SystemStatus } from './status.js';

export type { CellStatus, LinkStatus, RateSample, SystemStatus } from './status.js';

/** Where a supervisor puts its runtime directory, whether it runs privileged parts, and where it logs. */
export interface SupervisorOptions {
  /** Runtime directory of this system (default <runtimeBase>/<system name>); its parent is then the base. */
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

interface LinkRuntime {
  broker: LinkBroker;
  bridges: CellProcess[];
  rates: LinkRates;
}

/** Runs a checked system: one broker per link, the cells with only their own links, restart policies, the control and report sockets; removes only what it created on stop (docs/supervisor.md). */
export class Supervisor extends EventEmitter<{ stopped: [] }> implements ControlHandler {
  readonly dir: string;
  readonly privileged: boolean;
  readonly cells = new Map<string, CellProcess>();
  readonly links = new Map<string, LinkRuntime>();
  dashboardUrl: string | null = null;
  private readonly log: (line: string) => void;
  private owned: OwnedDir | null = null;
  private readonly control = new ControlServer(this);
  private readonly report = new ReportServer((cell, link) => !!this.links.get(link)?.broker.isMember(cell));
  private sampler: NodeJS.Timeout | null = null;
  private startedAt = Date.now();
  private stopping: Promise<void> | null = null;

  constructor(
    readonly system: ResolvedSystem,
    private readonly opts: SupervisorOptions = {},
  ) {
    super();
    // The name is checked before any path is made from it (systemDir).
    this.dir = opts.dir ? path.resolve(opts.dir) : systemDir(system.name, path.resolve(opts.runtimeBase ?? system.runtimeDir ?? runtimeBase()));
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
    const bridging = this.privileged && netLinks.length > 0 && netLayerAvailable();
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
      const owned = await this.openDir();
      process.on('exit', this.exitHook);
      await this.control.listen(owned.claim(CONTROL_SOCKET, 'socket'));
      await this.report.listen(owned.claim(REPORT_SOCKET, 'socket'));
      owned.makeDir(LINKS_DIR);
      for (const ns of needNs) {
        progress(`network namespace ${ns}`);
        createNetns(ns);
        // Recorded in the marker, so an `up` after a killed supervisor can delete it.
        owned.addNetns(ns);
      }
      for (const l of sys.links) {
        progress(`broker for link ${l.name}`);
        await this.startBroker(owned, l, bridging && l.kind === 'net');
      }
      for (const c of sys.cells) this.cells.set(c.name, this.makeCell(c.name));
      for (const rt of this.links.values()) {
        for (const b of rt.bridges) {
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

  /** Create the runtime directory, or take over the one a killed supervisor left. */
  private async openDir(): Promise<OwnedDir> {
    const { owned, stale } = await OwnedDir.open(path.dirname(this.dir), path.basename(this.dir), {
      isLive: (dir) => answers(controlSocket(dir)),
      liveMessage: (dir) =>
        `${controlSocket(dir)} exists: system "${this.system.name}" seems to be running; stop it first (or remove the stale directory ${dir})`,
      log: this.log,
    });
    this.owned = owned;
    for (const ns of stale?.netns ?? []) {
      try {
        if (!netnsExists(ns)) continue; // (the name is checked first)
        this.log(`deleting network namespace ${ns} left by the supervisor that is gone`);
        deleteNetns(ns);
      } catch (err) {
        this.log(`could not delete network namespace ${JSON.stringify(ns)} left by the supervisor that is gone: ${(err as Error).message}`);
      }
    }
    return owned;
  }

  private async startBroker(owned: OwnedDir, l: ResolvedLink, bridged: boolean): Promise<void> {
    const broker = new LinkBroker(l, owned.claim(linkSocketName(l.name), 'socket'), (message) => {
      // While stopping, peers vanish mid-message by design; those warnings are noise.
      if (!this.stopping) this.log(`[broker] ${message}`);
    });
    await broker.start();
    const rt: LinkRuntime = { broker, bridges: [], rates: new LinkRates() };
    this.links.set(l.name, rt);
    if (!bridged) return;
    for (const m of l.members) {
      const cell = this.system.cells.find((c) => c.name === m.cell)!;
      const bridge = new CellProcess(bridgeSpec(l, m, cell, { ...process.env, ...this.cellEnv(m.cell, [l]) }));
      this.forward(bridge, `bridge ${bridge.spec.name}`);
      rt.bridges.push(bridge);
    }
  }

  /** The IVSHM_* environment of one process of `cell` that joins `links` (docs/supervisor.md, "Cells"). */
  private cellEnv(cell: string, links: ResolvedLink[]): Record<string, string> {
    const endpoints: Record<string, CellLinkEndpoint> = {};
    for (const l of links) endpoints[l.name] = this.links.get(l.name)!.broker.endpoint(cell);
    return {
      [ENV.cell]: cell,
      [ENV.system]: this.system.name,
      [ENV.links]: JSON.stringify(endpoints),
      [ENV.report]: reportSocket(this.dir),
      // One reporting identity per process (a cell and its bridges report apart).
      [ENV.reportToken]: this.report.issueToken(cell),
    };
  }

  private makeCell(name: string): CellProcess {
    const c = this.system.cells.find((x) => x.name === name)!;
    // Net links are reached through the TAP device; the cell itself joins the others.
    const joined = this.linksOf(name).filter((l) => l.kind !== 'net');
    const fileDir = path.dirname(path.resolve(this.system.file));
    const cell = new CellProcess({
      name,
      command: c.command,
      args: c.args,
      env: { ...process.env, ...c.env, ...this.cellEnv(name, joined) },
      cwd: c.cwd ? path.resolve(fileDir, c.cwd) : fileDir,
      ...(c.netns ? { netns: c.netns } : {}),
      restart: c.restart,
    });
    this.forward(cell, name);
    return cell;
  }

  private forward(p: CellProcess, label: string): void {
    if (this.opts.cellOutput !== false) p.on('output', ({ line }) => this.log(`[${label}] ${line}`));
    p.on('exit', (e) => {
      if (this.stopping) return;
      this.log(`${label}: exited (${exitText(e)})${e.restarting ? `; restarting (${p.restarts})` : ` -> ${p.state}`}`);
    });
  }

  // ---- cell commands (like `jailhouse cell`), the control socket's operations ----

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

  shutdown(): void {
    void this.stop();
  }

  // ---- status ----

  status(): SystemStatus {
    const now = Date.now();
    const history: Record<string, RateSample[]> = {};
    for (const [name, rt] of this.links) history[name] = rt.rates.history;
    return {
      system: this.system.name,
      file: this.system.file,
      pid: process.pid,
      dir: this.dir,
      privileged: this.privileged,
      startedAt: this.startedAt,
      dashboard: this.dashboardUrl,
      cells: this.system.cells.map((cfg) => cellStatus(cfg, this.cells.get(cfg.name), this.linksOf(cfg.name).map((l) => l.name), now)),
      links: [...this.links.values()].map((rt) =>
        linkStatus(rt.broker, rt.bridges.length > 0, this.report.totals(rt.broker.config.name), rt.rates.rates),
      ),
      history,
    };
  }

  /** Once a second: per-second rates per link from the reported counters. */
  private sample(): void {
    const now = Date.now();
    for (const [name, rt] of this.links) rt.rates.sample(this.report.totals(name), now);
  }

  // ---- shutdown ----

  /** Stop cells, bridges and brokers, delete namespaces and what was created in the runtime directory. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private allProcesses(): CellProcess[] {
    return [...this.cells.values(), ...[...this.links.values()].flatMap((rt) => rt.bridges)];
  }

  /** Delete the namespaces this supervisor created, then what it made in its runtime directory. */
  private removeCreated(): void {
    const owned = this.owned;
    if (!owned) return;
    for (const ns of [...owned.namespaces]) {
      try {
        deleteNetns(ns);
        owned.forgetNetns(ns);
      } catch (err) {
        this.log(`could not delete network namespace ${ns}: ${(err as Error).message}`);
      }
    }
    owned.removeAll();
    this.owned = null;
  }

  /**
   * Last resort when this process exits without stop() (uncaught error,
   * process.exit): kill the cells' process groups and delete what we made,
   * synchronously, so a crashed supervisor leaves nothing behind either.
   */
  private readonly exitHook = (): void => {
    for (const p of this.allProcesses()) {
      if (p.pid) {
        try {
          process.kill(-p.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    this.removeCreated();
  };

  private async doStop(): Promise<void> {
    process.off('exit', this.exitHook);
    if (this.sampler) clearInterval(this.sampler);
    await Promise.all([...this.cells.values()].map((c) => c.stop()));
    await Promise.all([...this.links.values()].flatMap((rt) => rt.bridges.map((b) => b.stop())));
    for (const rt of this.links.values()) await rt.broker.stop();
    await Promise.all([this.control.close(), this.report.close()]);
    this.removeCreated();
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
