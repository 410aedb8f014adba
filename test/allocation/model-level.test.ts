// The model-based test of the allocation rules (model-suite.ts) on a temp LevelDB per run.
import { onBackend } from '../support/backends.js';
import { modelSuite } from './model-suite.js';

onBackend('LevelDB', modelSuite);
