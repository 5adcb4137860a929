// ivshm up / status / cell: start, status, stop one cell (its peer sees it
// gone), restart it (link comes back), crash (restart policy), shutdown
// leaves nothing behind (docs/supervisor.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isRoot, memfdsOf, processesWith, root, startUp } from './helpers.js';

const fixture = path.join(root, 'test/fixtures/system-sup.yaml');

test('supervisor: start, status, cell stop/start/restart, crash policy, clean shutdown', { timeout: 90_000 }, async () => {
  const up = await startUp(fixture, 'sup-test');
  try {
    // Start: both peers joined, ping-pong counters move.
    await up.waitFor('a and b joined suptest-l0', (st) => st.links.find((l) => l.name === 'suptest-l0')?.members.every((m) => m.joined && m.state === 1));
    const moving = async (): Promise<number> => up.waitFor('messages on suptest-l0', (st) => st.links.find((l) => l.name === 'suptest-l0')!.totals.messages > 0 && st.links.find((l) => l.name === 'suptest-l0')!.totals.messages);
    const m1 = await moving();
    assert.ok(memfdsOf('suptest-l0').length > 0, 'the broker holds its memfds while running');

    // Status through the CLI: table and JSON.
    const table = up.ivshm('status');
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /^a\s+running\s+\d+/m);
    assert.match(table.stdout, /^suptest-l0\s+raw\s+0x0000\s+0:a 1, 1:b 1/m);
    const json = up.ivshm('status', '--json');
    const st = JSON.parse(json.stdout) as { cells: { name: string; state: string; links: string[] }[]; links: { name: string; totals: { messages: number } }[] };
    assert.deepEqual(st.cells.find((c) => c.name === 'a')!.links, ['suptest-l0', 'suptest-l1']);

    // Stop one cell: it is stopped, its peer on the link sees it gone.
    const stopB = up.ivshm('cell', 'stop', 'b');
    assert.equal(stopB.status, 0, stopB.stderr);
    assert.match(stopB.stdout, /cell b: stopped/);
    await up.waitFor('b absent from suptest-l0', (st) => {
      const b = st.cells.find((c) => c.name === 'b')!;
      const member = st.links.find((l) => l.name === 'suptest-l0')!.members.find((m) => m.cell === 'b')!;
      return b.state === 'stopped' && b.pid === null && !member.joined;
    });
    await up.waitFor('a saw peer 1 gone', (st) => st.cells.find((c) => c.name === 'a')!.log.some((l) => l.includes('peer 1 gone from suptest-l0')));

    // Start it again: the link comes back and traffic resumes.
    assert.equal(up.ivshm('cell', 'start', 'b').status, 0);
    const before = (await up.status()).links.find((l) => l.name === 'suptest-l0')!.totals.messages;
    await up.waitFor('b rejoined and traffic resumed', (st) => {
      const l = st.links.find((x) => x.name === 'suptest-l0')!;
      return l.members.every((m) => m.joined) && l.totals.messages > before;
    });
    // Restart: a new pid, joined again.
    const pidBefore = (await up.status()).cells.find((c) => c.name === 'b')!.pid;
    const restart = up.ivshm('cell', 'restart', 'b');
    assert.equal(restart.status, 0, restart.stderr);
    await up.waitFor('b restarted with a new pid and rejoined', (st) => {
      const b = st.cells.find((c) => c.name === 'b')!;
      return b.state === 'running' && b.pid !== pidBefore && st.links.find((x) => x.name === 'suptest-l0')!.members.every((m) => m.joined);
    });
    assert.ok(m1 > 0);

    // A second `up` of the same system is refused while the first runs.
    const again = up.ivshm('up', fixture);
    assert.equal(again.status, 2);
    assert.match(again.stderr, /control\.sock exists: system "sup-test" seems to be running; stop it first/);

    // Unknown cell: a clear error, non-zero exit.
    const bad = up.ivshm('cell', 'stop', 'nosuch');
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /no cell named "nosuch"; the cells are a, b, crashy/);

    // Crash: crashy exits with code 3 every 300 ms; on-failure with maxRestarts 2 -> failed after 2 restarts.
    const crashy = await up.waitFor('crashy failed after its restarts', (st) => {
      const c = st.cells.find((x) => x.name === 'crashy')!;
      return c.state === 'failed' && c;
    });
    assert.equal(crashy.restarts, 2);
    assert.equal(crashy.lastExit?.code, 3);
    // A manual start gives it a fresh budget.
    assert.equal(up.ivshm('cell', 'start', 'crashy').status, 0);
    await up.waitFor('crashy restarted by policy again', (st) => {
      const c = st.cells.find((x) => x.name === 'crashy')!;
      return c.restarts >= 3 && c;
    });

    const pids = (await up.status()).cells.flatMap((c) => (c.pid ? [c.pid] : []));
    assert.ok(pids.length >= 2);
    // Shutdown: SIGTERM to ivshm up leaves no process, socket, directory or memfd.
    const code = await up.stop();
    assert.equal(code, 0, up.output());
    for (const pid of pids) assert.equal(fs.existsSync(`/proc/${pid}`), false, `cell pid ${pid} still alive`);
    assert.deepEqual(processesWith(up.dir), []);
    assert.equal(fs.existsSync(up.dir), false, 'runtime directory removed');
    assert.deepEqual(memfdsOf('suptest-l0'), []);
    assert.deepEqual(memfdsOf('suptest-l1'), []);
    assert.match(up.output(), /stopped; nothing left behind/);
  } finally {
    await up.stop();
  }
});

