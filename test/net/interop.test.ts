// Wire compatibility from the other end: our endpoint against an independent
// Zephyr-style peer (test/fixtures/net-zephyr-like.ts) that shares no code
// with src/net or src/virtio (g.27 "interop with a peer that rings on every
// packet"; c.2-c.7 layout).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { openNet } from '../../src/net/endpoint.js';
import { ZephyrLikePeer, zephyrLayout } from '../fixtures/net-zephyr-like.js';
import { checkFrame, makeFrame, netLink, turns } from '../fixtures/net-util.js';
import { until } from '../helpers/wait.js';
import { ivshmNetSizing } from '../../src/net/sizing.js';

describe('interop with an independent Zephyr-style peer', { timeout: 30000 }, () => {
  test('the independent sizing agrees with ours for many section sizes', () => {
    for (let L = 0x1000; L <= 0x200000; L += 0x1000) {
      const z = zephyrLayout(L);
      const s = ivshmNetSizing(L);
      assert.equal(s.num, z.N, `N for ${L}`);
      assert.equal(s.dataOffset, z.H, `H for ${L}`);
      assert.equal(s.ring.avail, z.avail);
      assert.equal(s.ring.used, z.used);
    }
  });

  for (const size of [0x1000, 0x7f000] as const) {
    for (const vectors of [1, 2]) {
      test(`0x${size.toString(16)} section, ${vectors} vector(s): handshake and 2000 frames each way`, async () => {
        const link = netLink(size, vectors);
        const mtu = Math.min(1500, ivshmNetSizing(size).maxMtu);
        const ours = openNet(link.join(0), { mtu });
        const got: Buffer[] = [];
        ours.on('frame', (f) => got.push(f));
        ours.up();
        const z = new ZephyrLikePeer(link.join(1));
        await until(() => ours.carrier && z.carrier, `carrier (ours ${ours.localState}/${ours.peerState}, zephyr ${z.state})`);
        const N = 2000;
        let sentOurs = 0;
        let sentZ = 0;
        const deadline = Date.now() + 15000; // a stall fails below with the counts, not a hang
        while ((sentOurs < N || sentZ < N) && Date.now() < deadline) {
          while (sentOurs < N && ours.send(makeFrame(sentOurs, 14 + ((sentOurs * 37) % (mtu + 5)), 1))) sentOurs++;
          while (sentZ < N && z.send(makeFrame(sentZ, 14 + ((sentZ * 53) % (mtu + 5)), 2))) sentZ++;
          await turns(2);
        }
        await until(() => got.length === N && z.received.length === N, `all frames (ours got ${got.length}, zephyr got ${z.received.length})`);
        assert.deepEqual(got.map(checkFrame), Array.from({ length: N }, (_, i) => i));
        assert.deepEqual(z.received.map(checkFrame), Array.from({ length: N }, (_, i) => i));
        assert.equal(z.errors, 0, 'the Zephyr-style peer accepted all our descriptors and completions');
        assert.equal(ours.counters().violationsTotal, 0);
        // Zephyr rings on every frame; we ring only when its avail_event asks, which it re-arms after every completion.
        assert.ok(ours.counters().txNotify <= N);
      });
    }
  }
});
