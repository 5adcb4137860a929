import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidArgumentError } from '../../src/errors.js';
import { memfdName, parseSize, regionLayout, resolveLinkParams } from '../../src/ivshmem/layout.js';

test('sizes take K/M/G suffixes and hex, and are rounded up to the page', () => {
  assert.equal(parseSize('4096', 'x'), 4096);
  assert.equal(parseSize('64K', 'x'), 65536);
  assert.equal(parseSize('1M', 'x'), 1048576);
  assert.equal(parseSize('0x7f000', 'x'), 0x7f000);
  const p = resolveLinkParams({ peers: 2, outputSize: 5000, rwSize: '1', stateSize: 10 });
  assert.equal(p.outputSize, 8192);
  assert.equal(p.rwSize, 4096);
  assert.equal(p.stateSize, 4096);
  assert.throws(() => parseSize('12Q', '--output-size'), (e: unknown) => e instanceof InvalidArgumentError && /--output-size: "12Q" is not a size/.test(e.message));
});

test('limits: 2 <= peers <= 64, 1 <= vectors <= 16, protocol 0..0xFFFF', () => {
  for (const [o, msg] of [
    [{ peers: 1 }, /--peers: "1" must be an integer in 2\.\.64/],
    [{ peers: 65 }, /--peers: "65"/],
    [{ peers: 2, vectors: 0 }, /--vectors: "0" must be an integer in 1\.\.16/],
    [{ peers: 2, vectors: 17 }, /--vectors/],
    [{ peers: 2, protocol: 0x10000 }, /--protocol/],
    [{ peers: 2, name: 'bad name' }, /link name "bad name"/],
  ] as const) {
    assert.throws(() => resolveLinkParams({ outputSize: 4096, ...o }), (e: unknown) => e instanceof InvalidArgumentError && msg.test(e.message));
  }
  assert.equal(resolveLinkParams({ peers: 64, vectors: 16, protocol: '0xffff', outputSize: 0 }).protocol, 0xffff);
});

test('region layout follows ivshmem-v2-notes.md a.6: state, rw, then output k', () => {
  const p = resolveLinkParams({ peers: 3, outputSize: '8K', rwSize: '36K', stateSize: '4K' });
  const l = regionLayout(p);
  assert.equal(l.state, 0);
  assert.equal(l.rw, 0x1000);
  assert.equal(l.output(0), 0x1000 + 0x9000);
  assert.equal(l.output(2), 0xa000 + 2 * 0x2000);
  assert.equal(l.total, 0x10000);
  assert.equal(memfdName('net0', 'out1'), 'ivshm:net0:out1');
});
