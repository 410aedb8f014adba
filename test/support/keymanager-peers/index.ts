// The fake Keymanager peers of issue 16 (point 6): see README.md in this folder.
export type { AttestReport, Holdings } from './answers.js';
export { type ChildPeer, spawnFakeSigner, spawnFakeVc } from './child.js';
export { FakeSigner, startFakeSigner } from './fake-signer.js';
export { FAKE_GENESIS, FAKE_ROOT, FakeVc, startFakeVc } from './fake-vc.js';
export type { FakeSignerOptions, FakeVcOptions } from './options.js';
export { type Stamped, Witness, type WitnessEvent } from './witness.js';
export {
  assertNoKeyInTwoPlaces,
  findViolations,
  holdersOf,
  type Violation,
} from './witness-check.js';
