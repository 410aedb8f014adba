// `npm run bench`: every benchmark, one JSON figure per line on stdout.
// Names on the command line pick benchmarks: `npm run bench -- allocate`.
import { benchAllocate, benchAssignmentsPage } from './allocate.js';
import { benchAllocatePg } from './allocate-pg.js';
import { benchAllocator } from './allocator.js';
import { benchAuthOverhead } from './auth.js';
import { benchImport } from './import.js';
import { benchKeystores } from './keystores.js';
import { benchNewKeys } from './new-keys.js';
import { benchPageInBrowser } from './page-browser.js';
import { benchRecordCache } from './record-cache.js';
import { benchScale } from './scale.js';
import { benchTimeToValidating } from './time-to-validating.js';

const BENCHES: Record<string, () => Promise<void>> = {
  allocate: benchAllocate,
  'allocate-pg': benchAllocatePg,
  allocator: benchAllocator,
  auth: benchAuthOverhead,
  assignments: benchAssignmentsPage,
  import: benchImport,
  keystores: benchKeystores,
  'new-keys': benchNewKeys,
  'page-browser': benchPageInBrowser,
  'record-cache': benchRecordCache,
  scale: benchScale,
  'time-to-validating': benchTimeToValidating,
};

const picked = process.argv.slice(2);
for (const [name, run] of Object.entries(BENCHES)) {
  if (picked.length === 0 || picked.includes(name)) await run();
}