test('supervisor: killed with SIGKILL, its cells die with it and the next up cleans up', { timeout: 60_000 }, async () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'ivshm-test-'));
  const file = isRoot() ? path.join(root, 'test/fixtures/system-netns.yaml') : fixture;
  const name = isRoot() ? 'sup-netns' : 'sup-test';
  const first = await startUp(file, name, [], base);
  const pids = (await first.waitFor('cells running', (st) => st.cells.every((c) => c.state === 'running' && c.pid) && st)).cells.map((c) => c.pid!);
  first.child.kill('SIGKILL');
  const alive = (): number[] => pids.filter((p) => fs.existsSync(`/proc/${p}`) && !fs.readFileSync(`/proc/${p}/stat`, 'utf8').includes(') Z '));
  for (let i = 0; i < 100 && alive().length; i++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(alive(), [], 'cells die with their supervisor (PR_SET_PDEATHSIG)');
  const second = await startUp(file, name, [], base);
  try {
    await second.waitFor('cells running again', (st) => st.cells.every((c) => c.state === 'running'));
    assert.match(second.output(), /removing the stale runtime directory/);
    if (isRoot()) assert.match(second.output(), /deleting network namespace ivshm-t-na left by the supervisor that is gone/);
  } finally {
    assert.equal(await second.stop(), 0, second.output());
  }
  if (isRoot()) assert.doesNotMatch(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }), /ivshm-t-n[ab]/);
});

test('supervisor: ivshm up refuses a file with problems and starts nothing', { timeout: 60_000 }, () => {
  const bad = path.join(root, 'test/fixtures/system-bad-unknown-cell.yaml');
  const r = execFileSyncStatus([path.join(root, 'dist/src/cli/main.js'), 'up', bad]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /has 1 problem\(s\); nothing was started/);
  assert.match(r.stderr, /links\[0\]\.members\[1\]\.cell: unknown cell "c"/);
});

