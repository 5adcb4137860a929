// The one line reader under the control and report sockets: lines split
// across and within chunks, and a bound on a line's length however it arrives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lineSplitter } from '../../src/system/line-server.js';

test('line splitter: lines across chunks and several in one chunk', () => {
  const lines: string[] = [];
  const feed = lineSplitter((l) => lines.push(l), 10);
  assert.equal(feed('ab'), true);
  assert.equal(feed('c\nde\n\nf'), true);
  assert.equal(feed('g\n'), true);
  assert.deepEqual(lines, ['abc', 'de', '', 'fg']);
});

test('line splitter: a line longer than the bound stops it, in one chunk or in several', () => {
  for (const chunks of [['0123456789x\nok\n'], ['01234', '56789x', '\nok\n'], ['0123456789x']]) {
    const lines: string[] = [];
    const feed = lineSplitter((l) => lines.push(l), 10);
    const results = chunks.map((c) => feed(c));
    assert.equal(results.at(-1), false, JSON.stringify(chunks));
    assert.equal(feed('more\n'), false, 'nothing more after that');
    assert.deepEqual(lines, [], JSON.stringify(chunks));
  }
  const lines: string[] = [];
  const feed = lineSplitter((l) => lines.push(l), 10);
  assert.equal(feed('0123456789\n'), true, 'exactly the bound is allowed');
  assert.deepEqual(lines, ['0123456789']);
});
