// QemuServer / `ivshm qemu-server` against our client and against a raw
// socket that checks the bytes and fds of docs/qemu.md §2 and §3 one by
// one: order, values, fd kinds, ID allocation, disconnects, sizes, cleanup.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import { test } from 'node:test';
import { InvalidArgumentError, IvshmError } from '../../../src/errors.js';
import { connectQemu, type QemuEndpoint } from '../../../src/ivshmem/qemu/client.js';
import { QemuMessageReader, type QemuMessage } from '../../../src/ivshmem/qemu/protocol.js';
import { qemuShmSize, QemuServer } from '../../../src/ivshmem/qemu/server.js';
import { closeFd, eventfdCreate, eventfdSignal, fdSize, sendMessage, shutdownSocket, unixConnect, watchReadable } from '../../../src/sys/index.js';
import { fdTarget } from '../../../src/sys/posix-shm.js';
import { PeerProc, stopAllPeers, tmpSocket } from '../../helpers/peer-proc.js';
import { until } from '../../helpers/wait.js';

async function withServer<T>(opts: { vectors?: number; size?: number | string; shm?: string }, body: (srv: QemuServer, socket: string, log: string[]) => Promise<T>): Promise<T> {
  const socket = tmpSocket('qemu-server');
  const log: string[] = [];
  const srv = new QemuServer({ socket, ...opts, log: (l) => log.push(l) });
  await srv.start();
  try {
    return await body(srv, socket, log);
  } finally {
    await srv.stop();
    assert.equal(fs.existsSync(socket), false, 'socket path removed on stop');
  }
}

/** Read `n` messages from a raw protocol socket. */
function readMessages(sock: number, n: number): Promise<QemuMessage[]> {
  const reader = new QemuMessageReader(sock);
  const got: QemuMessage[] = [];
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      w.close();
      reject(new Error(`watchdog: got ${got.length} of ${n} messages`));
    }, 10000);
    const w = watchReadable(sock, () => {
      for (;;) {
        const r = reader.next();
        if (r.kind !== 'message') break;
        got.push(r.msg);
        if (got.length === n) {
          clearTimeout(t);
          w.close();
          resolve(got);
          return;
        }
      }
    });
  });
}

const shape = (msgs: QemuMessage[]) => msgs.map((m) => [Number(m.value), m.fds.map((fd) => (fdTarget(fd) ?? '?').replace(/ \(deleted\)$/, ''))]);

test('a new client gets version, ID, shm, the others\' vectors, then its own, in that order (docs/qemu.md §2)', { timeout: 20000 }, async () => {
  await withServer({ vectors: 2, size: 1000000 }, async (srv, socket) => {
    const a = await connectQemu({ socket });
    assert.equal(a.id, 0);
    assert.equal(a.vectors, 2);
    assert.equal(a.rw.length, 1048576, '1,000,000 bytes rounded up to a power of two');
    const joined = once(a, 'peer-joined');
    const raw = unixConnect(socket, 'stream');
    const msgs = await readMessages(raw, 3 + 1 * 2 + 2);
    try {
      assert.deepEqual(shape(msgs), [
        [0, []],
        [1, []],
        [-1, ['/memfd:ivshm:qemu:shm']],
        [0, ['anon_inode:[eventfd]']],
        [0, ['anon_inode:[eventfd]']],
        [1, ['anon_inode:[eventfd]']],
        [1, ['anon_inode:[eventfd]']],
      ]);
      assert.equal(fdSize(msgs[2]!.fds[0]!), 1048576);
      assert.equal(((await joined) as [{ peer: number }])[0].peer, 1, 'the existing peer is told about the new one');
      assert.deepEqual(a.peers(), [0, 1]);
      assert.deepEqual(srv.peers(), [0, 1]);
      // The eventfd sent as "peer 0, vector 1" is the one peer 0 waits on.
      const irq = once(a, 'interrupt');
      assert.equal(eventfdSignal(msgs[4]!.fds[0]!), true);
      assert.equal(((await irq) as [{ vector: number }])[0].vector, 1);
      // And peer 0 can ring the raw client's vector 0 (its own message 6).
      assert.equal(a.ring(1, 0), true);
      assert.equal(a.ring(1, 2), false);
    } finally {
      for (const m of msgs) m.fds.forEach(closeFd);
      closeFd(raw);
      a.close();
    }
  });
});

