// Which Chromium the browser test and bench/page-browser launch (test/support/chromium.ts):
// Debian's first, the npm package's where Debian's is absent, unpacked once and whole.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { findChromium } from './chromium.js';

const run = promisify(execFile);
const dirs: string[] = [];

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pkm-chromium-test-'));
  dirs.push(dir);
  return dir;
}

describe('choosing a Chromium', () => {
  it("takes Debian's when it is installed, and PKM_CHROMIUM over it", async () => {
    const cacheDir = await tempDir();
    // Any executable stands in for /usr/bin/chromium: the chooser only asks whether it runs.
    const debianPath = process.execPath;
    expect(await findChromium({ env: {}, debianPath, cacheDir })).toEqual({
      executablePath: debianPath,
      source: 'debian',
    });
    const forced = { PKM_CHROMIUM: '/opt/my/chrome' };
    expect(await findChromium({ env: forced, debianPath, cacheDir })).toEqual({
      executablePath: '/opt/my/chrome',
      source: 'PKM_CHROMIUM',
    });
    expect(await readdir(cacheDir)).toEqual([]); // nothing unpacked while Debian's is there
  });

  it("unpacks the package's Chromium once, whole, when two runs ask at the same time", async () => {
    const cacheDir = await tempDir();
    const options = { env: {}, debianPath: join(cacheDir, 'no-debian-chromium'), cacheDir };
    const [a, b] = await Promise.all([findChromium(options), findChromium(options)]);
    expect(a?.source).toBe('@sparticuz/chromium');
    expect(b?.executablePath).toBe(a?.executablePath);
    const entries = await readdir(cacheDir);
    expect(entries).toHaveLength(1); // one versioned dir, no staging dir left behind
    const binary = a?.executablePath ?? '';
    expect(binary).toBe(join(cacheDir, entries[0] ?? '', 'chromium'));
    const { stdout } = await run(binary, ['--version'], { timeout: 30_000 });
    expect(stdout).toMatch(/^Chromium \d+\./);
    // A later run told to skip an installed Debian chromium (how the fallback is tried on a
    // machine that has one) reuses the unpacked copy instead of unpacking again.
    const before = await stat(binary);
    const again = await findChromium({
      env: { PKM_CHROMIUM_SKIP_DEBIAN: '1' },
      debianPath: process.execPath,
      cacheDir,
    });
    expect(again).toEqual({ executablePath: binary, source: '@sparticuz/chromium' });
    expect((await stat(binary)).mtimeMs).toBe(before.mtimeMs);
  }, 120_000);
});
