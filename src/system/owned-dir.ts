// The supervisor's runtime directory as something it owns (docs/supervisor.md,
// "Runtime directory"): it creates the directory itself, writes a marker
// (owner.json) listing every entry it makes there and every network namespace
// it creates, and on stop removes exactly those, by name, each checked first.
// Nothing is ever removed recursively, no path from outside is followed, and
// a directory without the marker is refused, not deleted: whatever a system
// name or a symlink points at, nothing outside the runtime directory is
// touched.
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { systemDir } from './runtime-dir.js';

export const MARKER = 'owner.json';
const MARKER_TMP = `${MARKER}.tmp`;
const MAX_MARKER_BYTES = 1 << 20;

/** Only sockets and directories: a forged marker can never make it remove a regular file. */
export type EntryKind = 'socket' | 'dir';

export interface OwnedEntry {
  /** Relative to the runtime directory, components separated by "/". */
  path: string;
  kind: EntryKind;
}

/** The marker's content. */
export interface Manifest {
  ivshm: 'runtime-dir';
  version: 1;
  system: string;
  pid: number;
  entries: OwnedEntry[];
  netns: string[];
}

/** What a supervisor that is gone left: handed to the one taking over. */
export interface StaleOwner {
  pid: number;
  netns: string[];
}

export interface OwnedDirOptions {
  /** Whether a supervisor still serves `dir` (its control socket answers). */
  isLive: (dir: string) => Promise<boolean>;
  /** The message when it does. */
  liveMessage: (dir: string) => string;
  log: (line: string) => void;
}

// Entry paths the supervisor makes: plain names, no leading dot (so never "."
// or ".."), at most two components.
const ENTRY_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]*(\/[A-Za-z0-9_][A-Za-z0-9._-]*)?$/;
const KINDS: ReadonlySet<string> = new Set(['socket', 'dir']);

const isKind = (st: fs.Stats, kind: EntryKind): boolean => (kind === 'socket' ? st.isSocket() : st.isDirectory());

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

const errCode = (err: unknown): string | undefined => (err as NodeJS.ErrnoException).code;

export class OwnedDir {
  private readonly entries: OwnedEntry[] = [];
  private readonly netns: string[] = [];
  private readonly realBase: string;
  private ident: { dev: number; ino: number } | null = null;

  private constructor(
    readonly base: string,
    readonly dir: string,
    readonly system: string,
    private readonly log: (line: string) => void,
  ) {
    this.realBase = fs.realpathSync(base);
  }

