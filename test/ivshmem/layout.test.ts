import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidArgumentError } from '../../src/errors.js';
import { memfdName, regionLayout, resolveLinkParams } from '../../src/ivshmem/layout.js';
import { GiB, MAX_SECTION_SIZE } from '../../src/units.js';

test('sizes are rounded up to the page', () => {
  assert.equal(resolveLinkParams({ peers: 2, outputSize: '0x7F000' }).outputSize, 0x7f000);
  const p = resolveLinkParams({ peers: 2, outputSize: 5000, rwSize: '1', stateSize: 10 });
  assert.equal(p.outputSize, 8192);
  assert.equal(p.rwSize, 4096);
  assert.equal(p.stateSize, 4096);
  assert.throws(() => resolveLinkParams({ peers: 2, outputSize: '12Q' }), (e: unknown) => e instanceof InvalidArgumentError && /--output-size: "12Q" is not a size/.test(e.message));
});

test('every section is at most MAX_SECTION_SIZE (1 GiB) after rounding', () => {
  const max = resolveLinkParams({ peers: 2, outputSize: MAX_SECTION_SIZE, stateSize: '1G', rwSize: '1G' });
  assert.deepEqual([max.outputSize, max.stateSize, max.rwSize], [GiB, GiB, GiB]);
  for (const [key, flag] of [['outputSize', '--output-size'], ['stateSize', '--state-size'], ['rwSize', '--rw-size']] as const) {
    for (const v of [MAX_SECTION_SIZE + 1, '8G']) {
      assert.throws(() => resolveLinkParams({ peers: 2, outputSize: 4096, [key]: v }),
        (e: unknown) => e instanceof InvalidArgumentError && new RegExp(`^${flag}: \\d+ bytes is above the largest section size, 1 GiB`).test(e.message), `${key} ${v}`);
    }
  }
});

test('limits: 2 <= peers <= 64, 1 <= vectors <= 16, protocol 0..0xFFFF', () => {
  for (const [o, msg] of [
    [{ peers: 1 }, /--peers: "1" must be an integer in 2\.\.64/],
    [{ peers: 65 }, /--peers: "65"/],
    [{ peers: 2, vectors: 0 }, /--vectors: "0" must be an integer in 1\.\.16/],
    [{ peers: 2, vectors: 17 }, /--vectors/],
    [{ peers: 2, protocol: 0x10000 }, /--protocol/],
    [{ peers: 2, name: 'bad name' }, /"bad name" is not a valid link name/],
    [{ peers: 2, name: '../x' }, /"..\/x" is not a valid link name/],
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
