// What `pkm server` checks and prepares before it serves: the key source, the beacon node of the
// liveness gate, the store's own state (its chain, its key source, unfinished work), and the
// warnings an operator must see at every start.

import type { GroupCommitter } from '../allocation/group-commit.js';
import { finishRotation } from '../allocation/kek-rotation.js';
import { checkConfiguredRoot } from '../allocation/protection.js';
import { applyStartIndex } from '../allocation/start-index.js';
import { BeaconLivenessGate } from '../beacon/liveness.js';
import { systemClock } from '../clock.js';
import { PkmError } from '../errors.js';
import { readSecretFile } from '../files.js';
import { MnemonicKeys } from '../keys/bip39.js';
import { type KeySource, mnemonicKeySource, randomKeySource } from '../keys/source.js';
import type { Logger } from '../log.js';
import { MetaKey } from '../store/buckets.js';
import type { StoreContract } from '../store/contract.js';
import { resealPlaintext } from '../store/reseal.js';
import type { Auth } from './auth.js';
import type { ServerConfig } from './config.js';

/**
 * --beacon-url: the liveness gate, its node checked before anything else starts.
 * - A node of another network than --network refuses the start (INVALID_CONFIG, exit 2): the
 *   flag is wrong, and the gate could never open.
 * - A node that does not answer, is syncing, optimistic or without its execution client, or
 *   lacks the liveness route, does not: the server starts with the gate closed, and the gate
 *   checks again at each use (503 BEACON_UNAVAILABLE until then). Only a move of a cooled key
 *   to another pod needs the gate; pods taking back their own keys and new keys do not, and a
 *   beacon node restarted with the cluster often takes minutes to sync. Refusing would turn
 *   that into a crash loop that also keeps every pod from its own keys. The warning says why
 *   the gate is closed.
 */
export async function livenessGate(
  config: ServerConfig,
  log: Logger,
): Promise<BeaconLivenessGate | undefined> {
  if (config.liveness === undefined) return undefined;
  const { beaconUrl, network } = config.liveness;
  const gate = new BeaconLivenessGate(beaconUrl, network);
  const started = await gate.start(systemClock());
  if (started.ready) log.info({ beaconUrl: gate.url, network: network.name }, 'beacon node ready');
  else
    log.warn(
      { beaconUrl: gate.url, reason: started.reason },
      'liveness gate closed until the beacon node is ready: cooled keys do not move to other pods meanwhile',
    );
  return gate;
}

/** Random keys, or keys derived from --mnemonic-file (and its optional passphrase file). */
export async function keySourceFor(config: ServerConfig): Promise<KeySource> {
  if (config.mnemonic === undefined) return randomKeySource;
  const { file, passphraseFile } = config.mnemonic;
  const mnemonic = await readSecretFile(file, 'mnemonic-file');
  const passphrase =
    passphraseFile === undefined
      ? ''
      : await readSecretFile(passphraseFile, 'mnemonic-passphrase-file');
  return mnemonicKeySource(new MnemonicKeys(mnemonic, passphrase));
}

export interface PreparedStore {
  /** The genesis_validators_root the store's history was checked against, if any. */
  readonly storedRoot: string | undefined;
  /** When the store was restored from a backup, if it was (ms since the epoch, as text). */
  readonly restoredAt: string | undefined;
}

/**
 * Makes the store ready to serve, or refuses before anything is written: another chain's root
 * than the one its history was checked against, or another key source than it was bound to.
 * Then it finishes what an older build or a cut-short run left: plaintext secrets are sealed,
 * and an interrupted KEK rotation (the server started with its new KEK) is completed.
 */
export async function prepareStore(
  store: StoreContract,
  group: GroupCommitter,
  config: ServerConfig,
  keySource: KeySource,
  log: Logger,
): Promise<PreparedStore> {
  const copyStarted = await store.getMeta(MetaKey.copyUnfinished);
  if (copyStarted !== undefined)
    throw new PkmError(
      'STORE_CORRUPT',
      `this store is a copy that pkm db copy began at ${copyStarted} and never finished: it may lack keys or pods; start the copy over into an empty target (nothing was changed)`,
    );
  const storedRoot = await store.getMeta(MetaKey.genesisValidatorsRoot);
  checkConfiguredRoot(
    config.genesisValidatorsRoot,
    storedRoot,
    config.network === undefined ? '--genesis-validators-root' : `--network ${config.network.name}`,
  );
  await store.bindKeySource(keySource.fingerprint);
  // Bound to its mnemonic first (a wrong one is refused before this writes anything), then the
  // next index moves up to --mnemonic-start-index, before any part that derives is started.
  const startIndex = config.mnemonic?.startIndex;
  if (startIndex !== undefined) {
    const raised = await applyStartIndex(group, systemClock(), startIndex);
    if (raised) log.warn(raised, 'the next derivation index moved up to --mnemonic-start-index');
    else if (store.nextKeyIndex() > startIndex)
      log.info(
        { nextKeyIndex: store.nextKeyIndex(), startIndex },
        'the store derived past --mnemonic-start-index already: its next index stays',
      );
  }
  const resealed = await resealPlaintext(store);
  if (resealed > 0)
    log.info({ keys: resealed }, 'secrets an older build kept in plaintext are now encrypted');
  const finished = await finishRotation(store, group);
  if (finished) log.warn(finished, 'finished an interrupted KEK rotation');
  const restoredAt = await store.getMeta(MetaKey.restoredAt);
  if (restoredAt !== undefined)
    log.warn(
      { restoredAt: new Date(Number(restoredAt)).toISOString(), holdMs: config.reuseDelayMs },
      'this store was restored from a backup: no key moves to another pod and none is derived before a full --reuse-delay has passed; holders re-assert meanwhile',
    );
  return { storedRoot, restoredAt };
}

/** What an operator must know at every start about the chain the server was told of. */
export function warnAboutChain(
  config: ServerConfig,
  auth: Auth,
  storedRoot: string | undefined,
  log: Logger,
): void {
  if (config.network !== undefined && config.deposits === undefined)
    log.warn(
      { network: config.network.name },
      '--network without withdrawal credentials: new keys carry no deposit data (pass --withdrawal-address, or --mnemonic-file for 0x00)',
    );
  // Without authentication the first upload fixes the root (README "Slashing protection").
  if (!auth.enabled || config.genesisValidatorsRoot !== undefined || storedRoot !== undefined)
    return;
  log.warn(
    'the genesis_validators_root is unknown: pods cannot upload slashing protection (GENESIS_ROOT_UNKNOWN), so pkm release --interchange releases nothing; set --network, or --genesis-validators-root, or upload once with an admin token',
  );
}
