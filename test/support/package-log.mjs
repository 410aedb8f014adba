// Loaded with `node --import` (PKM_TEST_PACKAGE_LOG=FILE): appends every bare specifier the
// process imports (`express`, `ethers/address`), from our code and from the packages' own ESM
// imports alike, to FILE, one per line, through a resolve hook (node:module register).
// test/e2e/start-loads.test.ts reads it to see what a command loaded.
import { register } from 'node:module';

register(new URL('./package-log-hooks.mjs', import.meta.url), {
  data: { file: process.env.PKM_TEST_PACKAGE_LOG },
});
