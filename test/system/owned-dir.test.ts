// The supervisor removes only what it created (docs/supervisor.md, "Runtime
// directory"). A scratch directory plays the would-be victim: files inside it,
// a forged marker, files named like the sockets the supervisor makes. Whether
// the system's name leads to it, the runtime directory is a symlink to it, a
// directory ivshm did not create is in the way, or entries pointing at it are
// planted in the runtime directory (also across a SIGKILL and the next `up`'s
// takeover), the victim is left exactly as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../../src/errors.js';
import { closeFd, unixListen } from '../../src/sys/index.js';
import { checkSystemText, type ResolvedSystem } from '../../src/system/check.js';
import { MARKER } from '../../src/system/owned-dir.js';
import { Supervisor } from '../../src/system/supervisor.js';
import { cli, fixtureCopy, startUp, type UpProcess } from './helpers.js';

/** Every entry below `root`: kind, inode, size, content and mtime (a directory's changes when an entry comes or goes). */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (p: string, rel: string): void => {
    const st = fs.lstatSync(p);
    const kind = st.isSymbolicLink()
      ? `link -> ${fs.readlinkSync(p)}`
      : st.isDirectory()
        ? 'dir'
        : st.isFile()
          ? `file ${fs.readFileSync(p, 'utf8')}`
          : 'other';
    out[rel] = `${kind} ino ${st.ino} mode ${st.mode} mtime ${st.mtimeMs}`;
    if (st.isDirectory() && !st.isSymbolicLink()) for (const n of fs.readdirSync(p).sort()) walk(path.join(p, n), `${rel}/${n}`);
  };
  walk(root, '.');
  return out;
}

interface Scene {
  scratch: string;
  base: string;
  victim: string;
  before: Record<string, string>;
  untouched(): void;
  cleanup(): void;
}

/** A scratch tree: <scratch>/base (runtime base) and <scratch>/victim (must never change). */
function scene(): Scene {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'ivshm-victim-'));
  const base = path.join(scratch, 'base');
  const victim = path.join(scratch, 'victim');
  fs.mkdirSync(base);
  fs.mkdirSync(path.join(victim, 'sub'), { recursive: true });
  fs.mkdirSync(path.join(victim, 'links'));
  fs.writeFileSync(path.join(victim, 'a.txt'), 'precious');
  fs.writeFileSync(path.join(victim, 'sub', 'b.txt'), 'also precious');
  // Lures: dead sockets named like those the supervisor makes (a dead
  // control socket is what a stale-directory takeover looks for), and a file.
  for (const name of ['control.sock', 'report.sock', 'owntest-ab.sock', 'links/owntest-ab.sock']) closeFd(unixListen(path.join(victim, name), 'stream'));
  fs.writeFileSync(path.join(victim, 'links', 'note.txt'), 'not a socket');
  const before = snapshot(victim);
  const outside = fs.readdirSync(scratch).sort();
  return {
    scratch,
    base,
    victim,
    before,
    untouched() {
      assert.deepEqual(snapshot(victim), before, 'the victim directory is exactly as it was');
      assert.deepEqual(fs.readdirSync(scratch).sort(), outside, 'nothing appeared or vanished next to it');
    },
    cleanup: () => fs.rmSync(scratch, { recursive: true, force: true }),
  };
}

const SYSTEM = `
name: owntest-sys
cells:
  - { name: a, command: "true", autostart: false }
  - { name: b, command: "true", autostart: false }
links:
  - { name: owntest-ab, kind: raw, outputSize: 4K, members: [{ cell: a }, { cell: b }] }
`;

function system(name?: string): ResolvedSystem {
  const r = checkSystemText(SYSTEM, path.join(os.tmpdir(), 'owntest.yaml'), { shmFree: null });
  assert.deepEqual(r.problems, []);
  return name === undefined ? r.system! : { ...r.system!, name };
}

