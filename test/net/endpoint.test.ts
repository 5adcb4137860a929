// ivshmem-net endpoint scenarios on the in-process link: handshake (g.20),
// restart (g.21), ifdown/ifup (g.22), peer stuck in INIT (g.23), event-index
// suppression (g.27), back-pressure (g.28), MTU (g.29), probe (g.30).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LocalLink } from '../../src/ivshmem/local-link.js';
import {
  IVSHM_NET_STATE_INIT,
  IVSHM_NET_STATE_READY,
  IVSHM_NET_STATE_RESET,
  IVSHM_NET_STATE_RUN,
  openNet,
  type NetEndpoint,
} from '../../src/net/endpoint.js';
import { ConfigError, InvalidArgumentError } from '../../src/errors.js';
import { checkFrame, makeFrame, netLink, runningPair, turns } from '../fixtures/net-util.js';
import { until } from '../helpers/wait.js';

const T = { timeout: 20000 };

function collect(ep: NetEndpoint): Buffer[] {
  const got: Buffer[] = [];
  ep.on('frame', (f) => got.push(f));
  return got;
}

describe('g.20 handshake from cold start', T, () => {
  for (const order of ['A first', 'B first', 'simultaneous'] as const) {
    test(`${order}: both end in RUN, carrier only when both are RUN`, async () => {
      const link = netLink('64K');
      let a: NetEndpoint | undefined;
      let b: NetEndpoint | undefined;
      const carrierWhenNotBothRun: string[] = [];
      const watch = (me: () => NetEndpoint | undefined, other: () => NetEndpoint | undefined, name: string) => (on: boolean) => {
        if (on && !(me()?.localState === IVSHM_NET_STATE_RUN && link.table[other() === a ? 0 : 1] === IVSHM_NET_STATE_RUN)) carrierWhenNotBothRun.push(name);
      };
      if (order === 'A first') {
        a = openNet(link.join(0));
        a.up();
        await turns(10);
        assert.equal(a.carrier, false, 'no carrier without a peer');
        b = openNet(link.join(1));
        b.up();
      } else if (order === 'B first') {
        b = openNet(link.join(1));
        b.up();
        await turns(10);
        a = openNet(link.join(0));
        a.up();
      } else {
        const da = link.join(0);
        const db = link.join(1);
        a = openNet(da);
        b = openNet(db);
        a.up();
        b.up();
      }
      a.on('carrier', watch(() => a, () => b, 'a'));
      b.on('carrier', watch(() => b, () => a, 'b'));
      await until(() => a!.carrier && b!.carrier, 'both carriers');
      assert.equal(a.localState, IVSHM_NET_STATE_RUN);
      assert.equal(b.localState, IVSHM_NET_STATE_RUN);
      assert.deepEqual(link.table.slice(0, 2), new Uint32Array([3, 3]));
      assert.deepEqual(carrierWhenNotBothRun, []);
      // Traffic both ways.
      const ga = collect(a);
      const gb = collect(b);
      assert.ok(a.send(makeFrame(1, 100)));
      assert.ok(b.send(makeFrame(2, 200)));
      await until(() => ga.length === 1 && gb.length === 1, 'one frame each way');
      assert.equal(checkFrame(gb[0]!), 1);
      assert.equal(checkFrame(ga[0]!), 2);
    });
  }

  test('carrier stays off while the peer is only READY (its interface is down)', async () => {
    const link = netLink('64K');
    const a = openNet(link.join(0));
    const b = openNet(link.join(1));
    a.up(); // b stays down
    await until(() => a.localState === IVSHM_NET_STATE_RUN && b.localState === IVSHM_NET_STATE_READY, 'A RUN, B READY');
    await turns(10);
    assert.equal(a.carrier, false);
    assert.equal(b.carrier, false);
    assert.equal(a.send(makeFrame(0, 60)), false, 'no carrier: send refuses');
    let writable = false;
    a.on('writable', () => (writable = true));
    b.up();
    await until(() => a.carrier && b.carrier, 'both carriers after B up');
    assert.ok(writable, "'writable' follows the carrier when a send was refused");
  });
});

