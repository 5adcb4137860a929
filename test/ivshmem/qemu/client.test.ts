// connectQemu against scripted servers: a correct handshake, then every kind
// of bad input a QEMU-protocol server could send (qemu-ivshmem-notes.md §2,
// §7). A bad handshake rejects with a ProtocolError naming what was wrong; a
// bad message later closes the endpoint with the reason; nothing crashes and
// no fd leaks.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { IvshmError, ProtocolError } from '../../../src/errors.js';
import { connectQemu, type QemuEndpoint } from '../../../src/ivshmem/qemu/client.js';
import { FakeQemuServer, goodHandshake, type FakeMessage } from '../../fixtures/qemu-fake-server.js';
import { tmpSocket } from '../../helpers/peer-proc.js';
import { until } from '../../helpers/wait.js';

const openFds = (): number => fs.readdirSync('/proc/self/fd').length;

async function withFake<T>(script: FakeMessage[], body: (srv: FakeQemuServer, socket: string) => Promise<T>): Promise<T> {
  const socket = tmpSocket('qemu-client');
  const srv = new FakeQemuServer(socket, script);
  try {
    return await body(srv, socket);
  } finally {
    srv.close();
  }
}

async function refused(script: FakeMessage[], pattern: RegExp, opts: { timeoutMs?: number; vectors?: number } = {}): Promise<void> {
  const before = openFds();
  await withFake(script, async (_srv, socket) => {
    await assert.rejects(connectQemu({ socket, timeoutMs: opts.timeoutMs ?? 5000, vectors: opts.vectors }), (err: unknown) => {
      assert.ok(err instanceof IvshmError, `expected an IvshmError, got ${String(err)}`);
      assert.match(err.message, pattern);
      return true;
    });
  });
  assert.equal(openFds(), before, 'every fd received from the bad server was closed');
}

test('a correct handshake gives an endpoint: ID, vectors, the one shared region, ring to self', { timeout: 20000 }, async () => {
  await withFake([...goodHandshake(7, 3), { value: 2, fds: ['eventfd'] }], async (_srv, socket) => {
    const ep = await connectQemu({ socket, vectors: 3 });
    try {
      assert.equal(ep.id, 7);
      assert.equal(ep.vectors, 3);
      assert.equal(ep.isolated, false);
      assert.equal(ep.rw.length, 65536);
      assert.equal(ep.output, ep.rw, 'v1 has one region: output and rw are the same bytes');
      assert.deepEqual(ep.sizes, { state: 0, rw: 65536, output: 65536 });
      await until(() => ep.peers().includes(2), 'peer 2 from the message after the own vectors');
      assert.deepEqual(ep.peers(), [2, 7]);
      ep.rw.write('v1', 10);
      assert.equal(ep.readOutput(12345, 10, 2).toString(), 'v1', 'PEER is ignored by readOutput');
      assert.equal(ep.state, 0);
      assert.deepEqual(ep.stateTable(), []);
      assert.throws(() => ep.setState(1), (e: unknown) => e instanceof IvshmError && e.code === 'IVSHM_ERR_NOT_SUPPORTED');
      const irq = once(ep, 'interrupt');
      assert.equal(ep.ring(7, 2), true);
      const [ev] = (await irq) as [{ vector: number; from: number; count: number }];
      assert.deepEqual(ev, { vector: 2, from: -1, count: 1 });
      assert.equal(ep.ring(7, 3), false, 'vector 3 does not exist');
      assert.equal(ep.ring(99, 0), false, 'peer 99 is not on the server');
    } finally {
      ep.close();
    }
  });
});

test('messages split across several writes are reassembled; fds stay with their message', { timeout: 20000 }, async () => {
  const id = Buffer.alloc(8);
  id.writeBigInt64LE(5n);
  const shm = Buffer.alloc(8);
  shm.writeBigInt64LE(-1n);
  await withFake(
    [{ value: 0 }, { raw: id.subarray(0, 3) }, { raw: id.subarray(3) }, { raw: shm.subarray(0, 5) }, { raw: shm.subarray(5), fds: ['shm'] }, { value: 5, fds: ['eventfd'] }],
    async (_srv, socket) => {
      const ep = await connectQemu({ socket });
      assert.equal(ep.id, 5);
      assert.equal(ep.vectors, 1);
      ep.close();
    },
  );
});

