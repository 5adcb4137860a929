// The channel over the real cross-process link: broker in this process,
// peers in child processes (test/fixtures/channel-peer.ts), real memfds,
// PROT_READ mappings and eventfd doorbells.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Broker } from '../../src/ivshmem/broker.js';
import { connect } from '../../src/ivshmem/device.js';
import { Channel, Publisher, Subscriber, IVSHM_PROTO_CHANNEL, type PeerDownEvent, type Sample } from '../../src/channel/index.js';
import { isPubSample, payload, pubSample, sha, tick } from './helpers.js';
import { until } from '../helpers/wait.js';
import type { WaitMode } from '../../src/ivshmem/wait.js';

const fixture = fileURLToPath(new URL('../fixtures/channel-peer.js', import.meta.url));

interface Kid {
  proc: ChildProcess;
  msgs: unknown[];
  got: Array<[number, string]>;
}

const live = new Set<ChildProcess>();

function spawnPeer(cfg: object): Kid {
  const proc = fork(fixture, [JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  const kid: Kid = { proc, msgs: [], got: [] };
  proc.on('message', (m: unknown) => {
    const g = (m as { got?: Array<[number, string]> }).got;
    if (g) kid.got.push(...g);
    else kid.msgs.push(m);
  });
  return kid;
}

const has = (k: Kid, pred: (m: Record<string, unknown>) => boolean) => k.msgs.some((m) => typeof m === 'object' && m !== null && pred(m as Record<string, unknown>));
const exited = (p: ChildProcess) => new Promise<{ code: number | null; signal: string | null }>((r) => (p.exitCode !== null || p.signalCode !== null ? r({ code: p.exitCode, signal: p.signalCode }) : p.once('exit', (code, signal) => r({ code, signal }))));

async function withBroker<T>(outputSize: string, peers: number, fn: (socket: string) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ivshm-ch-'));
  const socket = path.join(dir, 'ch.sock');
  const broker = new Broker({ socket, peers, outputSize, vectors: 2, protocol: IVSHM_PROTO_CHANNEL });
  await broker.start();
  try {
    return await fn(socket);
  } finally {
    // A failed assertion must not leave a child behind (it would keep this file running).
    for (const p of live) p.kill('SIGKILL');
    await broker.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

for (const mode of ['event', 'hybrid', 'poll'] as WaitMode[]) {
  test(`cross-process ${mode}: both directions under load, in order, no loss, no duplicates (hashes)`, { timeout: 60000 }, async () => {
    await withBroker('64K', 2, async (socket) => {
      const N = 2000;
      const kid = spawnPeer({ role: 'stream', socket, id: 1, mode, count: N, stream: 2 });
      const dev = await connect({ socket, id: 0 });
      const ch = new Channel(dev, { mode });
      const got: string[] = [];
      ch.on('message', (m) => got.push(sha(m.data)));
      await ch.ready();
      for (let i = 0; i < N; i++) await ch.send(payload(1, i));
      await ch.flush();
      await until(() => got.length === N && kid.got.length === N, 'both streams', 30000);
      assert.deepEqual(got, Array.from({ length: N }, (_, i) => sha(payload(2, i))));
      assert.deepEqual(kid.got.map(([s]) => s), Array.from({ length: N }, (_, i) => i + 1));
      assert.deepEqual(kid.got.map(([, h]) => h), Array.from({ length: N }, (_, i) => sha(payload(1, i))));
      assert.equal(ch.counters.violations, 0);
      kid.proc.send('exit');
      await exited(kid.proc);
      ch.close();
      dev.close();
    });
  });
}

test('cross-process back-pressure: a stopped (SIGSTOP) receiver makes send wait, SIGCONT resumes', { timeout: 60000 }, async () => {
  await withBroker('16K', 2, async (socket) => {
    const kid = spawnPeer({ role: 'stream', socket, id: 1, count: 0 });
    const dev = await connect({ socket, id: 0 });
    const ch = new Channel(dev);
    await ch.ready();
    await until(() => kid.msgs.includes('ready'), 'child ready');
    kid.proc.kill('SIGSTOP');
    let done = 0;
    const sends = Array.from({ length: 400 }, (_, i) => ch.send(payload(5, i, 200)).then(() => done++));
    await tick(200);
    assert.ok(done < 400, `all ${done} sends completed while the receiver was stopped`);
    const stalledAt = done;
    kid.proc.kill('SIGCONT');
    await Promise.all(sends);
    await ch.flush();
    await until(() => kid.got.length === 400, 'all delivered', 30000);
    assert.deepEqual(kid.got.map(([, h]) => h), Array.from({ length: 400 }, (_, i) => sha(payload(5, i, 200))));
    assert.ok(stalledAt < 400);
    kid.proc.send('exit');
    await exited(kid.proc);
    ch.close();
    dev.close();
  });
});

test('cross-process restart: receiver killed (SIGKILL) mid-stream, gap reported exactly, stream continues to the new process', { timeout: 60000 }, async () => {
  await withBroker('16K', 2, async (socket) => {
    const dev = await connect({ socket, id: 0 });
    const ch = new Channel(dev);
    const downs: PeerDownEvent[] = [];
    ch.on('peer-down', (e) => downs.push(e));
    const kid1 = spawnPeer({ role: 'stream', socket, id: 1, count: 0 });
    await ch.ready();
    const N = 3000;
    let i = 0;
    let kid2: Kid | null = null;
    const sender = (async () => {
      for (; i < N; i++) await ch.send(payload(6, i, 400));
    })();
    await until(() => kid1.got.length > 300, 'first receiver got some');
    kid1.proc.kill('SIGKILL');
    await exited(kid1.proc);
    await until(() => downs.length > 0, 'peer-down');
    kid2 = spawnPeer({ role: 'stream', socket, id: 1, count: 0 });
    await sender;
    await ch.flush();
    const k2 = kid2;
    await until(() => k2.got.length > 0 && k2.got.at(-1)![0] === N, 'second receiver got the end', 30000);
    assert.equal(downs.length, 1, `exactly one peer-down: ${JSON.stringify(downs)}`);
    const down = downs[0]!;
    const up = k2.msgs.find((m) => typeof m === 'object' && m !== null && 'up' in m) as { up: { firstSeq: number } } | undefined;
    assert.ok(up, `no peer-up from the new receiver: ${JSON.stringify(k2.msgs)}`);
    // Everything the dead process confirmed is below the reported gap.
    const first = kid1.got.map(([s]) => s);
    assert.deepEqual(first, Array.from({ length: first.length }, (_, k) => k + 1), 'first receiver: contiguous from 1');
    if (down.unconfirmed) {
      assert.ok(first.length <= down.unconfirmed.to);
      assert.equal(up.up.firstSeq, down.unconfirmed.to + 1, 'new receiver starts right after the gap');
    } else assert.equal(up.up.firstSeq, first.length + 1);
    const second = k2.got.map(([s]) => s);
    assert.deepEqual(second, Array.from({ length: second.length }, (_, k) => up.up.firstSeq + k), 'second receiver: contiguous to the end');
    assert.equal(second.at(-1), N);
    for (const [s, h] of [...kid1.got, ...k2.got]) assert.equal(h, sha(payload(6, s - 1, 400)), `content of seq ${s}`);
    assert.ok(!first.some((s) => second.includes(s)), 'nothing delivered twice');
    k2.proc.send('exit');
    await exited(k2.proc);
    ch.close();
    dev.close();
  });
});

test('pub-sub: a subscriber cannot write into the publisher section by any route (kernel-enforced)', { timeout: 60000 }, async (t) => {
  await withBroker('64K', 2, async (socket) => {
    const dev = await connect({ socket, id: 0 });
    const pub = new Publisher(dev);
    const ring = () => sha(dev.output);
    const run = async (segv: boolean) => {
      const kid = spawnPeer({ role: 'sub-write', socket, id: 1, brokerPid: process.pid, segv });
      await until(() => pub.subscribers().includes(1), 'subscriber attached', 20000);
      pub.tryPublish(Buffer.from('do not touch'));
      await until(() => has(kid, (m) => 'results' in m || 'error' in m), 'results', 20000);
      return kid;
    };
    const kid = await run(false);
    const before = ring();
    const r = (kid.msgs.find((m) => typeof m === 'object' && m !== null && 'results' in m) as { results: Record<string, string> } | undefined)?.results;
    assert.ok(r, `child failed: ${JSON.stringify(kid.msgs)}`);
    t.diagnostic(`write routes (errno per attempt): ${JSON.stringify(r)}`);
    assert.equal(r.api, 'no write route');
    assert.match(r.perms!, /^r--s/, 'the mapping is read-only and shared');
    assert.equal(r.mprotect, String(os.constants.errno.EACCES), 'mprotect to writable is refused');
    for (const k of ['mapFiles', 'brokerFd']) {
      if (r[`${k}.open`] === '0') {
        // Opened read-write: the seal still refuses every write.
        assert.equal(r[`${k}.write`], String(os.constants.errno.EPERM), `${k}: write() refused`);
        assert.equal(r[`${k}.mmap`], String(os.constants.errno.EPERM), `${k}: writable mmap refused`);
      } else assert.notEqual(r[`${k}.open`], undefined, `${k} route was tried`);
      if (r[`${k}.mmapFromRo`] !== undefined) assert.notEqual(r[`${k}.mmapFromRo`], '0', `${k}: writable mmap of a read-only fd refused`);
    }
    assert.equal(r.ownFds, '0', 'no fd of the section stays open in the subscriber');
    kid.proc.kill();
    await exited(kid.proc);
    // The last route: a raw store through the internal view kills the writer, not the publisher.
    const kid2 = await run(true);
    const end = await exited(kid2.proc);
    assert.equal(end.signal, 'SIGSEGV');
    assert.ok(!has(kid2, (m) => 'results' in m && (m.results as Record<string, string>).segv !== undefined));
    assert.notEqual(dev.output[8192], 0xee, 'the store did not land');
    assert.equal(before.length, 64);
    pub.close();
    dev.close();
  });
});

// A publisher process racing this subscriber: 12000-byte samples in a 32 KiB
// ring, so the publisher overwrites the oldest of two or three samples with
// every publish, often while the subscriber is reading it.
const SAMPLE = 12000;

/** Run `read` against a real publisher process until `enough()`, then stop it; resolves with the last sequence number it published. */
async function racePublisher(socket: string, sub: Subscriber, enough: () => boolean, what: string): Promise<number> {
  const kid = spawnPeer({ role: 'publisher', socket, id: 0, maxSize: SAMPLE });
  await sub.ready();
  await until(() => enough() || has(kid, (m) => 'error' in m), what, 50000);
  assert.ok(!has(kid, (m) => 'error' in m), `publisher failed: ${JSON.stringify(kid.msgs)}`);
  kid.proc.send('stop');
  await until(() => has(kid, (m) => 'last' in m), 'the last sample', 20000);
  const last = (kid.msgs.find((m) => typeof m === 'object' && m !== null && 'last' in m) as { last: number }).last;
  kid.proc.send('exit');
  await exited(kid.proc);
  return last;
}

test('cross-process pub-sub: copies racing a real publisher are never torn, and every overwritten sample is counted in missed', { timeout: 90000 }, async (t) => {
  await withBroker('64K', 2, async (socket) => {
    const dev = await connect({ socket, id: 1 });
    const sub = new Subscriber(dev, { publisher: 0, mode: 'poll', highWaterMark: 4 });
    const got: Array<{ seq: number; missed: number; intact: boolean }> = [];
    // Ends when the subscriber closes.
    const reader = (async () => {
      for await (const s of sub) got.push({ seq: s.seq, missed: s.missed, intact: isPubSample(s.toBuffer()!, s.seq) });
    })();
    try {
      // Enough races seen, or a torn copy delivered (then the assertions below say so).
      const enough = () => (sub.counters.tornCopies >= 10 && got.length >= 200) || got.some((g) => !g.intact);
      const lastSeq = await racePublisher(socket, sub, enough, 'samples overwritten while being copied');
      await until(() => got.at(-1)?.seq === lastSeq, 'the last sample', 20000);
      sub.close();
      await reader;
      const c = sub.counters;
      t.diagnostic(`${lastSeq} published, ${got.length} delivered, ${c.missed} missed (${c.tornCopies} overwritten while being copied, ${c.resyncs} laps)`);
      assert.ok(c.tornCopies >= 10, 'the race was produced');
      assert.deepEqual(got.filter((g) => !g.intact).map((g) => g.seq), [], 'no torn copy is delivered');
      for (let i = 1; i < got.length; i++) assert.equal(got[i]!.seq, got[i - 1]!.seq + 1 + got[i]!.missed, `sample ${got[i]!.seq}: missed accounts for the gap`);
      const first = got[0]!.seq - got[0]!.missed;
      assert.equal(got.length + got.reduce((a, g) => a + g.missed, 0), lastSeq - first + 1, 'delivered + missed = published since attach');
      assert.equal(c.missed, got.reduce((a, g) => a + g.missed, 0), "counters.missed is the sum of the samples' missed");
      assert.equal(c.violations, 0);
    } finally {
      sub.close();
      dev.close();
    }
  });
});

test('cross-process pub-sub: a slow listener lapped by a real publisher reads -1 for overwritten samples, never torn values, and survives', { timeout: 90000 }, async (t) => {
  await withBroker('64K', 2, async (socket) => {
    const dev = await connect({ socket, id: 1 });
    const sub = new Subscriber(dev, { publisher: 0, mode: 'poll' });
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    let intact = 0;
    let overwritten = 0;
    const wrong: string[] = [];
    let kept: Sample | null = null;
    const copy = Buffer.alloc(SAMPLE);
    const digests: Array<[number, string]> = [];
    sub.on('sample', (s) => {
      // Some work before reading, while the publisher goes on.
      const end = performance.now() + 0.02;
      while (performance.now() < end);
      const a = s.readUInt32LE(0);
      const b = s.readUInt8(SAMPLE >> 1);
      const z = s.readUInt32LE(SAMPLE - 4);
      if (a === -1 || b === -1 || z === -1) overwritten++;
      else if (a !== s.seq || b !== (s.seq & 0xff) || z !== s.seq) wrong.push(`${s.seq}: ${a} ${b} ${z}`);
      else intact++;
      // Long reads (a copy, a hash): the publisher may overwrite the sample while they run.
      if (s.copyTo(copy) !== -1 && !isPubSample(copy, s.seq)) wrong.push(`${s.seq}: torn copyTo`);
      const d = s.digest('sha1');
      if (d !== null) digests.push([s.seq, d]);
      // A sample kept past its listener reads -1 once overwritten, never something else.
      if (kept) {
        const k = kept.readUInt32LE(0);
        if (k !== -1 && k !== kept.seq) wrong.push(`kept ${kept.seq}: ${k}`);
      }
      kept = s;
    });
    try {
      await racePublisher(socket, sub, () => (overwritten >= 20 && intact >= 20) || wrong.length > 0, 'reads of overwritten samples');
      t.diagnostic(`${intact} intact reads, ${overwritten} of overwritten samples, ${sub.counters.received} delivered, ${digests.length} digests`);
      const b = Buffer.alloc(SAMPLE);
      for (const [seq, d] of digests) {
        pubSample(b, seq);
        if (createHash('sha1').update(b).digest('hex') !== d) wrong.push(`${seq}: torn digest`);
      }
      assert.deepEqual(wrong, [], 'no read returned torn bytes');
      assert.equal(uncaught.length, 0, `uncaught: ${String(uncaught[0])}`);
      assert.equal(sub.counters.listenerErrors, 0);
      assert.equal(sub.counters.violations, 0);
    } finally {
      process.off('uncaughtException', onUncaught);
      sub.close();
      dev.close();
    }
  });
});
