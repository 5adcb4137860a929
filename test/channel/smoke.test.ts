import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalLink } from '../../src/ivshmem/local-link.js';
import { Channel } from '../../src/channel/channel.js';

test('smoke', { timeout: 10000 }, async () => {
  const link = new LocalLink({ peers: 2, outputSize: '64K', vectors: 2, protocol: 0x4348 });
  const a = new Channel(link.join(0));
  const b = new Channel(link.join(1));
  await Promise.all([a.ready(), b.ready()]);
  const got: string[] = [];
  b.on('message', (m) => got.push(m.data.toString()));
  for (let i = 0; i < 1000; i++) await a.send(Buffer.from(`m${i}`));
  await a.flush();
  assert.equal(got.length, 1000);
  assert.equal(got[999], 'm999');
  a.close();
  b.close();
});