describe('g.21 peer restart mid-traffic', T, () => {
  test('local follows to RESET, both re-handshake, rings re-initialised, no stale frames, traffic resumes', async () => {
    const { link, a, b } = await runningPair('64K');
    const ga = collect(a);
    let states: number[] = [];
    a.on('state', (s) => states.push(s.local));
    // B sends a burst; A does not read yet is impossible to arrange in event mode, so
    // stop mid-burst: B sends, then its device leaves before A has polled.
    for (let i = 0; i < 20; i++) b.send(makeFrame(i, 300, 7));
    const devB = link.endpoints.get(1)!;
    b.close();
    devB.close(); // the peer dies: state 0, output section gone
    await until(() => a.localState <= IVSHM_NET_STATE_INIT && !a.carrier, 'A follows to RESET/INIT');
    assert.ok(states.includes(IVSHM_NET_STATE_RESET), `A wrote RESET (${states})`);
    const staleBefore = ga.length;
    // A fresh B (new output section, zeroed) joins.
    const b2 = openNet(link.join(1));
    b2.up();
    states = [];
    await until(() => a.carrier && b2.carrier, 'carrier after re-handshake');
    const localChanges = states.filter((s, i) => i === 0 || s !== states[i - 1]);
    assert.deepEqual(localChanges.filter((s) => s >= 2), [IVSHM_NET_STATE_READY, IVSHM_NET_STATE_RUN]);
    assert.equal(a.counters().txPackets >= 0, true);
    // New traffic only; the 20 old frames that A did not take are gone with the old section.
    const ga2 = collect(a);
    const gb2 = collect(b2);
    for (let i = 0; i < 10; i++) assert.ok(b2.send(makeFrame(1000 + i, 100, 9)));
    for (let i = 0; i < 10; i++) assert.ok(a.send(makeFrame(2000 + i, 100, 9)));
    await until(() => ga2.length === 10 && gb2.length === 10, 'traffic resumes');
    assert.deepEqual(ga2.map(checkFrame), Array.from({ length: 10 }, (_, i) => 1000 + i));
    assert.deepEqual(gb2.map(checkFrame), Array.from({ length: 10 }, (_, i) => 2000 + i));
    assert.ok(ga.slice(staleBefore).every((f) => f.readUInt32LE(4) === 9), 'no stale frame from the old B after the restart');
    assert.equal(a.counters().violationsTotal, 0);
  });
});

describe('g.22 ifdown/ifup forces full renegotiation on both sides', T, () => {
  test('A down: both drop to RESET, handshake again to READY/RUN; A up: both RUN', async () => {
    const { a, b, link } = await runningPair('64K');
    const ga = collect(a);
    const gb = collect(b);
    for (let i = 0; i < 5; i++) a.send(makeFrame(i, 64));
    await until(() => gb.length === 5, 'warm-up traffic');
    const bStates: number[] = [];
    b.on('state', (s) => bStates.push(s.local));
    const resetsB = b.counters().resets;
    a.down();
    assert.equal(a.localState, IVSHM_NET_STATE_RESET);
    assert.equal(a.carrier, false);
    await until(() => a.localState === IVSHM_NET_STATE_READY && b.localState === IVSHM_NET_STATE_RUN, 'A READY (down), B RUN');
    assert.ok(bStates.includes(IVSHM_NET_STATE_RESET), 'B went through RESET');
    assert.ok(bStates.includes(IVSHM_NET_STATE_READY), 'B re-formatted (READY)');
    assert.equal(b.counters().resets, resetsB + 1);
    assert.equal(b.carrier, false, 'B has no carrier while A is down');
    // Rings were re-initialised: B's TX avail index starts again from 0.
    assert.equal(b.regs().txAvailIdx, 0);
    a.up();
    await until(() => a.carrier && b.carrier, 'carrier after ifup');
    for (let i = 0; i < 5; i++) b.send(makeFrame(100 + i, 64));
    await until(() => ga.length === 5, 'traffic after renegotiation');
    assert.deepEqual(ga.map(checkFrame), [100, 101, 102, 103, 104]);
    assert.deepEqual(link.table.slice(0, 2), new Uint32Array([3, 3]));
  });
});

