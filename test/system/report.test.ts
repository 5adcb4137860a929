// Counters reported by cells are untrusted input: garbage, unknown tokens,
// links the cell is not on, negative or huge numbers and floods are ignored
// or bounded, never a crash (docs/supervisor.md, "Report socket").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { parseReport } from '../../src/system/report.js';
import { reportSocket } from '../../src/system/runtime-dir.js';
import { sendRaw, startSupervisor } from './helpers.js';

test('parseReport: shape checked, counters clamped to non-negative safe integers', () => {
  for (const bad of ['not json', '{"token": 5}', '[]', 'null', '{"token":"t","links":[]}', '{"token":"t"}']) assert.equal(parseReport(bad), null, bad);
  const r = parseReport(JSON.stringify({ token: 't', links: { l: { messages: 7.9, bytes: -5, frames: 1e300, doorbells: 'x' }, m: 3 } }))!;
  assert.equal(r.token, 't');
  assert.deepEqual([...r.links], [['l', { frames: 0, messages: 7, bytes: 0, doorbells: 0 }]]);
});

test('report socket: hostile counter reports are ignored or bounded', { timeout: 30_000 }, async () => {
  const { sup, done } = await startSupervisor('report-test', 'reptest');
  try {
    const env = sup.cells.get('a')!.spec.env;
    const token = env.IVSHM_REPORT_TOKEN!;
    assert.deepEqual(Object.keys(JSON.parse(env.IVSHM_LINKS!) as object), ['reptest-ab']);
    const sock = reportSocket(sup.dir);
    await sendRaw(sock, 'not json\n{"token": 5}\n[]\nnull\n');
    await sendRaw(sock, `${JSON.stringify({ token: 'forged', links: { 'reptest-ab': { messages: 99 } } })}\n`);
    // a is not on reptest-bc: that part is dropped; bad numbers count as 0.
    await sendRaw(sock, `${JSON.stringify({ token, links: { 'reptest-ab': { messages: 7, bytes: -5, frames: 1e300, doorbells: 'x' }, 'reptest-bc': { messages: 1000 } } })}\n`);
    // A line longer than 64 KiB closes the connection without effect.
    await sendRaw(sock, `${JSON.stringify({ token, links: { 'reptest-ab': { messages: 1 } }, pad: 'x'.repeat(70_000) })}\n`);
    await new Promise((r) => setTimeout(r, 100));
    const st = sup.status();
    assert.deepEqual(st.links.find((l) => l.name === 'reptest-ab')!.totals, { frames: 0, messages: 7, bytes: 0, doorbells: 0 });
    assert.deepEqual(st.links.find((l) => l.name === 'reptest-bc')!.totals, { frames: 0, messages: 0, bytes: 0, doorbells: 0 });
  } finally {
    await done();
  }
  assert.equal(fs.existsSync(sup.dir), false);
});
