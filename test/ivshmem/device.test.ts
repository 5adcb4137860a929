// The peer validates what the broker sends before mapping anything: a broker
// (or anything listening on its socket path) that announces sections above
// the largest size gets a ProtocolError, never a process abort (docs/spec.md
// §1.5, §2.2).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProtocolError } from '../../src/errors.js';
import { connect } from '../../src/ivshmem/device.js';
import { CONTROL_VERSION, decodeMessage, encodeInit, encodeSynced, initFdCount, MSG, type Init } from '../../src/ivshmem/control-protocol.js';
import { closeFd, eventfdCreate, memfdCreate, receiveMessage, sendMessage, unixAccept, unixListen, watchReadable } from '../../src/sys/index.js';
import { GiB, PAGE } from '../../src/units.js';
import { tmpSocket } from '../helpers/peer-proc.js';

/** A one-shot fake broker: answers HELLO with `init` and fds of the sizes it claims. */
function fakeBroker(socket: string, init: Omit<Init, 'version' | 'id' | 'name'>): { close(): void } {
  const listenFd = unixListen(socket, 'seqpacket');
  const open: number[] = [listenFd];
  const watches = [
    watchReadable(listenFd, () => {
      const fd = unixAccept(listenFd);
      if (fd < 0) return;
      open.push(fd);
      watches.push(
        watchReadable(fd, () => {
          const r = receiveMessage(fd);
          if (r.kind !== 'message') return;
          const type = decodeMessage(r.data).type;
          if (type === MSG.MAPPED) sendMessage(fd, encodeSynced());
          if (type !== MSG.HELLO) return;
          // Real memfds as large as announced (sparse: nothing is touched).
          const section = (n: number) => memfdCreate('ivshm:fake', Math.max(n, PAGE));
          const fds = [section(init.stateSize), section(init.outputSize), eventfdCreate()];
          for (let v = 0; v < init.vectors; v++) fds.push(eventfdCreate());
          if (init.rwSize > 0) fds.push(section(init.rwSize));
          assert.equal(fds.length, initFdCount(init.vectors, init.rwSize));
          sendMessage(fd, encodeInit({ version: CONTROL_VERSION, id: 0, name: 'fake', ...init }), fds);
          for (const f of fds) closeFd(f);
        }),
      );
    }),
  ];
  return {
    close() {
      for (const w of watches) w.close();
      for (const f of open) closeFd(f);
    },
  };
}

const base = { peers: 2, vectors: 1, protocol: 0, stateSize: PAGE, rwSize: 0, outputSize: PAGE };

for (const [key, what] of [['stateSize', 'state'], ['rwSize', 'R/W'], ['outputSize', 'output']] as const) {
  test(`INIT announcing a ${what} section above 1 GiB is refused before mapping`, async () => {
    const socket = tmpSocket('fake-init');
    const b = fakeBroker(socket, { ...base, [key]: GiB + PAGE });
    try {
      await assert.rejects(connect({ socket, timeoutMs: 10000 }), (e: unknown) =>
        e instanceof ProtocolError && e.message === `broker sent a bad INIT: ${key}: ${GiB + PAGE} bytes is above the largest section size, 1 GiB (${GiB} bytes)`);
    } finally {
      b.close();
    }
  });
}

test('INIT with bad link parameters is refused with every problem', async () => {
  const socket = tmpSocket('fake-init');
  const b = fakeBroker(socket, { ...base, peers: 65, vectors: 0, outputSize: 100 });
  try {
    await assert.rejects(connect({ socket, timeoutMs: 10000 }), (e: unknown) =>
      e instanceof ProtocolError &&
      e.message === 'broker sent a bad INIT: peers: 65 is outside 2..64; vectors: 0 is outside 1..16; outputSize: 100 bytes is not a multiple of the 4096-byte page');
  } finally {
    b.close();
  }
});

test('INIT with 1 GiB sections (the largest) is mapped', async () => {
  const socket = tmpSocket('fake-init');
  const b = fakeBroker(socket, { ...base, stateSize: GiB, rwSize: GiB, outputSize: GiB });
  try {
    const dev = await connect({ socket, timeoutMs: 10000 });
    assert.deepEqual(dev.sizes, { state: GiB, rw: GiB, output: GiB });
    assert.equal(dev.rw!.length, GiB);
    dev.close();
  } finally {
    b.close();
  }
});