describe('b.4 RESET waits while the peer is still READY or RUN', T, () => {
  test('local stays RESET until the peer drops below READY, then handshakes', async () => {
    const link = netLink('64K');
    const raw = link.join(1);
    raw.setState(IVSHM_NET_STATE_RUN); // a peer left over from an earlier session
    const a = openNet(link.join(0));
    a.up();
    await turns(20);
    assert.equal(a.localState, IVSHM_NET_STATE_RESET, 'waits in RESET');
    assert.equal(link.table[0], IVSHM_NET_STATE_RESET);
    raw.setState(IVSHM_NET_STATE_RESET);
    await until(() => a.localState === IVSHM_NET_STATE_INIT, 'INIT once the peer dropped');
    raw.setState(IVSHM_NET_STATE_INIT);
    await until(() => a.localState === IVSHM_NET_STATE_READY, 'READY once the peer is INIT');
  });
});

describe('g.23 peer stuck in INIT', T, () => {
  test('local READY/RUN does nothing and stays up', async () => {
    const link = netLink('64K');
    const a = openNet(link.join(0));
    a.up();
    const raw = link.join(1); // a peer driven by hand
    raw.setState(IVSHM_NET_STATE_INIT);
    await until(() => a.localState === IVSHM_NET_STATE_READY, 'A READY');
    raw.setState(IVSHM_NET_STATE_READY);
    await until(() => a.localState === IVSHM_NET_STATE_RUN, 'A RUN');
    raw.setState(IVSHM_NET_STATE_RUN);
    await until(() => a.carrier, 'carrier');
    raw.setState(IVSHM_NET_STATE_INIT);
    await turns(20);
    assert.equal(a.localState, IVSHM_NET_STATE_RUN, 'stays RUN');
    assert.equal(link.table[0], IVSHM_NET_STATE_RUN);
    assert.equal(a.counters().violationsTotal, 0);
    assert.equal(a.counters().resets, 0);
  });
});

describe('g.27 event-index suppression', T, () => {
  test('a burst rings once; the first frame after reset always rings; no doorbell while the event index is not crossed', async () => {
    const { a, b, devA } = await runningPair('64K');
    const gb = collect(b);
    const before = a.counters().txNotify;
    const bellsBefore = devA.counters.doorbellsSent;
    for (let i = 0; i < 20; i++) assert.ok(a.send(makeFrame(i, 100)));
    await until(() => gb.length === 20, 'burst delivered');
    assert.equal(a.counters().txNotify - before, 1, 'one doorbell for the burst');
    assert.equal(devA.counters.doorbellsSent - bellsBefore, 1);
    // B re-armed (avail_event = 20): the next frame rings again.
    a.send(makeFrame(20, 100));
    await until(() => gb.length === 21, 'next frame');
    assert.equal(a.counters().txNotify - before, 2);
  });
  test('sendBatch rings at most once', async () => {
    const { a, b } = await runningPair('64K');
    const gb = collect(b);
    const before = a.counters().txNotify;
    const n = a.sendBatch(Array.from({ length: 30 }, (_, i) => makeFrame(i, 200)));
    assert.equal(n, 30);
    assert.equal(a.counters().txNotify - before, 1);
    await until(() => gb.length === 30, 'batch delivered');
  });
  test('interoperates with a peer that rings on every frame (Zephyr) and with spurious doorbells', async () => {
    const { a, b, devB } = await runningPair('64K');
    const ga = collect(a);
    for (let i = 0; i < 50; i++) {
      b.send(makeFrame(i, 80));
      devB.ring(0, 1); // Zephyr style: a doorbell per commit
      devB.ring(0, 1);
    }
    await until(() => ga.length === 50, 'all frames');
    assert.deepEqual(ga.map(checkFrame), Array.from({ length: 50 }, (_, i) => i));
    assert.equal(a.counters().violationsTotal, 0);
  });
  test('data doorbells use vector 1 and state changes vector 0 on a 2-vector link', async () => {
    const { a, b, devA, devB } = await runningPair('64K');
    const gb = collect(b);
    const v0 = devB.counters.interrupts[0]!;
    for (let i = 0; i < 10; i++) a.send(makeFrame(i, 100));
    await until(() => gb.length === 10, 'frames');
    assert.ok(devB.counters.interrupts[1]! >= 1, 'data on vector 1');
    assert.equal(devB.counters.interrupts[0], v0, 'no data doorbell on vector 0');
    const resets = b.counters().resets;
    a.down();
    await until(() => b.counters().resets > resets && devA.counters.interrupts[0]! > 0, 'state change seen');
    assert.ok(devB.counters.interrupts[0]! > v0, 'state changes on vector 0');
  });
  test('one vector for state and data works the same', async () => {
    const { a, b, devB } = await runningPair('64K', {}, 1);
    const gb = collect(b);
    for (let i = 0; i < 10; i++) a.send(makeFrame(i, 100));
    await until(() => gb.length === 10, 'frames over a 1-vector link');
    assert.equal(devB.counters.interrupts.length, 1);
    assert.ok(devB.counters.interrupts[0]! > 0);
  });
});