test('supervisor: a cell cannot join a link it was not given', { timeout: 30_000 }, async () => {
  // b is only on suptest-l0; with a's l1 endpoint but b's token the broker refuses.
  const up = await startUp(fixture, 'sup-test');
  try {
    await up.waitFor('b running', (st) => st.cells.find((c) => c.name === 'b')!.state === 'running');
    const bEnv = fs.readFileSync(`/proc/${(await up.status()).cells.find((c) => c.name === 'b')!.pid}/environ`, 'utf8').split('\0');
    const links = JSON.parse(bEnv.find((e) => e.startsWith('IVSHM_LINKS='))!.slice('IVSHM_LINKS='.length)) as Record<string, { socket: string; id: number; token: string }>;
    assert.deepEqual(Object.keys(links), ['suptest-l0']);
    const l0 = links['suptest-l0']!;
    const l1Socket = path.join(path.dirname(l0.socket), 'suptest-l1.sock');
    const script = `
      import { connect } from ${JSON.stringify(path.join(root, 'dist/src/ivshmem/device.js'))};
      for (const [socket, id, token] of [[${JSON.stringify(l1Socket)}, 1, ${JSON.stringify(l0.token)}], [${JSON.stringify(l0.socket)}, 0, ${JSON.stringify(l0.token)}], [${JSON.stringify(l1Socket)}, 1, '']]) {
        try { const d = await connect({ socket, id, token, timeoutMs: 5000 }); console.log('JOINED'); d.close(); }
        catch (e) { console.log('REFUSED ' + e.code); }
      }`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.deepEqual(out.trim().split('\n'), ['REFUSED IVSHM_ERR_REFUSED', 'REFUSED IVSHM_ERR_REFUSED', 'REFUSED IVSHM_ERR_REFUSED']);
  } finally {
    await up.stop();
  }
});

test('supervisor: namespaces are created for cells and removed on shutdown (root)', { timeout: 60_000 }, async (t) => {
  if (!isRoot()) return t.skip('needs root to create network namespaces (ip netns add)');
  const file = path.join(root, 'test/fixtures/system-netns.yaml');
  const up = await startUp(file, 'sup-netns');
  try {
    const st = await up.waitFor('cells running in their namespaces', (s) => s.cells.every((c) => c.state === 'running') && s);
    assert.ok(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).includes('ivshm-t-na'));
    // The cell really runs in its namespace.
    const pid = st.cells.find((c) => c.name === 'na')!.pid!;
    assert.equal(fs.statSync(`/proc/${pid}/ns/net`).ino, fs.statSync('/run/netns/ivshm-t-na').ino);
    await up.waitFor('the pair joined', (s) => s.links[0]!.members.every((m) => m.joined));
    if (st.links.some((l) => l.bridged)) {
      await up.waitFor('TAP devices up', () => {
        try {
          execFileSync('ip', ['-n', 'ivshm-t-na', 'link', 'show', 'tnet0'], { stdio: 'ignore' });
          return true;
        } catch {
          return false;
        }
      });
      // IP over the ivshmem-net link between the two namespaces.
      await up.waitFor('ping over the net link', () => {
        try {
          execFileSync('ip', ['netns', 'exec', 'ivshm-t-na', 'ping', '-c', '1', '-W', '1', '10.231.0.2'], { stdio: 'ignore' });
          return true;
        } catch {
          return false;
        }
      });
      await up.waitFor('frames counted on the net link', (s) => s.links.find((l) => l.name === 'suptest-net')!.totals.frames > 0);
    } else {
      assert.fail('the net link was not bridged: as root with the ivshmem-net layer built, ivshm up bridges every net link');
    }
  } finally {
    assert.equal(await up.stop(), 0, up.output());
  }
  const ns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  assert.doesNotMatch(ns, /ivshm-t-n[ab]/);
  assert.doesNotMatch(execFileSync('ip', ['link', 'show'], { encoding: 'utf8' }), /tnet0/);
  assert.deepEqual(memfdsOf('suptest-net'), []);
});

/** Run node with `args`; a watchdog kills it after 30 s, so a hang fails the test instead of the suite. */
function execFileSyncStatus(args: string[]): { status: number | null; stderr: string } {
  try {
    execFileSync(process.execPath, args, { encoding: 'utf8', stdio: 'pipe', timeout: 30_000, killSignal: 'SIGKILL' });
    return { status: 0, stderr: '' };
  } catch (e) {
    const err = e as { status: number | null; stderr: string; code?: string };
    if (err.code === 'ETIMEDOUT') throw new Error(`watchdog: node ${args.join(' ')} still running after 30 s; stderr so far:\n${err.stderr}`);
    return { status: err.status, stderr: err.stderr };
  }
}
