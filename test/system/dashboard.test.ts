// The dashboard end to end in a real headless Chromium (Debian's chromium
// driven by playwright-core): start a system, open the page, see the cells,
// the link graph and a counter that moves without reloading; screenshot to
// test-artifacts/dashboard.png (issue 6 item 4).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { fixtureCopy, root, startUp } from './helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

test('dashboard: cells, link graph, live counters in Chromium', { timeout: 120_000 }, async (t) => {
  if (!fs.existsSync(CHROMIUM)) return t.skip(`no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);
  const file = fixtureCopy('system-sup.yaml', { 'sup-test': 'dash-test', 'suptest-': 'dashtest-' });
  const up = await startUp(file, 'dash-test', ['--http', '127.0.0.1:0']);
  let browser: Browser | null = null;
  try {
    // playwright-core gives every launch a fresh temporary profile.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: 60_000,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    const url = await up.waitFor('the dashboard URL', (st) => st.dashboard ?? undefined);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    await up.waitFor('traffic on dashtest-l0', (st) => st.links.find((l) => l.name === 'dashtest-l0')!.totals.messages > 0);
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(url);

    // The cells, with their state.
    await page.waitForFunction(() => document.querySelectorAll('#cells tbody tr').length === 3, undefined, { timeout: 20_000 });
    const cells = await page.$$eval('#cells tbody tr', (trs) => trs.map((tr) => (tr as HTMLElement).dataset.cell));
    assert.deepEqual(cells, ['a', 'b', 'crashy']);
    await page.waitForSelector('#cells tr[data-cell="a"] [data-state="running"]');
    // The graph: a node per cell, a node per link.
    assert.equal(await page.locator('#graph-svg circle[data-cell]').count(), 3);
    assert.deepEqual(await page.$$eval('#graph-svg rect[data-link]', (r) => r.map((x) => x.getAttribute('data-link'))), ['dashtest-l0', 'dashtest-l1']);
    // Peers and their state per link.
    assert.match(await page.locator('#links tbody tr').first().innerText(), /dashtest-l0[\s\S]*0: a, state 1; 1: b, state 1/);

    // A moving counter, without reloading: the message total grows and updates keep coming.
    const read = async (): Promise<{ messages: number; updates: number }> => ({
      messages: Number(await page.locator('#total-messages').innerText()),
      updates: Number(await page.locator('#updates').innerText()),
    });
    const first = await read();
    await page.waitForFunction((n) => Number(document.getElementById('total-messages')!.textContent) > n, first.messages, { timeout: 20_000 });
    await page.waitForFunction((n) => Number(document.getElementById('updates')!.textContent) >= n + 2, first.updates, { timeout: 20_000 });
    const second = await read();
    assert.ok(second.messages > first.messages, `messages ${first.messages} -> ${second.messages}`);
    // The plots draw a line per link once there is history.
    await page.waitForFunction(() => document.querySelectorAll('#plot-messages polyline').length === 2, undefined, { timeout: 20_000 });

    // A cell stopped from the CLI shows up on the page.
    assert.equal(up.ivshm('cell', 'stop', 'b').status, 0);
    await page.waitForSelector('#cells tr[data-cell="b"] [data-state="stopped"]', { timeout: 20_000 });
    assert.equal(up.ivshm('cell', 'start', 'b').status, 0);
    await page.waitForSelector('#cells tr[data-cell="b"] [data-state="running"]', { timeout: 20_000 });
    await page.waitForTimeout(2500); // let the plots gather a few seconds for the picture

    fs.mkdirSync(path.join(root, 'test-artifacts'), { recursive: true });
    const shot = path.join(root, 'test-artifacts', 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(fs.statSync(shot).size > 10_000);
    t.diagnostic(`screenshot: ${shot}`);
  } finally {
    await browser?.close();
    await up.stop();
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
});