test('IDs are monotonic and not reused at once; any byte from a client is its disconnect', { timeout: 20000 }, async () => {
  await withServer({}, async (srv, socket, log) => {
    const a = await connectQemu({ socket });
    const b = await connectQemu({ socket });
    assert.deepEqual([a.id, b.id], [0, 1]);
    const gone = once(a, 'peer-gone');
    b.close();
    assert.equal(((await gone) as [{ peer: number }])[0].peer, 1);
    const c = await connectQemu({ socket });
    assert.equal(c.id, 2, 'ID 1 is not reused right away');

    // A client that sends bytes is disconnected and the others are told.
    const raw = unixConnect(socket, 'stream');
    await until(() => srv.peers().length === 3, 'raw client admitted');
    const rawId = srv.peers()[2]!;
    assert.equal(rawId, 3);
    await until(() => a.peers().includes(3), 'peer 3 known to a');
    const gone3 = once(a, 'peer-gone');
    assert.equal(sendMessage(raw, Buffer.from('x')), 0);
    assert.equal(((await gone3) as [{ peer: number }])[0].peer, 3);
    assert.deepEqual(srv.peers(), [0, 2]);
    assert.ok(log.some((l) => /peer 3 left: sent 1 byte\(s\); clients of this protocol never send/.test(l)), log.join('\n'));
    assert.ok(log.some((l) => /peer 1 left: EOF/.test(l)), log.join('\n'));
    closeFd(raw);
    a.close();
    c.close();
  });
});

test('our client against our server: shared memory both ways, rings per vector, INT_CONTROL and one-shot', { timeout: 20000 }, async () => {
  await withServer({ vectors: 3, size: '64K' }, async (_srv, socket) => {
    const a = await connectQemu({ socket, vectors: 3 });
    const b = await connectQemu({ socket, vectors: 3 });
    try {
      await until(() => a.peers().includes(b.id), 'a knows b');
      a.output.write('from a', 0);
      b.output.write('from b', 100);
      assert.equal(b.readOutput(a.id, 0, 6).toString(), 'from a');
      assert.equal(a.readOutput(b.id, 100, 6).toString(), 'from b');
      for (const v of [2, 0, 1]) {
        const irq = once(b, 'interrupt');
        assert.equal(a.ring(b.id, v), true);
        assert.equal(((await irq) as [{ vector: number }])[0].vector, v);
      }
      // INT_CONTROL 0: dropped, counted, not replayed.
      b.intControl = false;
      a.ring(b.id, 1);
      await until(() => b.counters.suppressed === 1, 'suppressed count');
      b.intControl = true;
      b.oneShot = true;
      const irq = once(b, 'interrupt');
      a.ring(b.id, 0);
      await irq;
      assert.equal(b.intControl, false, 'one-shot clears INT_CONTROL on delivery');
      assert.deepEqual(b.counters.interrupts, [2, 1, 1]);
      assert.equal(a.counters.doorbellsSent, 5);
    } finally {
      a.close();
      b.close();
    }
  });
});

test('sizes are rounded up to a power of two of at least a page; bad options are refused', () => {
  assert.equal(qemuShmSize(1), 4096);
  assert.equal(qemuShmSize(4096), 4096);
  assert.equal(qemuShmSize(4097), 8192);
  assert.equal(qemuShmSize(3 * 1024 * 1024), 4 * 1024 * 1024);
  assert.throws(() => new QemuServer({ socket: '/tmp/x.sock', vectors: 0 }), InvalidArgumentError);
  assert.throws(() => new QemuServer({ socket: '/tmp/x.sock', vectors: 65 }), /1\.\.64/);
  assert.throws(() => new QemuServer({ socket: '/tmp/x.sock', size: 'lots' }), /^InvalidArgumentError: size: "lots" is not a size/);
  assert.throws(() => new QemuServer({ socket: '/tmp/x.sock', shm: 'a/b' }), /"a\/b" is not a valid shared memory object name/);
});

test('--shm keeps the memory in /dev/shm/NAME, refuses an existing one, and removes it on stop', { timeout: 20000 }, async () => {
  const name = `ivshm-test-qemu-${process.pid}`;
  await withServer({ shm: name, size: '8K' }, async (_srv, socket) => {
    assert.equal(fs.statSync(`/dev/shm/${name}`).size, 8192);
    const a = await connectQemu({ socket });
    a.rw.write('shm!', 0);
    assert.equal(fs.readFileSync(`/dev/shm/${name}`).subarray(0, 4).toString(), 'shm!');
    const second = new QemuServer({ socket: tmpSocket('qemu-server'), shm: name });
    await assert.rejects(second.start(), (e: unknown) => e instanceof IvshmError && /EEXIST/.test(e.message));
    await second.stop();
    a.close();
  });
  assert.equal(fs.existsSync(`/dev/shm/${name}`), false);
});

