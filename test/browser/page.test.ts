// /assignments in a real browser: Debian's chromium, or the npm package's where Debian's is not
// installed (test/support/chromium.ts), driven by playwright-core. The page must
// render its totals and table, filter rows as the user types, show a hostile pod name as
// text, load 10,000 pods, fetch nothing from elsewhere, and fit a phone's width.
import { once } from 'node:events';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fillAllocatedPods } from '../../bench/fill.js';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { createLogger } from '../../src/log.js';
import { composeApp } from '../../src/server/root.js';
import type { KeyRecord } from '../../src/store/records.js';
import { Store } from '../../src/store/store.js';
import { MINUTE, testKek } from '../helpers.js';
import { launchChromium } from '../support/chromium.js';

const HOSTILE = '<b id="injected">bold</b><img src=x onerror="window.pwned=1">';
const ARTIFACTS = join(process.cwd(), 'test-artifacts');

let browser: Browser;
let store: Store;
let dir: string | undefined;
let listening: Server | undefined;
let url = '';

beforeAll(async () => {
  const launched = await launchChromium();
  browser = launched.browser;
  const { source, executablePath } = launched.choice;
  process.stdout.write(`chromium ${browser.version()} (${source}: ${executablePath})\n`);
  dir = await mkdtemp(join(tmpdir(), 'pkm-browser-'));
  store = await Store.open(dir, { kek: testKek });
  await fillAllocatedPods(store, 10_000, 4);
  // A pod name the API would refuse, written straight into the store: the page must still
  // show it as text (escaping is its own line of defence, not the name check's).
  const pubkey = `0x${'cd'.repeat(48)}`;
  const record: KeyRecord = {
    pubkey,
    secret: store.secrets.seal(new Uint8Array(32).fill(1), pubkey),
    state: 'allocated',
    pod: HOSTILE,
    since: 1,
    createdAt: 1,
    history: [{ at: 1, event: 'created' }],
  };
  await store.commit({
    keys: [{ after: record }],
    pods: [{ name: HOSTILE, after: { keys: [pubkey], cooling: [], since: 1 } }],
  });
  const { app } = composeApp({
    store,
    group: GroupCommitter.of(store),
    log: createLogger('silent'),
    config: { reuseDelayMs: 20 * MINUTE, maxKeysPerPod: 64, maxTotalKeys: undefined },
  });
  listening = app.listen(0, '127.0.0.1');
  await once(listening, 'listening');
  url = `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;
}, 120_000);

// Set up once for the file (10,000 pods take a while), so stopped here rather than per test.
afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => listening?.close(resolve));
  await store?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function open(path: string, width = 1280): Promise<{ page: Page; requests: string[] }> {
  const page = await browser.newPage({ viewport: { width, height: 900 } });
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(`${url}${path}`, { waitUntil: 'load' });
  expect(errors).toEqual([]); // no script error, no CSP violation
  return { page, requests };
}

describe('/assignments in chromium', () => {
  it('renders the totals and the first 500 pods, and fetches nothing from elsewhere', async () => {
    const { page, requests } = await open('/assignments');
    const total = await page.textContent('.totals [data-state="pods"]');
    expect(total).toBe('10001');
    expect(await page.textContent('.totals [data-state="allocated"]')).toBe('40001');
    expect(await page.locator('#pods tbody tr').count()).toBe(500);
    expect(await page.textContent('#shown')).toBe('500');
    expect(requests.every((u) => u.startsWith(url))).toBe(true);
    expect(requests).toHaveLength(1); // the page itself: no CDN, no fonts, no images
    await mkdir(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, 'assignments.png');
    await page.screenshot({ path: shot });
    process.stdout.write(`screenshot of /assignments: ${shot}\n`);
    await page.close();
  });

  it('narrows the rows as the user types, by pod name or pubkey prefix', async () => {
    const { page } = await open('/assignments');
    await page.fill('#q', 'validator-0001');
    expect(await page.locator('#pods tbody tr:not([hidden])').count()).toBe(10); // 00010..00019
    expect(await page.textContent('#shown')).toBe('10');
    const keys = await page.locator('#pods tbody tr:not([hidden]) td.keys').first().textContent();
    await page.fill('#q', (keys ?? '').slice(0, 20));
    expect(await page.locator('#pods tbody tr:not([hidden])').count()).toBe(1);
    await page.fill('#q', 'no-such-pod');
    expect(await page.isVisible('#none')).toBe(true);
    await page.close();
  });

  it('shows a pod name made of HTML as text', async () => {
    const { page } = await open(`/assignments?q=${encodeURIComponent('<b')}`);
    expect(await page.locator('#injected').count()).toBe(0);
    expect(await page.evaluate('typeof window.pwned')).toBe('undefined');
    const cell = page.locator('#pods tbody tr td').first();
    expect(await cell.textContent()).toBe(HOSTILE);
    expect(await page.inputValue('#q')).toBe('<b');
    await page.close();
  });

  it('loads all 10,000 pods on one page', async () => {
    const { page } = await open('/assignments?limit=10000');
    expect(await page.locator('#pods tbody tr').count()).toBe(10_000);
    const timing = Number(
      await page.evaluate(
        '(() => { const n = performance.getEntriesByType("navigation")[0]; return n.loadEventEnd - n.startTime; })()',
      ),
    );
    process.stdout.write(`10,000 pods: load event after ${Math.round(timing)} ms\n`);
    await page.close();
  });

  it('is readable on a phone: nothing wider than the screen', async () => {
    const { page } = await open('/assignments', 375);
    const widths = (await page.evaluate(
      '({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth })',
    )) as { scroll: number; client: number };
    expect(widths.scroll).toBeLessThanOrEqual(widths.client);
    await page.close();
  });
});
