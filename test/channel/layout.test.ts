// The channel wire format of docs/spec-channel.md, pinned: every table row
// that names a constant is checked against src/channel/layout.ts, and the
// sizing table against geometry(), so the document and the code cannot drift
// apart. Then the bytes a real section holds after it starts a session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as L from '../../src/channel/layout.js';
import { Channel, Publisher, Subscriber } from '../../src/channel/index.js';
import { link } from './helpers.js';

const doc = fs.readFileSync(fileURLToPath(new URL('../../../docs/spec-channel.md', import.meta.url)), 'utf8');

/** The table rows (cells, trimmed) of section `n` ("## n. ..."). */
function rows(n: number): string[][] {
  const start = doc.indexOf(`\n## ${n}. `);
  assert.ok(start >= 0, `docs/spec-channel.md has a section ${n}`);
  const end = doc.indexOf('\n## ', start + 1);
  return doc
    .slice(start, end < 0 ? undefined : end)
    .split('\n')
    .filter((l) => l.startsWith('|') && !/^\|\s*-/.test(l))
    .map((l) => l.split('|').slice(1, -1).map((c) => c.trim()))
    .slice(1); // the header row of the first table; later header rows have no constant and are skipped below
}

const constant = (name: string): number => {
  const v = (L as unknown as Record<string, unknown>)[name];
  assert.equal(typeof v, 'number', `${name} is a number exported by src/channel/layout.ts`);
  return v as number;
};

/** Rows whose last cell names a constant (UPPER_CASE). */
const named = (n: number) => rows(n).filter((r) => /^[A-Z][A-Z0-9_]+$/.test(r.at(-1)!));

test('docs/spec-channel.md §3: header offsets and constants', () => {
  const rs = named(3);
  const offsets = rs.filter((r) => r.at(-1)!.startsWith('H_'));
  const values = rs.filter((r) => !r.at(-1)!.startsWith('H_'));
  assert.equal(offsets.length, 10, 'every header field');
  for (const [off, field, , name] of offsets) assert.equal(constant(name!) * 4, Number(off), `${field} at ${off}`);
  assert.equal(values.length, 16, 'every constant');
  for (const [what, value, name] of values) assert.equal(constant(name!), Number(value), `${what} = ${value}`);
  assert.equal(L.CH_MAGIC, 0x48435649);
  assert.equal(Buffer.from(new Uint32Array([L.CH_MAGIC]).buffer).toString('latin1'), 'IVCH');
});

test('docs/spec-channel.md §4: slot field offsets', () => {
  const rs = named(4);
  assert.equal(rs.length, 10);
  for (const [off, field, , name] of rs) assert.equal(constant(name!) * 4, Number(off!.replace('+', '')), `${field} at ${off}`);
  for (const [, , , name] of rs) assert.ok(constant(name!) * 4 < L.SLOT_SIZE);
  // Section 2's table: the slot area and the three lines.
  assert.equal(L.SLOTS_OFFSET, 0x100);
  assert.equal(L.slotIndex(3, L.S_TX_ARMED) * 4, 0x100 + 64 * 3 + 0x2c);
});

test('docs/spec-channel.md §5: record header and record types', () => {
  const rs = named(5);
  const fields = rs.filter((r) => r.at(-1)!.startsWith('R_'));
  const types = rs.filter((r) => r.at(-1)!.startsWith('REC_'));
  assert.equal(fields.length, 4);
  for (const [off, field, , name] of fields) assert.equal(constant(name!) * 4, Number(off!.replace('+', '')), `${field} at ${off}`);
  assert.equal(types.length, 5);
  for (const [value, what, , name] of types) assert.equal(constant(name!), Number(value), `${what} = ${value}`);
  assert.equal(L.recordSize(0), 16);
  assert.equal(L.recordSize(1), 32);
  assert.equal(L.recordSize(16), 32);
  assert.equal(L.recordSize(17), 48);
});