test('a second server on a live socket is refused', { timeout: 20000 }, async () => {
  await withServer({}, async (_srv, socket) => {
    const other = new QemuServer({ socket });
    await assert.rejects(other.start(), /in use by a running server/);
    await other.stop();
  });
});

test('ivshm qemu-server: logs every client with a reason; SIGTERM disconnects all and removes socket and /dev/shm object', { timeout: 30000 }, async (t) => {
  t.after(stopAllPeers);
  const socket = tmpSocket('qemu-cli');
  const name = `ivshm-test-qemu-cli-${process.pid}`;
  const srv = await PeerProc.start(socket, { args: ['qemu-server', '--socket', socket, '--size', '100K', '--vectors', '2', '--shm', name, '--json'], wait: false });
  await srv.waitFor((e) => /^listening on /.test(String(e.message)), 'listening line');
  const a: QemuEndpoint = await connectQemu({ socket });
  assert.equal(a.rw.length, 131072);
  const peer = await PeerProc.start(socket, { args: ['peer', '--qemu', '--socket', socket, '--json'] });
  assert.equal(peer.id, 1);
  const w = await peer.run('write 16 hello qemu');
  assert.equal(w.event, 'ok');
  assert.equal(a.rw.subarray(16, 26).toString(), 'hello qemu');
  a.rw.write('ABCD', 40);
  const r = await peer.run('read 777 40 4');
  assert.equal(r.text, 'ABCD', 'read PEER OFFSET LEN ignores PEER in QEMU mode');
  const irq = once(a, 'interrupt');
  const ring = await peer.run('ring 0 1');
  assert.equal(ring.delivered, true);
  assert.equal(((await irq) as [{ vector: number }])[0].vector, 1);
  const st = await peer.run('state 3');
  assert.equal(st.event, 'error');
  assert.equal(st.code, 'IVSHM_ERR_NOT_SUPPORTED');
  a.ring(1, 0);
  await peer.waitFor((e) => e.event === 'interrupt' && e.vector === 0, 'interrupt at the CLI peer');
  const closed = once(a, 'close');
  srv.child.kill('SIGTERM');
  const exit = await srv.exited;
  assert.equal(exit.code, 0);
  assert.equal(((await closed) as [{ reason: string }])[0].reason, 'server closed the connection');
  await peer.waitFor((e) => e.event === 'closed', 'CLI peer sees the server go');
  assert.equal(fs.existsSync(socket), false);
  assert.equal(fs.existsSync(`/dev/shm/${name}`), false);
  const messages = srv.events.map((e) => String(e.message ?? ''));
  assert.ok(messages.some((m) => /^peer 0 connected \(pid \d+/.test(m)), messages.join('\n'));
  assert.ok(messages.some((m) => m === 'peer 0 left: server stopping'), messages.join('\n'));
  assert.ok(messages.some((m) => m === 'peer 1 left: server stopping'), messages.join('\n'));
});

test('IDs wrap at 65536 and skip IDs still in use (docs/qemu.md §4)', { timeout: 20000 }, async () => {
  await withServer({}, async (srv, socket) => {
    const a = await connectQemu({ socket });
    assert.equal(a.id, 0);
    // Jump the allocator to the end of the 16-bit space.
    (srv as unknown as { curId: number }).curId = 0xfffe;
    const b = await connectQemu({ socket });
    const c = await connectQemu({ socket });
    const d = await connectQemu({ socket });
    assert.deepEqual([b.id, c.id, d.id], [0xfffe, 0xffff, 1], 'wraps to 0, which is taken, so 1');
    for (const ep of [a, b, c, d]) ep.close();
  });
});

test('clients coming and going (cleanly, by sending bytes, or mid-handshake) leak no fds', { timeout: 30000 }, async () => {
  const count = () => fs.readdirSync('/proc/self/fd').length;
  const before = count();
  await withServer({ vectors: 3 }, async (srv, socket) => {
    const keep = await connectQemu({ socket, vectors: 3 });
    for (let i = 0; i < 30; i++) {
      const ep = await connectQemu({ socket, vectors: 3 });
      ep.close();
      const raw = unixConnect(socket, 'stream');
      if (i % 2) sendMessage(raw, Buffer.from('bye'));
      closeFd(raw);
    }
    await until(() => srv.peers().length === 1, 'all but one gone');
    await until(() => keep.peers().length === 1, 'the kept peer saw them all go');
    keep.close();
  });
  assert.equal(count(), before);
});

test('a client that does not read gets every message, in order, once it reads (queue behind a full socket)', { timeout: 60000 }, async () => {
  const V = 64;
  await withServer({ vectors: V, size: '4K' }, async (srv, socket) => {
    const slow = unixConnect(socket, 'stream');
    await until(() => srv.peers().length === 1, 'slow client admitted');
    // 12 peers join while `slow` reads nothing: 12 x 64 fd-carrying messages
    // to it, far beyond the socket buffer (~300 messages here).
    const eps: QemuEndpoint[] = [];
    for (let i = 0; i < 12; i++) eps.push(await connectQemu({ socket, vectors: V }));
    const msgs = await readMessages(slow, 3 + V + 12 * V);
    try {
      assert.deepEqual(msgs.slice(0, 3).map((m) => Number(m.value)), [0, 0, -1]);
      assert.deepEqual(
        msgs.slice(3, 3 + V).map((m) => Number(m.value)),
        Array.from({ length: V }, () => 0),
        'own vectors first (no other peers yet)',
      );
      for (let i = 0; i < 12; i++) {
        const batch = msgs.slice(3 + V + i * V, 3 + V + (i + 1) * V);
        assert.ok(batch.every((m) => Number(m.value) === eps[i]!.id && m.fds.length === 1), `peer ${eps[i]!.id}'s ${V} vectors in a row`);
      }
      // A queued fd is still the peer's eventfd: ring peer 5 on vector 63 through it.
      const irq = once(eps[5]!, 'interrupt');
      assert.equal(eventfdSignal(msgs[3 + V + 5 * V + 63]!.fds[0]!), true);
      assert.equal(((await irq) as [{ vector: number }])[0].vector, 63);
    } finally {
      for (const m of msgs) m.fds.forEach(closeFd);
      closeFd(slow);
      for (const ep of eps) ep.close();
    }
  });
});

test('fuzz: random client behaviour never crashes the server, which ends with no peers and no leaked fds', { timeout: 120000 }, async () => {
  const fc = (await import('fast-check')).default;
  const count = () => fs.readdirSync('/proc/self/fd').length;
  const before = count();
  const action = fc.oneof(
    fc.constant({ op: 'connect' as const }),
    fc.constant({ op: 'join' as const }),
    fc.record({ op: fc.constant('close' as const), k: fc.nat(7) }),
    fc.record({ op: fc.constant('send' as const), k: fc.nat(7), bytes: fc.uint8Array({ minLength: 0, maxLength: 16 }), withFd: fc.boolean() }),
    fc.record({ op: fc.constant('shutdown' as const), k: fc.nat(7) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(action, { maxLength: 20 }), fc.integer({ min: 1, max: 4 }), async (actions, vectors) => {
      await withServer({ vectors, size: '4K' }, async (srv, socket) => {
        const raws: number[] = [];
        const eps: QemuEndpoint[] = [];
        for (const a of actions) {
          if (a.op === 'connect') raws.push(unixConnect(socket, 'stream'));
          else if (a.op === 'join') eps.push(await connectQemu({ socket, vectors }));
          else {
            const fd = raws[a.k % Math.max(raws.length, 1)];
            if (fd === undefined || fd < 0) continue;
            if (a.op === 'close') {
              closeFd(fd);
              raws[raws.indexOf(fd)] = -1;
            } else if (a.op === 'shutdown') shutdownSocket(fd);
            else {
              const extra = a.withFd ? [eventfdCreate()] : [];
              sendMessage(fd, Buffer.from(a.bytes), extra);
              extra.forEach(closeFd);
            }
          }
          await new Promise((r) => setImmediate(r));
        }
        for (const fd of raws) if (fd >= 0) closeFd(fd);
        for (const ep of eps) ep.close();
        await until(() => srv.peers().length === 0, 'every client gone');
      });
    }),
    { numRuns: 40 },
  );
  assert.equal(count(), before);
});