describe('g.28 back-pressure', T, () => {
  test('sender stops below 2 free descriptors or 2 max-size slots, asks for a completion interrupt, resumes on completions', async () => {
    const link = netLink(0x4000); // N 64, data 14592 bytes
    const a = openNet(link.join(0), { mtu: 1500 });
    const b = openNet(link.join(1), { mtu: 1500 });
    a.up();
    b.up();
    await until(() => a.carrier && b.carrier, 'carrier');
    // The send loop is synchronous, so B cannot take frames while it runs.
    let accepted = 0;
    const slot = 1536; // ivshmNetFrameSize(1500)
    while (a.send(makeFrame(accepted, 1500))) accepted++;
    const regs = a.regs();
    // Data area 14592 = 9.5 slots; the queue could hold 9 (Zephyr capacity), the headroom
    // rule stops at 8: after 8 frames only 2304 contiguous bytes remain, < 2 max slots.
    assert.equal(accepted, 8);
    assert.ok(!(regs.txFree! >= 2 && regs.fifoSpace! >= 2 * slot), `stopped without headroom: ${JSON.stringify(regs)}`);
    assert.equal(a.counters().txPause, 1);
    assert.equal(regs.txUsedEvent, regs.txLastUsed, 'used_event = last used: completion interrupt requested');
    let writable = 0;
    a.on('writable', () => writable++);
    const gb = collect(b);
    await until(() => writable > 0, "'writable' after completions");
    while (a.send(makeFrame(accepted, 1500))) accepted++;
    await until(() => gb.length === accepted || writable > 1, 'more frames flow');
  });
});

