// Units and names (src/units.ts): one way to write a size, an integer and a
// name, one page rule and one largest section (docs/spec.md §1.5).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidArgumentError } from '../src/errors.js';
import {
  checkInterfaceName,
  checkName,
  GiB,
  integerValue,
  isInterfaceName,
  isName,
  MAX_SECTION_SIZE,
  PAGE,
  pageRound,
  parseInteger,
  parseSize,
  sectionSizeProblem,
  sizeValue,
} from '../src/units.js';

test('sizes: decimal, hex in either case, K/M/G with optional B or iB, a bare B', () => {
  const cases: [string | number, number][] = [
    ['4096', 4096], [4096, 4096], ['64K', 65536], ['64k', 65536], ['64KB', 65536], ['64KiB', 65536], ['64 kib', 65536],
    ['1M', 1 << 20], ['1MiB', 1 << 20], ['2G', 2 * GiB], ['512B', 512], ['512b', 512],
    ['0x7f000', 0x7f000], ['0x7F000', 0x7f000], ['0X7F000', 0x7f000], ['0x10K', 16 * 1024], [' 8K ', 8192], ['0', 0],
  ];
  for (const [text, bytes] of cases) assert.equal(parseSize(text, 'x'), bytes, String(text));
  for (const bad of ['', 'K', '12Q', '1.5M', '-1', '64iB', '1T', '0x', 'x10', '1e3', -1, 1.5, Number.MAX_SAFE_INTEGER + 1]) {
    assert.equal(sizeValue(bad), undefined, String(bad));
    assert.throws(() => parseSize(bad, 'outputSize'), (e: unknown) => e instanceof InvalidArgumentError && /^outputSize: .* is not a size/.test(e.message));
  }
  // Not a size at all (the schema passes anything here).
  for (const bad of [null, undefined, {}, [], true]) assert.equal(sizeValue(bad), undefined);
  // Safe integers only: a size so large it loses precision is refused.
  assert.equal(sizeValue('9999999999999G'), undefined);
});

test('integers: decimal or 0x hex within a range, the message names what', () => {
  assert.equal(parseInteger('0x4001', 0, 0xffff, 'protocol'), 0x4001);
  assert.equal(parseInteger(16, 1, 16, 'vectors'), 16);
  assert.equal(integerValue('0X1F'), 31);
  for (const bad of ['17', '0', 'two', '1.0', '']) {
    assert.throws(() => parseInteger(bad, 1, 16, 'vectors'), (e: unknown) => e instanceof InvalidArgumentError && /^vectors: (".*" is not an integer \(decimal or 0x hex\)|\d+ is outside 1\.\.16)$/.test(e.message));
  }
});

test('one page rule and one largest section size: 1 GiB passes, a page more does not', () => {
  assert.equal(PAGE, 4096);
  assert.equal(pageRound(1), PAGE);
  assert.equal(pageRound(PAGE), PAGE);
  assert.equal(MAX_SECTION_SIZE, GiB);
  assert.equal(sectionSizeProblem(MAX_SECTION_SIZE), undefined);
  assert.equal(sectionSizeProblem(pageRound(MAX_SECTION_SIZE + 1)), `${GiB + PAGE} bytes is above the largest section size, 1 GiB (${GiB} bytes)`);
  assert.match(sectionSizeProblem(8 * GiB)!, /above the largest section size/);
});

test('names: one rule for every name that becomes a path or an OS name', () => {
  for (const good of ['a', 'net0', 'A.b_c-d', '0', 'x'.repeat(64)]) assert.ok(isName(good), good);
  for (const bad of ['', '.', '..', '../../tmp/v', 'a/b', '/abs', '.hidden', '-x', '_x', 'a b', 'a:b', 'x'.repeat(65), 'ü', 'a\n']) {
    assert.ok(!isName(bad), bad);
    assert.throws(() => checkName(bad, 'system'), (e: unknown) => e instanceof InvalidArgumentError && e.message.startsWith(`${JSON.stringify(bad)} is not a valid system name: use 1-64 letters`));
  }
  assert.equal(checkName('net0', 'link'), 'net0');
});

test('interface names: the same alphabet within IFNAMSIZ (15 bytes and the NUL)', () => {
  assert.ok(isInterfaceName('x'.repeat(15)));
  for (const bad of ['x'.repeat(16), '', '.', '..', 'a/b', 'a:0', 'eth 0', 'a%d']) {
    assert.ok(!isInterfaceName(bad), bad);
    assert.throws(() => checkInterfaceName(bad), (e: unknown) => e instanceof InvalidArgumentError && /is not a valid interface name: use 1-15 letters/.test(e.message));
  }
});
