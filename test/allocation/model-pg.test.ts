// The model-based test of the allocation rules (model-suite.ts) on PostgreSQL: one cluster for
// this file, a database of its own per run.
import { onBackend } from '../support/backends.js';
import { modelSuite } from './model-suite.js';

onBackend('PostgreSQL', modelSuite);