/** Start a supervisor that must be refused; stop it in any case (on a bug, stopping is what deletes). */
async function refused(sup: Supervisor, message: RegExp): Promise<void> {
  try {
    await assert.rejects(sup.start(), (e: unknown) => e instanceof ConfigError && message.test(e.message));
  } finally {
    await sup.stop();
  }
}

test('runtime dir: a system name that leads out of the runtime base is refused; nothing is touched', { timeout: 30_000 }, async () => {
  const s = scene();
  try {
    for (const name of ['../victim', '..', 'x/../../victim', `/${path.basename(s.victim)}`]) {
      let sup: Supervisor | null = null;
      try {
        assert.throws(
          () => (sup = new Supervisor(system(name), { runtimeBase: s.base, log: () => {} })),
          (e: unknown) => e instanceof ConfigError && /must be one path component/.test(e.message),
        );
      } finally {
        // On a bug the supervisor was made: run it, since stopping is what deletes.
        const made = sup as Supervisor | null;
        if (made) await made.start().finally(() => made.stop());
      }
      s.untouched();
    }
  } finally {
    s.cleanup();
  }
});

test('runtime dir: a symlink in its place is refused, not followed', { timeout: 30_000 }, async () => {
  const s = scene();
  try {
    const link = path.join(s.base, 'owntest-sys');
    fs.symlinkSync(s.victim, link);
    await refused(new Supervisor(system(), { runtimeBase: s.base, log: () => {} }), /is a symbolic link, not a runtime directory ivshm created; it was left as it is/);
    assert.equal(fs.readlinkSync(link), s.victim, 'the symlink itself is left too');
    s.untouched();
  } finally {
    s.cleanup();
  }
});

test('runtime dir: a directory ivshm did not create (no marker) is refused, not deleted', { timeout: 30_000 }, async () => {
  const s = scene();
  try {
    // The victim itself sits where the runtime directory would be.
    await refused(new Supervisor(system(), { dir: s.victim, log: () => {} }), /victim exists but was not created by ivshm up \(it has no valid owner\.json\)/);
    s.untouched();
  } finally {
    s.cleanup();
  }
});

test('runtime dir: entries planted while running are left, and nothing they point at is touched', { timeout: 30_000 }, async () => {
  const s = scene();
  const logs: string[] = [];
  try {
    const sup = new Supervisor(system(), { runtimeBase: s.base, log: (l) => logs.push(l) });
    await sup.start();
    const dir = sup.dir;
    assert.equal(dir, path.join(s.base, 'owntest-sys'));
    fs.symlinkSync(s.victim, path.join(dir, 'victim-link'));
    // The links directory swapped for a link to the victim: the broker's
    // socket path now leads to the victim's file of the same name.
    fs.renameSync(path.join(dir, 'links'), path.join(dir, 'links-moved'));
    fs.symlinkSync(s.victim, path.join(dir, 'links'));
    // A link where the marker is written first, then renamed into place.
    fs.symlinkSync(path.join(s.victim, 'a.txt'), path.join(dir, `${MARKER}.tmp`));
    await sup.stop();
    s.untouched();
    assert.deepEqual(fs.readdirSync(dir).sort(), ['links', 'links-moved', MARKER, 'victim-link'].sort(), 'only what ivshm created was removed');
    assert.ok(logs.some((l) => l.includes(`left ${dir}: it holds entries ivshm did not create`)), logs.join('\n'));

    // The next supervisor takes the directory over (it has the marker) but
    // will not use a links directory that is a symlink.
    await refused(new Supervisor(system(), { runtimeBase: s.base, log: () => {} }), /links exists and is not a directory ivshm created/);
    s.untouched();
  } finally {
    s.cleanup();
  }
});