describe('g.29 MTU rules', T, () => {
  test('default min(16384, Q/16); range 68..min(65535, Q/4); change refused while up', async () => {
    for (const [size, def, max] of [
      [0x1000, 144, 576],
      [0x10000, 3672, 14688],
      [0x7f000, 16384, 65535],
    ] as const) {
      const link = netLink(size);
      const a = openNet(link.join(0));
      assert.equal(a.mtu, def, `default for 0x${size.toString(16)}`);
      assert.throws(() => a.setMtu(67), InvalidArgumentError);
      assert.throws(() => a.setMtu(max + 1), InvalidArgumentError);
      a.setMtu(max);
      assert.equal(a.mtu, max);
      a.setMtu(68);
      a.up();
      assert.throws(() => a.setMtu(100), /only change while the interface is down/);
      a.down();
      a.setMtu(100);
      assert.throws(() => openNet(link.join(1), { mtu: max + 1 }), InvalidArgumentError);
    }
  });
  test('frames outside 14..MTU+18 are refused by send() and are violations on receive', async () => {
    const { a, b, devA, link } = await runningPair('64K', { mtu: 1500 });
    assert.throws(() => a.send(Buffer.alloc(13)), InvalidArgumentError);
    assert.throws(() => a.send(Buffer.alloc(1519)), InvalidArgumentError);
    assert.ok(a.send(Buffer.alloc(1518)));
    void devA;
    void link;
    void b;
  });
  test('a frame longer than our MTU + 18 from a peer with a larger MTU is a violation; the link renegotiates', async () => {
    const link = netLink('64K');
    const a = openNet(link.join(0), { mtu: 9000 });
    const b = openNet(link.join(1), { mtu: 1500 });
    a.up();
    b.up();
    await until(() => a.carrier && b.carrier, 'carrier');
    const violations: string[] = [];
    b.on('violation', (v) => violations.push(v.reason));
    const gb = collect(b);
    assert.ok(a.send(makeFrame(1, 2000)));
    await until(() => violations.length === 1, 'violation seen');
    assert.deepEqual(violations, ['rx-frame-long']);
    assert.equal(gb.length, 0, 'not delivered');
    assert.equal(b.counters().violations['rx-frame-long'], 1);
    await until(() => a.carrier && b.carrier, 'carrier after renegotiation');
    assert.ok(a.send(makeFrame(2, 1500)));
    await until(() => gb.length === 1, 'a legal frame passes');
    assert.equal(checkFrame(gb[0]!), 2);
  });
});

describe('g.30 probe', T, () => {
  test('rejects MAX_PEERS > 2, ID > 1, zero output section, vectors other than 1 or 2, other protocols', () => {
    const three = new LocalLink({ peers: 3, outputSize: '64K', vectors: 2, protocol: 1 });
    assert.throws(() => openNet(three.join(0)), /exactly 2 peers/);
    assert.throws(() => openNet(three.join(2)), ConfigError);
    const zero = new LocalLink({ peers: 2, outputSize: 0, vectors: 2, protocol: 1 });
    assert.throws(() => openNet(zero.join(0)), /needs an output section/);
    const v3 = new LocalLink({ peers: 2, outputSize: '64K', vectors: 3, protocol: 1 });
    assert.throws(() => openNet(v3.join(0)), /2 interrupt vectors/);
    const proto = new LocalLink({ peers: 2, outputSize: '64K', vectors: 2, protocol: 0x4001 });
    assert.throws(() => openNet(proto.join(0)), /protocol 0x4001/);
    const tiny = new LocalLink({ peers: 2, outputSize: 4096, vectors: 2, protocol: 1 });
    assert.doesNotThrow(() => openNet(tiny.join(0)));
  });
});