  /**
   * Create (or take over from a supervisor that is gone) the runtime
   * directory `<base>/<name>`. Returns it and, after a takeover, what the
   * stale owner had created outside the directory (its namespaces).
   */
  static async open(base: string, name: string, opts: OwnedDirOptions): Promise<{ owned: OwnedDir; stale: StaleOwner | null }> {
    const dir = systemDir(name, path.resolve(base));
    fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o700 });
    const owned = new OwnedDir(path.dirname(dir), dir, name, opts.log);
    let stale: StaleOwner | null = null;
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      if (errCode(err) !== 'EEXIST') throw err;
      stale = await owned.takeOver(opts);
    }
    owned.remember();
    owned.writeMarker();
    return { owned, stale };
  }

  /** The directory exists: adopt it only if an ivshm supervisor made it and is gone. */
  private async takeOver(opts: OwnedDirOptions): Promise<StaleOwner> {
    const st = fs.lstatSync(this.dir);
    const refuse = (why: string): never => {
      throw new ConfigError(`${this.dir} ${why}; it was left as it is: remove it yourself, or choose another runtime base directory`);
    };
    if (st.isSymbolicLink()) refuse('is a symbolic link, not a runtime directory ivshm created');
    if (!st.isDirectory()) refuse('exists and is not a directory');
    if (st.uid !== process.getuid?.()) refuse(`belongs to uid ${st.uid}, not to this user`);
    if (await opts.isLive(this.dir)) throw new ConfigError(opts.liveMessage(this.dir));
    const manifest = this.readMarker();
    if (!manifest) refuse(`exists but was not created by ivshm up (it has no valid ${MARKER})`);
    this.log(`removing the stale runtime directory ${this.dir} of a supervisor that is gone (pid ${manifest!.pid}): only what it created`);
    this.remember();
    this.removeEntries(manifest!.entries);
    return { pid: manifest!.pid, netns: manifest!.netns };
  }

  /** The marker of a previous owner, or null when there is none or it is not ours. */
  private readMarker(): Manifest | null {
    const p = path.join(this.dir, MARKER);
    const st = lstatOrNull(p);
    if (!st || !st.isFile() || st.size > MAX_MARKER_BYTES || st.uid !== process.getuid?.()) return null;
    let m: Partial<Manifest>;
    try {
      m = JSON.parse(fs.readFileSync(p, 'utf8')) as Partial<Manifest>;
    } catch {
      return null;
    }
    if (typeof m !== 'object' || m === null || m.ivshm !== 'runtime-dir' || m.version !== 1) return null;
    const entries = Array.isArray(m.entries)
      ? m.entries.filter((e): e is OwnedEntry => typeof e?.path === 'string' && ENTRY_RE.test(e.path) && KINDS.has(e.kind))
      : [];
    const netns = Array.isArray(m.netns) ? m.netns.filter((n): n is string => typeof n === 'string') : [];
    return { ivshm: 'runtime-dir', version: 1, system: String(m.system), pid: Number(m.pid) || 0, entries, netns };
  }

  private remember(): void {
    const st = fs.lstatSync(this.dir);
    this.ident = { dev: st.dev, ino: st.ino };
  }

  /** Write the marker atomically, never through a link planted in its place. */
  private writeMarker(): void {
    const tmp = path.join(this.dir, MARKER_TMP);
    const manifest: Manifest = { ivshm: 'runtime-dir', version: 1, system: this.system, pid: process.pid, entries: this.entries, netns: this.netns };
    try {
      fs.unlinkSync(tmp); // a leftover (or a symlink: unlink removes the link, not its target)
    } catch (err) {
      if (errCode(err) !== 'ENOENT') throw err;
    }
    const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
    const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    try {
      fs.writeSync(fd, `${JSON.stringify(manifest, null, 1)}\n`);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, path.join(this.dir, MARKER));
  }

  /**
   * Record that the supervisor is about to create `rel` (recorded first, so a
   * supervisor killed right after still has it listed); returns its path.
   */
  claim(rel: string, kind: EntryKind): string {
    if (!ENTRY_RE.test(rel)) {
      throw new ConfigError(`${JSON.stringify(rel)} cannot be an entry of the runtime directory ${this.dir}: use plain names`);
    }
    if (!this.entries.some((e) => e.path === rel)) {
      this.entries.push({ path: rel, kind });
      this.writeMarker();
    }
    return path.join(this.dir, ...rel.split('/'));
  }

  /** Create directory `rel` (claimed first); a real directory of this user left there by a previous owner is reused. */
  makeDir(rel: string): string {
    const p = this.claim(rel, 'dir');
    try {
      fs.mkdirSync(p, { mode: 0o700 });
    } catch (err) {
      if (errCode(err) !== 'EEXIST') throw err;
      const st = fs.lstatSync(p);
      if (st.isSymbolicLink() || !st.isDirectory() || st.uid !== process.getuid?.()) {
        throw new ConfigError(`${p} exists and is not a directory ivshm created; remove it, or choose another runtime base directory`);
      }
    }
    return p;
  }

  /** Record a network namespace this supervisor created (so a takeover can delete it). */
  addNetns(name: string): void {
    this.netns.push(name);
    this.writeMarker();
  }

  /** Network namespaces recorded and not yet forgotten. */
  get namespaces(): readonly string[] {
    return this.netns;
  }

  forgetNetns(name: string): void {
    const i = this.netns.indexOf(name);
    if (i >= 0) this.netns.splice(i, 1);
    if (this.intact()) this.writeMarker();
  }

  /** Whether the directory is still the one this supervisor made, where it made it. */
  private intact(): boolean {
    const st = lstatOrNull(this.dir);
    if (!st || !st.isDirectory() || !this.ident || st.dev !== this.ident.dev || st.ino !== this.ident.ino) return false;
    try {
      return fs.realpathSync(path.dirname(this.dir)) === this.realBase;
    } catch {
      return false;
    }
  }

  /**
   * The path of entry `rel` after checking that every directory on the way
   * is a real directory inside this one (no symlink leads out); null if not.
   */
  private checkedPath(rel: string): string | null {
    if (!ENTRY_RE.test(rel)) return null;
    const parts = rel.split('/');
    let p = this.dir;
    for (const part of parts.slice(0, -1)) {
      p = path.join(p, part);
      const st = lstatOrNull(p);
      if (!st || st.isSymbolicLink() || !st.isDirectory()) return null;
    }
    return path.join(p, parts[parts.length - 1]!);
  }

  /** Remove the listed entries that are still what was made (last made, first removed). */
  private removeEntries(entries: readonly OwnedEntry[]): string[] {
    const left: string[] = [];
    for (const e of [...entries].reverse()) {
      const p = this.checkedPath(e.path);
      const st = p && lstatOrNull(p);
      if (p && !st) continue; // already gone
      if (!p || !st || !isKind(st, e.kind)) {
        left.push(e.path);
        this.log(`left ${path.join(this.dir, e.path)}: it is not the ${e.kind} ivshm created there`);
        continue;
      }
      try {
        if (e.kind === 'dir') fs.rmdirSync(p);
        else fs.unlinkSync(p);
      } catch (err) {
        left.push(e.path);
        this.log(`left ${p}: ${errCode(err) === 'ENOTEMPTY' ? 'it holds entries ivshm did not create' : (err as Error).message}`);
      }
    }
    return left;
  }

  /**
   * Remove everything recorded, then the marker and the directory. Entries
   * ivshm did not create stay, and with them the directory and its marker
   * (so the next supervisor may take it over). Synchronous: also runs from
   * an exit handler.
   */
  removeAll(): void {
    if (!this.intact()) {
      this.log(`the runtime directory ${this.dir} was moved or replaced while the system ran; nothing in it was removed`);
      return;
    }
    this.removeEntries(this.entries);
    this.entries.length = 0;
    const foreign = fs.readdirSync(this.dir).filter((n) => n !== MARKER);
    if (foreign.length) {
      this.writeMarker();
      this.log(`left ${this.dir}: it holds entries ivshm did not create (${foreign.join(', ')})`);
      return;
    }
    fs.unlinkSync(path.join(this.dir, MARKER));
    try {
      fs.rmdirSync(this.dir);
    } catch (err) {
      this.log(`left ${this.dir}: ${(err as Error).message}`);
    }
  }
}