test('runtime dir: replaced by a symlink while running, nothing is removed through it', { timeout: 30_000 }, async () => {
  const s = scene();
  const logs: string[] = [];
  try {
    const sup = new Supervisor(system(), { runtimeBase: s.base, log: (l) => logs.push(l) });
    await sup.start();
    fs.renameSync(sup.dir, `${sup.dir}-moved`);
    fs.symlinkSync(s.victim, sup.dir);
    await sup.stop();
    s.untouched();
    assert.ok(logs.some((l) => l.includes(`the runtime directory ${sup.dir} was moved or replaced while the system ran; nothing in it was removed`)), logs.join('\n'));
  } finally {
    s.cleanup();
  }
});

test('ivshm up: a system file whose name leads to the victim starts nothing and removes nothing', { timeout: 60_000 }, async () => {
  const s = scene();
  try {
    const file = path.join(s.base, 'hostile.yaml');
    fs.writeFileSync(file, SYSTEM.replace('name: owntest-sys', 'name: "../victim"'));
    const child = spawn(process.execPath, [cli, 'up', file], { env: { ...process.env, IVSHM_RUNTIME_DIR: s.base }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    // Watchdog: a supervisor that did start is stopped (which is when a
    // recursive removal would strike) and the test fails.
    const watchdog = setTimeout(() => child.kill('SIGTERM'), 20_000);
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    clearTimeout(watchdog);
    assert.equal(code, 2, out);
    assert.match(out, /\.\.\/victim/);
    s.untouched();
  } finally {
    s.cleanup();
  }
});

test('ivshm up: after SIGKILL, the takeover removes only what the dead supervisor created', { timeout: 90_000 }, async () => {
  const s = scene();
  const file = fixtureCopy('system-sup.yaml', { 'sup-test': 'own-test', 'suptest-': 'owntest-' });
  let first: UpProcess | null = null;
  try {
    first = await startUp(file, 'own-test', [], s.base);
    await first.waitFor('cells running', (st) => st.cells.every((c) => c.state === 'running'));
    const dir = first.dir;
    fs.symlinkSync(s.victim, path.join(dir, 'victim-link'));
    fs.symlinkSync(path.join(s.victim, 'a.txt'), path.join(dir, 'links', 'evil.sock'));
    // A forged marker: entries out of the directory, and planted links listed as if created.
    const marker = JSON.parse(fs.readFileSync(path.join(dir, MARKER), 'utf8')) as { entries: { path: string; kind: string }[]; netns: string[] };
    marker.entries.push(
      { path: 'victim-link', kind: 'dir' },
      { path: 'links/evil.sock', kind: 'socket' },
      { path: '../victim', kind: 'dir' },
      { path: '../../victim/owntest-ab.sock', kind: 'socket' },
      { path: 'victim-link/owntest-ab.sock', kind: 'socket' },
      { path: 'victim-link/links', kind: 'dir' },
      { path: s.victim, kind: 'dir' },
    );
    marker.netns.push('../../victim');
    fs.writeFileSync(path.join(dir, MARKER), JSON.stringify(marker));
    first.child.kill('SIGKILL');
    await new Promise((r) => first!.child.once('exit', r));

    const second = await startUp(file, 'own-test', [], s.base);
    try {
      await second.waitFor('cells running again', (st) => st.cells.every((c) => c.state === 'running'));
      assert.match(second.output(), /removing the stale runtime directory .* of a supervisor that is gone \(pid \d+\): only what it created/);
      assert.match(second.output(), /left .*victim-link: it is not the dir ivshm created there/);
      assert.match(second.output(), /left .*evil\.sock: it is not the socket ivshm created there/);
      s.untouched();
      second.child.kill('SIGTERM');
      await new Promise((r) => second.child.once('exit', r));
      s.untouched();
      assert.deepEqual(fs.readdirSync(dir).sort(), ['links', MARKER, 'victim-link'].sort());
      assert.deepEqual(fs.readdirSync(path.join(dir, 'links')), ['evil.sock']);
    } finally {
      await second.stop();
    }
  } finally {
    if (first && first.child.exitCode === null && first.child.signalCode === null) first.child.kill('SIGKILL');
    s.cleanup();
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
});