test('docs/spec-channel.md §7: need_event', () => {
  // (new - e - 1) mod 2^32 < (new - old) mod 2^32: did old -> new pass e?
  assert.equal(L.needEvent(100, 116, 100), true, 'moved past the wake point');
  assert.equal(L.needEvent(116, 116, 100), false, 'reached it, not passed');
  assert.equal(L.needEvent(50, 116, 100), false, 'the wake point was already behind');
  assert.equal(L.needEvent(0xfffffff0, 0x10, 0xfffffff0), true, 'across the 2^32 wrap');
  assert.equal(L.needEvent(100, 100, 100), false, 'no move');
});

test('docs/spec-channel.md §11: sizing table', () => {
  const rs = rows(11).filter((r) => /^0x/.test(r[0]!));
  assert.equal(rs.length, 6);
  for (const [size, peers, offset, ring, max] of rs) {
    const g = L.geometry(Number(size), Number(peers));
    assert.deepEqual([g.ringOffset, g.ringSize, g.maxPayload], [Number(offset), Number(ring), Number(max)], `${size} bytes, ${peers} peers`);
  }
  for (const m of [1, 4080, 4081, 65536, 4 << 20]) {
    const size = L.outputSizeFor(m);
    assert.ok(L.geometry(size, 2).maxPayload >= m, `outputSizeFor(${m}) carries ${m} bytes`);
    // ... and is the smallest that does: one byte less halves the ring, or leaves none.
    let smaller = -1;
    try {
      smaller = L.geometry(size - 1, 2).maxPayload;
    } catch {
      /* too small for any ring */
    }
    assert.ok(smaller < m, `outputSizeFor(${m}) = ${size} is the smallest`);
  }
  assert.throws(() => L.geometry(0x1000 + 4095, 2), /too small/);
});

test('a fresh section holds what §3 and §6 say, byte for byte', async () => {
  const l = link(3, '16K');
  const ch = new Channel(l.join(0), { peer: 1 });
  const pub = new Publisher(l.join(1));
  const sub = new Subscriber(l.join(2), { publisher: 1 });
  for (const [id, role] of [
    [0, L.CH_ROLE_CHANNEL],
    [1, L.CH_ROLE_PUBLISHER],
    [2, L.CH_ROLE_NONE],
  ] as const) {
    const out = l.outputs.get(id)!;
    const u = (off: number) => out.readUInt32LE(off);
    assert.equal(u(0x00), 0x48435649, 'magic');
    assert.equal(u(0x04), 1, 'version');
    const session = u(0x08);
    assert.ok(session !== 0 && (session & 0xff) === 0, 'session: 24 random bits, shifted by 8');
    assert.equal(l.table[id], (session | 1) >>> 0, 'STATE = session | READY');
    assert.equal(u(0x0c), 0x1000, 'ring offset');
    assert.equal(u(0x10), 0x2000, 'ring size');
    assert.equal(u(0x14), role, 'role');
    assert.equal(u(0x18), 3, 'slots');
    assert.equal(u(0x1c), 0x2000 / 2 - 16, 'max payload');
    assert.equal(u(0x40), 0, 'tail');
    assert.equal(u(0x80), 0, 'head');
    for (let off = 0x20; off < 0x100; off += 4) if (off !== 0x40 && off !== 0x80) assert.equal(u(off), 0, `reserved word at 0x${off.toString(16)}`);
  }
  // A sample record at position 0 of the publisher's ring (§5, §10).
  assert.equal(pub.tryPublish(Buffer.from('hello')), 1);
  const out1 = l.outputs.get(1)!;
  assert.deepEqual([0, 4, 8, 12].map((o) => out1.readUInt32LE(0x1000 + o)), [5, L.REC_SAMPLE, 1, 0]);
  assert.equal(out1.toString('latin1', 0x1010, 0x1015), 'hello');
  assert.equal(out1.readUInt32LE(0x40), 32, 'tail after one record of 5 bytes');
  ch.close();
  pub.close();
  sub.close();
});
