import assert from 'node:assert/strict';
import { test } from 'node:test';
import { memfdName, regionLayout } from '../../src/ivshmem/layout.js';
import { resolveLinkParams } from '../../src/ivshmem/params.js';

test('region layout follows docs/spec.md §1.1: state, rw, then output k', () => {
  const p = resolveLinkParams({ peers: 3, outputSize: '8K', rwSize: '36K', stateSize: '4K' });
  const l = regionLayout(p);
  assert.equal(l.state, 0);
  assert.equal(l.rw, 0x1000);
  assert.equal(l.output(0), 0x1000 + 0x9000);
  assert.equal(l.output(2), 0xa000 + 2 * 0x2000);
  assert.equal(l.total, 0x10000);
  assert.equal(memfdName('net0', 'out1'), 'ivshm:net0:out1');
});
