// bench/page-browser: /assignments with 10,000 pods in headless chromium (playwright-core; the
// same Chromium as the browser test, chosen by test/support/chromium.ts),
// from navigation start to the load event, against the default first page (500 pods) of the
// same server in the same run. Target: 10,000 pods load in under 2 s.
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { GroupCommitter } from '../src/allocation/group-commit.js';
import { createLogger } from '../src/log.js';
import { composeApp } from '../src/server/root.js';
import { Store } from '../src/store/store.js';
import { launchChromium } from '../test/support/chromium.js';
import { fillAllocatedPods } from './fill.js';
import { report } from './lib.js';

const RUNS = 5;

async function loadMs(browser: Browser, url: string): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const page = await browser.newPage();
    await page.goto(url, { waitUntil: 'load' });
    times.push(
      Number(
        await page.evaluate(
          '(() => { const n = performance.getEntriesByType("navigation")[0]; return n.loadEventEnd - n.startTime; })()',
        ),
      ),
    );
    await page.close();
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] ?? Number.NaN;
}

export async function benchPageInBrowser(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pkm-bench-page-'));
  const store = await Store.open(dir, { kek: async () => Buffer.alloc(32, 0x70) });
  await fillAllocatedPods(store, 10_000, 4);
  const { app } = composeApp({
    store,
    group: GroupCommitter.of(store),
    log: createLogger('silent'),
    config: { reuseDelayMs: 20 * 60_000, maxKeysPerPod: 64, maxTotalKeys: undefined },
  });
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/assignments`;
  const { browser, choice } = await launchChromium();
  // On stderr: stdout carries only the JSON figures. Which Chromium ran says what they measure.
  process.stderr.write(`page-browser: chromium ${browser.version()} (${choice.source})\n`);
  try {
    const first = await loadMs(browser, base);
    const all = await loadMs(browser, `${base}?limit=10000`);
    report({ name: 'page_in_browser.first_500_pods', value: Math.round(first), unit: 'ms' });
    report({
      name: 'page_in_browser.all_10000_pods',
      value: Math.round(all),
      unit: 'ms',
      baseline: Math.round(first),
      ratio: Number((all / first).toFixed(1)),
      target: '< 2000 ms',
    });
  } finally {
    await browser.close();
    server.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}
