// The Chromium that test/browser/page.test.ts and bench/page-browser.ts drive with
// playwright-core. Issue 17, point 3: `npm ci && npm test` and `npm run bench` must work on a
// fresh machine with no other step, and a fresh machine of this kind has no Debian chromium.
// So: PKM_CHROMIUM if set, then Debian's /usr/bin/chromium when installed, else the Chromium
// that the devDependency @sparticuz/chromium ships inside its npm tarball, brotli-compressed:
// no download and no install script (npm 11 here skips install scripts), only an unpack.
import { execFile } from 'node:child_process';
import { constants, existsSync } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { type Browser, chromium } from 'playwright-core';
import { z } from 'zod';

const run = promisify(execFile);

export const DEBIAN_CHROMIUM = '/usr/bin/chromium';
const PACKAGE = '@sparticuz/chromium';
const UNPACK_TIMEOUT_MS = 120_000;

/**
 * What this machine needs (root, a closed network, no GPU). --no-sandbox: Chromium refuses to
 * sandbox as root. The network flags: without them Chromium opens connections at start that
 * the closed network refuses, and looks up Google's hosts. No --user-data-dir here: Playwright
 * refuses it in `args` and gives every launch() a fresh empty profile dir of its own in
 * os.tmpdir() (playwright_chromiumdev_profile-*), which it deletes on close().
 */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface ChromiumChoice {
  readonly executablePath: string;
  readonly source: 'PKM_CHROMIUM' | 'debian' | typeof PACKAGE;
}

export interface ChromiumOptions {
  /** PKM_CHROMIUM: a binary to use as is. PKM_CHROMIUM_SKIP_DEBIAN=1: take the package's. */
  readonly env?: NodeJS.ProcessEnv;
  readonly debianPath?: string;
  /** Where the package's Chromium is unpacked: node_modules/.cache/pkm-chromium by default. */
  readonly cacheDir?: string;
}

/** Which Chromium to launch: PKM_CHROMIUM, Debian's, then the npm package's (unpacked once). */
export async function findChromium(options: ChromiumOptions = {}): Promise<ChromiumChoice> {
  const env = options.env ?? process.env;
  if (env.PKM_CHROMIUM) return { executablePath: env.PKM_CHROMIUM, source: 'PKM_CHROMIUM' };
  const debian = options.debianPath ?? DEBIAN_CHROMIUM;
  if (env.PKM_CHROMIUM_SKIP_DEBIAN !== '1' && (await isExecutable(debian))) {
    return { executablePath: debian, source: 'debian' };
  }
  return { executablePath: await unpackPackaged(options.cacheDir), source: PACKAGE };
}

/** findChromium(), launched headless with CHROMIUM_ARGS. */
export async function launchChromium(
  options: ChromiumOptions = {},
): Promise<{ browser: Browser; choice: ChromiumChoice }> {
  const choice = await findChromium(options);
  const browser = await chromium.launch({
    executablePath: choice.executablePath,
    args: [...CHROMIUM_ARGS],
  });
  return { browser, choice };
}

async function isExecutable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
}

const PackageJson = z.object({ version: z.string().regex(/^[0-9A-Za-z.+-]+$/) });

/**
 * The package's own executablePath() unpacks into os.tmpdir() and reuses whatever
 * `$TMPDIR/chromium` it finds there, of any version and even half written. So it runs in a
 * child whose TMPDIR is a fresh staging dir, and that dir is renamed to one named after the
 * package's version only once complete: a run that dies while unpacking leaves nothing that
 * is reused, and when two processes unpack at once, the first rename wins and both use it.
 */
async function unpackPackaged(cacheDir?: string): Promise<string> {
  const entry = createRequire(import.meta.url).resolve(PACKAGE); // <pkg>/build/index.js
  const root = join(dirname(entry), '..');
  const { version } = PackageJson.parse(
    JSON.parse(await readFile(join(root, 'package.json'), 'utf8')),
  );
  // Beside the package in node_modules, so `npm ci` drops it along with the package.
  const cache = cacheDir ?? join(root, '..', '..', '.cache', 'pkm-chromium');
  const target = join(cache, version);
  const binary = join(target, 'chromium');
  if (existsSync(binary)) return binary;
  await mkdir(cache, { recursive: true });
  const staging = await mkdtemp(join(cache, `${version}.unpacking-`));
  try {
    const script =
      'const { default: c } = await import(process.argv[1]); process.stdout.write(await c.executablePath());';
    const { stdout } = await run(
      process.execPath,
      ['--input-type=module', '-e', script, pathToFileURL(entry).href],
      { env: { ...process.env, TMPDIR: staging }, timeout: UNPACK_TIMEOUT_MS },
    );
    if (stdout !== join(staging, 'chromium')) {
      throw new Error(`${PACKAGE} unpacked Chromium to ${stdout}, not into ${staging}`);
    }
    await rename(staging, target).catch((err: unknown) => {
      // Another process renamed its complete copy first (ENOTEMPTY/EEXIST): use that one.
      if (!existsSync(binary)) throw err;
    });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return binary;
}
