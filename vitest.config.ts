import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Greps the logs of every spawned pkm for every secret the tests saw (test/support).
    globalSetup: ['test/support/log-scan.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Crash and CLI tests spawn servers; two workers keep this 2-core machine responsive.
    maxWorkers: 2,
    pool: 'forks',
    // The stores' caches freeze every record they keep (src/store/cache.ts): a change in place
    // throws here, in tests, rather than splitting a cache from its disk.
    env: { PKM_FREEZE_RECORDS: '1' },
  },
});