test('bad handshakes are refused with a ProtocolError that says what was wrong', { timeout: 60000 }, async (t) => {
  const cases: [string, FakeMessage[], RegExp][] = [
    ['wrong version', [{ value: 1 }, { value: 0 }], /protocol version 1/],
    ['pre-2.5 server (ID first)', [{ value: 3 }], /protocol version 3/],
    ['version with an fd', [{ value: 0, fds: ['eventfd'] }], /version message carried an fd/],
    ['ID above 65535', [{ value: 0 }, { value: 65536 }], /peer ID 65536/],
    ['negative ID', [{ value: 0 }, { value: -1 }], /peer ID -1/],
    ['ID with an fd', [{ value: 0 }, { value: 1, fds: ['eventfd'] }], /peer-ID message carried an fd/],
    ['two fds in one message', [{ value: 0 }, { value: 1 }, { value: -1, fds: ['shm', 'shm'] }], /carried 2 fds/],
    ['shm message without fd', [{ value: 0 }, { value: 1 }, { value: -1 }], /carried no fd/],
    ['shm twice', [{ value: 0 }, { value: 1 }, { value: -1, fds: ['shm'] }, { value: -1, fds: ['shm'] }], /second shared memory/],
    ['shm fd is an eventfd', [{ value: 0 }, { value: 1 }, { value: -1, fds: ['eventfd'] }], /not a file/],
    ['vector fd is not an eventfd', [{ value: 0 }, { value: 1 }, { value: -1, fds: ['shm'] }, { value: 1, fds: ['memfd'] }], /not an eventfd/],
    ['value below -1', [{ value: 0 }, { value: 1 }, { value: -1, fds: ['shm'] }, { value: -7, fds: ['eventfd'] }], /value -7/],
    ['peer ID above 65535 with fd', [{ value: 0 }, { value: 1 }, { value: 70000, fds: ['eventfd'] }], /value 70000/],
    ['huge value', [{ value: 0 }, { value: 1 }, { value: 2n ** 62n }], /value 4611686018427387904/],
    ['more than 64 vectors for a peer', [...goodHandshake(1, 0), ...Array.from({ length: 65 }, () => ({ value: 3, fds: ['eventfd' as const] }))], /more than 64 vectors/],
    ['server disconnects this peer', [...goodHandshake(1, 0), { value: 1 }], /this peer \(1\) disconnected/],
    ['EOF during the handshake', [{ value: 0 }, { value: 1 }], /closed the connection during the handshake/],
  ];
  for (const [name, script, pattern] of cases) {
    await t.test(name, async () => {
      if (name.startsWith('EOF')) {
        // The fake server closes right after its script.
        const before = openFds();
        const socket = tmpSocket('qemu-client');
        const srv = new FakeQemuServer(socket, script);
        const p = connectQemu({ socket, timeoutMs: 5000 });
        await until(() => srv.clientConnected, 'client connected');
        srv.close();
        await assert.rejects(p, (e: unknown) => e instanceof ProtocolError && pattern.test(e.message));
        assert.equal(openFds(), before);
        return;
      }
      await refused(script, pattern);
    });
  }
  await t.test('silent server times out with IVSHM_ERR_TIMEOUT', async () => {
    await refused([{ value: 0 }], /no complete ivshmem handshake .*\(phase: id\)/, { timeoutMs: 300 });
  });
  await t.test('not a QEMU server (nobody listening)', async () => {
    await assert.rejects(connectQemu({ socket: tmpSocket('qemu-none') }), (e: unknown) => e instanceof IvshmError && /connect\(/.test(e.message));
  });
});

async function connected(srv: FakeQemuServer, socket: string): Promise<QemuEndpoint> {
  void srv;
  return connectQemu({ socket, vectors: 1 });
}

test('a bad message after the handshake closes the endpoint with the reason; nothing leaks', { timeout: 30000 }, async (t) => {
  const bad: [string, FakeMessage, RegExp][] = [
    ['two fds', { value: 4, fds: ['eventfd', 'eventfd'] }, /carried 2 fds/],
    ['ID out of range', { value: 65536 }, /value 65536/],
    ['second shm', { value: -1, fds: ['shm'] }, /second shared memory/],
    ['own disconnect', { value: 9 }, /this peer \(9\) disconnected/],
  ];
  for (const [name, msg, pattern] of bad) {
    await t.test(name, async () => {
      const before = openFds();
      await withFake(goodHandshake(9, 1), async (srv, socket) => {
        const ep = await connected(srv, socket);
        const closed = once(ep, 'close');
        srv.send({ value: 4, fds: ['eventfd'] }, msg);
        const [ev] = (await closed) as [{ reason: string }];
        assert.match(ev.reason, /^protocol error: /);
        assert.match(ev.reason, pattern);
        assert.ok(ep.protocolError instanceof ProtocolError);
        assert.equal(ep.closed, true);
        assert.equal(ep.ring(4, 0), false, 'a closed endpoint drops doorbells');
        await until(() => srv.clientGone, 'the client closed its socket');
      });
      assert.equal(openFds(), before);
    });
  }
  await t.test('a disconnect of an unknown peer is ignored and counted', async () => {
    await withFake(goodHandshake(9, 1), async (srv, socket) => {
      const ep = await connected(srv, socket);
      const joined = once(ep, 'peer-joined');
      srv.send({ value: 300 }, { value: 4, fds: ['eventfd'] });
      await joined;
      assert.equal(ep.ignoredDisconnects, 1);
      assert.equal(ep.closed, false);
      const gone = once(ep, 'peer-gone');
      srv.send({ value: 4 });
      assert.equal(((await gone) as [{ peer: number }])[0].peer, 4);
      assert.deepEqual(ep.peers(), [9]);
      ep.close();
    });
  });
  await t.test('server EOF closes the endpoint', async () => {
    await withFake(goodHandshake(9, 1), async (srv, socket) => {
      const ep = await connected(srv, socket);
      const closed = once(ep, 'close');
      srv.close();
      assert.equal(((await closed) as [{ reason: string }])[0].reason, 'server closed the connection');
      // The region was replaced by zero pages, not unmapped: a stale view cannot fault.
      assert.equal(ep.rw[0], 0);
    });
  });
});

test('fuzz: random server messages never crash the client and never leak fds', { timeout: 120000 }, async () => {
  const before = openFds();
  const fdKind = fc.constantFrom<'shm' | 'eventfd' | 'memfd'>('shm', 'eventfd', 'memfd');
  const message = fc.record({
    value: fc.oneof(fc.integer({ min: -3, max: 6 }), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })),
    fds: fc.array(fdKind, { maxLength: 2 }),
  });
  const script = fc.tuple(fc.boolean(), fc.array(message, { maxLength: 12 })).map(([good, rest]) => (good ? [...goodHandshake(1, 1), ...rest] : rest));
  await fc.assert(
    fc.asyncProperty(script, async (msgs) => {
      await withFake(msgs as FakeMessage[], async (srv, socket) => {
        let ep: QemuEndpoint | null = null;
        try {
          ep = await connectQemu({ socket, timeoutMs: 200 });
        } catch (err) {
          assert.ok(err instanceof IvshmError, `unexpected ${String(err)}`);
          return;
        }
        // Let the rest of the script arrive, then close.
        await new Promise((r) => setTimeout(r, 5));
        void srv;
        ep.close();
      });
    }),
    { numRuns: 150 },
  );
  assert.equal(openFds(), before);
});

test('joining a native ivshm broker with the QEMU client says so', { timeout: 20000 }, async () => {
  const { Broker } = await import('../../../src/ivshmem/broker.js');
  const socket = tmpSocket('qemu-native');
  const broker = new Broker({ socket, peers: 2, outputSize: '4K' });
  await broker.start();
  try {
    await assert.rejects(connectQemu({ socket }), /not a QEMU ivshmem server but probably an ivshm broker/);
  } finally {
    await broker.stop();
  }
});
