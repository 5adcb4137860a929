// Link parameters: one function returns every problem of a parameter set
// (docs/spec.md §1.1, §1.5); library errors name the option keys.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidArgumentError } from '../../src/errors.js';
import { Broker } from '../../src/ivshmem/broker.js';
import { checkLinkParams, resolveLinkParams, type LinkParamsInput } from '../../src/ivshmem/params.js';
import { GiB, MAX_SECTION_SIZE } from '../../src/units.js';

const refused = (input: LinkParamsInput, message: string) =>
  assert.throws(() => resolveLinkParams(input), (e: unknown) => e instanceof InvalidArgumentError && e.message === message, message);

test('sizes take every form and are rounded up to the page; defaults', () => {
  assert.deepEqual(resolveLinkParams({ peers: 2, outputSize: '0x7F000' }), {
    name: 'link', peers: 2, vectors: 1, protocol: 0, stateSize: 4096, rwSize: 0, outputSize: 0x7f000,
  });
  const p = resolveLinkParams({ peers: 2, outputSize: 5000, rwSize: '1', stateSize: 0 });
  assert.deepEqual([p.outputSize, p.rwSize, p.stateSize], [8192, 4096, 4096]);
  refused({ peers: 2, outputSize: '12Q' }, 'outputSize: "12Q" is not a size; write bytes with an optional K, M or G suffix, or in hex: 64K, 1M, 0x7F000');
});

test('every section is at most MAX_SECTION_SIZE (1 GiB) after rounding', () => {
  const max = resolveLinkParams({ peers: 2, outputSize: MAX_SECTION_SIZE, stateSize: '1G', rwSize: '1G' });
  assert.deepEqual([max.outputSize, max.stateSize, max.rwSize], [GiB, GiB, GiB]);
  for (const key of ['outputSize', 'stateSize', 'rwSize'] as const) {
    refused({ peers: 2, outputSize: 4096, [key]: MAX_SECTION_SIZE + 1 }, `${key}: ${GiB + 4096} bytes is above the largest section size, 1 GiB (${GiB} bytes)`);
    refused({ peers: 2, outputSize: 4096, [key]: '8G' }, `${key}: ${8 * GiB} bytes is above the largest section size, 1 GiB (${GiB} bytes)`);
  }
});

test('limits: 2 <= peers <= 64, 1 <= vectors <= 16, protocol 0..0xFFFF, names, state entries', () => {
  for (const [o, msg] of [
    [{ peers: 1 }, 'peers: 1 is outside 2..64'],
    [{ peers: '65' }, 'peers: 65 is outside 2..64'],
    [{ peers: 'two' }, 'peers: "two" is not an integer (decimal or 0x hex)'],
    [{ peers: 2, vectors: 0 }, 'vectors: 0 is outside 1..16'],
    [{ peers: 2, vectors: 17 }, 'vectors: 17 is outside 1..16'],
    [{ peers: 2, protocol: 0x10000 }, 'protocol: 0x10000 is outside 0x0000..0xFFFF'],
    [{ peers: 2, name: 'bad name' }, `name: "bad name" is not a valid link name: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`],
    [{ peers: 2, name: '../x' }, `name: "../x" is not a valid link name: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`],
  ] as const) {
    refused({ outputSize: 4096, ...o }, msg);
  }
  assert.equal(resolveLinkParams({ peers: 64, vectors: 16, protocol: '0xffff', outputSize: 0 }).protocol, 0xffff);
  // A State Table of one page holds 1024 entries: 64 peers fit, so the rule shows with exact pages only.
  assert.deepEqual(checkLinkParams({ peers: 3, stateSize: 0, outputSize: 0 }, { pages: 'exact' }).problems, [
    { key: 'stateSize', message: '0 bytes cannot hold 3 32-bit state entries' },
  ]);
});

test('every problem at once, in key order, and none when the set is good', () => {
  const r = checkLinkParams({ name: '.', peers: 70, vectors: 'x', protocol: -1, stateSize: '1Q', rwSize: 100, outputSize: '2G' }, { pages: 'exact' });
  assert.equal(r.params, undefined);
  assert.deepEqual(r.problems.map((p) => p.key), ['name', 'peers', 'vectors', 'protocol', 'stateSize', 'rwSize', 'outputSize']);
  const ok = checkLinkParams({ peers: 2, outputSize: 8192 }, { pages: 'exact' });
  assert.deepEqual(ok.problems, []);
  assert.equal(ok.params!.outputSize, 8192);
  assert.deepEqual(checkLinkParams({ peers: 2, outputSize: 5000 }, { pages: 'exact' }).problems, [
    { key: 'outputSize', message: '5000 bytes is not a multiple of the 4096-byte page' },
  ]);
});

test('the library names option keys, never CLI flags', () => {
  assert.throws(() => new Broker({ socket: '/tmp/ivshm-never.sock', peers: 2, outputSize: '8G', vectors: 17 }), (e: unknown) =>
    e instanceof InvalidArgumentError &&
    e.message === `vectors: 17 is outside 1..16; outputSize: ${8 * GiB} bytes is above the largest section size, 1 GiB (${GiB} bytes)`);
});