describe('wait modes and the async iterator', T, () => {
  for (const wait of ['poll', 'hybrid'] as const) {
    test(`${wait} mode moves frames both ways and stops spinning on close`, async () => {
      const { a, b } = await runningPair('64K', { wait });
      const ga = collect(a);
      const gb = collect(b);
      for (let i = 0; i < 200; i++) {
        a.send(makeFrame(i, 300));
        b.send(makeFrame(i, 300));
        if (i % 50 === 0) await turns(2);
      }
      await until(() => ga.length === 200 && gb.length === 200, 'all frames');
      assert.deepEqual(ga.map(checkFrame), Array.from({ length: 200 }, (_, i) => i));
      a.close();
      b.close();
    });
  }
  test('frames() yields frames in order and holds RX back when the consumer is slow', async () => {
    const { a, b } = await runningPair('64K', { iteratorHighWater: 8 });
    const seen: number[] = [];
    const it = b.frames();
    for (let i = 0; i < 100; i++) {
      while (!a.send(makeFrame(i, 100))) await new Promise<void>((r) => a.once('writable', () => r()));
    }
    for await (const f of it) {
      seen.push(checkFrame(f));
      if (seen.length === 100) break;
    }
    assert.deepEqual(seen, Array.from({ length: 100 }, (_, i) => i));
  });
  test("'frame-view' lends frames in place: checked while lent, the slot is not reused before the listener returns", async () => {
    // 64K sections: a small ring, so 2000 frames reuse every slot many times.
    const { a, b } = await runningPair('64K');
    const seen: number[] = [];
    let inPeerSection = 0;
    const peerSection = (b as unknown as { queue: { peer: Uint8Array } }).queue.peer;
    b.on('frame-view', (v) => {
      if (v.buffer === peerSection.buffer) inPeerSection++;
      seen.push(checkFrame(v)); // the content hash holds while the frame is lent
    });
    for (let i = 0; i < 2000; i++) {
      while (!a.send(makeFrame(i, 60 + (i % 1400)))) await new Promise<void>((r) => a.once('writable', () => r()));
    }
    await until(() => seen.length === 2000, 'all frames');
    assert.deepEqual(seen, Array.from({ length: 2000 }, (_, i) => i));
    assert.equal(inPeerSection, 2000, 'every frame was a view of the peer section, not a copy');
    assert.equal(b.counters().rxPackets, 2000);
    a.close();
    b.close();
  });
  test("'frame' listeners next to 'frame-view' get private copies that stay valid", async () => {
    const { a, b } = await runningPair('64K');
    const copies: Buffer[] = [];
    let views = 0;
    b.on('frame-view', () => views++);
    b.on('frame', (f) => copies.push(f));
    for (let i = 0; i < 500; i++) {
      while (!a.send(makeFrame(i, 1000))) await new Promise<void>((r) => a.once('writable', () => r()));
    }
    await until(() => copies.length === 500, 'all frames');
    // Checked only now, after the ring went round several times: copies, not views.
    assert.deepEqual(copies.map(checkFrame), Array.from({ length: 500 }, (_, i) => i));
    assert.equal(views, 500);
    a.close();
    b.close();
  });
  test('counters agree: tx on one side equals rx on the other', async () => {
    const { a, b } = await runningPair('64K');
    const gb = collect(b);
    let bytes = 0;
    for (let i = 0; i < 300; i++) {
      const f = makeFrame(i, 14 + (i % 1400));
      while (!a.send(f)) await new Promise<void>((r) => a.once('writable', () => r()));
      bytes += f.byteLength;
    }
    await until(() => gb.length === 300, 'all');
    assert.equal(a.counters().txPackets, 300);
    assert.equal(b.counters().rxPackets, 300);
    assert.equal(a.counters().txBytes, bytes);
    assert.equal(b.counters().rxBytes, bytes);
  });
});

describe('lifecycle', T, () => {
  test('the device closing under the endpoint: carrier off, close event, API refuses cleanly', async () => {
    const { a, b, devA } = await runningPair('64K');
    const events: string[] = [];
    a.on('carrier', (on) => events.push(`carrier ${on}`));
    a.on('close', () => events.push('close'));
    devA.close();
    assert.deepEqual(events, ['carrier false', 'close']);
    assert.equal(a.closed, true);
    assert.throws(() => a.send(makeFrame(0, 60)), /closed/);
    await until(() => !b.carrier && b.localState <= IVSHM_NET_STATE_INIT, 'the peer follows to RESET');
  });
  test('close() writes RESET and the peer follows; the device stays usable', async () => {
    const { a, b, devA, link } = await runningPair('64K');
    a.close();
    assert.equal(link.table[0], IVSHM_NET_STATE_RESET);
    await until(() => !b.carrier, 'peer carrier off');
    const again = openNet(devA);
    again.up();
    await until(() => again.carrier && b.carrier, 'a new endpoint on the same device handshakes');
  });
});
