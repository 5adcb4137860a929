// The system file's schema: `ivshm check --schema` and docs/system.md list the
// same keys, defaults and required keys; the size and integer patterns are
// the ones src/units.ts parses with.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { systemJsonSchema } from '../../src/system/config-schema.js';
import { integerValue, sizeValue } from '../../src/units.js';

const root = new URL('../../../', import.meta.url).pathname;

interface Obj { properties: Record<string, { default?: unknown; anyOf?: { type?: string; pattern?: string; properties?: unknown }[] }>; required?: string[] }

/** Rows of the table under `### heading` in docs/system.md: key -> default column. */
function docTable(doc: string, heading: string): Map<string, string> {
  const lines = doc.split('\n');
  const start = lines.indexOf(`### ${heading}`);
  assert.ok(start >= 0, `docs/system.md has no section "### ${heading}"`);
  const rows = new Map<string, string>();
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith('### ') || line.startsWith('## ')) break;
    const cells = line.split('|').map((c) => c.trim());
    const key = /^`(\w+)`$/.exec(cells[1] ?? '')?.[1];
    if (key) rows.set(key, cells[3]!);
  }
  return rows;
}

test('docs/system.md lists exactly the keys of the schema, with its defaults and required keys', () => {
  const doc = fs.readFileSync(`${root}docs/system.md`, 'utf8');
  const s = systemJsonSchema() as Obj & { properties: Record<string, Obj & { items: Obj }> };
  const cells = s.properties.cells!.items;
  const links = s.properties.links!.items as Obj & { properties: { members: { items: Obj } } };
  const restart = (cells.properties.restart!.anyOf![1] as unknown) as Obj;
  const sections: [string, Obj][] = [
    ['Top level', s],
    ['`limits`', s.properties.limits!],
    ['`cells[]`', cells],
    ['`cells[].restart`', restart],
    ['`links[]`', links],
    ['`links[].members[]`', links.properties.members.items],
  ];
  for (const [heading, obj] of sections) {
    const rows = docTable(doc, heading);
    assert.deepEqual([...rows.keys()].sort(), Object.keys(obj.properties).sort(), heading);
    for (const [key, prop] of Object.entries(obj.properties)) {
      if (prop.default !== undefined) assert.equal(rows.get(key), `\`${JSON.stringify(prop.default)}\``, `${heading} ${key}`);
    }
    const required = [...rows].filter(([, d]) => d === '(required)').map(([k]) => k).sort();
    assert.deepEqual(required, [...(obj.required ?? [])].sort(), `${heading} required`);
  }
});

test('the schema gives sizes and integers the patterns the checker parses with', () => {
  const s = systemJsonSchema() as { properties: { links: { items: Obj } } };
  const size = s.properties.links.items.properties.outputSize!.anyOf!.find((a) => a.type === 'string')!;
  const int = s.properties.links.items.properties.protocol!.anyOf!.find((a) => a.type === 'string')!;
  const sizeRe = new RegExp(size.pattern!);
  const intRe = new RegExp(int.pattern!);
  for (const t of ['4096', '64K', '64KiB', '1MB', '0x7F000', '0x7f000', '512B', ' 8k ', '12Q', '1.5M', 'x', '', '64iB']) {
    assert.equal(sizeRe.test(t), sizeValue(t) !== undefined, t);
  }
  for (const t of ['1', '0x4348', '0X10', 'a', '1.0', '-1', '']) assert.equal(intRe.test(t), integerValue(t) !== undefined, t);
});
