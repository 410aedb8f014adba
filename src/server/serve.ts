// `pkm server`: open the store, start the parts, listen; and shut down cleanly on SIGTERM
// (stop taking requests, finish those in flight, stop the depositor, close the store).
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock } from '../allocation/clock.js';
import { GroupCommitter } from '../allocation/group-commit.js';
import { readSecretFile, type ServerConfig } from '../config.js';
import type { Depositor } from '../deposit/depositor.js';
import { openDepositor } from '../deposit/setup.js';
import { PkmError } from '../errors.js';
import { MnemonicKeys } from '../keys/mnemonic.js';
import { type KeySource, mnemonicKeySource, randomKeySource } from '../keys/source.js';
import type { Logger } from '../log.js';
import { Store } from '../store/store.js';
import { composeApp } from './compose.js';

export interface RunningServer {
  readonly url: string;
  /** Stops accepting, waits for requests in flight (up to graceMs), then closes the store. */
  close(graceMs?: number): Promise<void>;
}

/** Random keys, or keys derived from --mnemonic-file (and its optional passphrase file). */
async function keySourceFor(config: ServerConfig): Promise<KeySource> {
  if (config.mnemonicFile === undefined) {
    if (config.mnemonicPassphraseFile !== undefined) {
      throw new PkmError(
        'INVALID_CONFIG',
        '--mnemonic-passphrase-file needs --mnemonic-file, e.g. --mnemonic-file /etc/pkm/mnemonic',
      );
    }
    return randomKeySource;
  }
  const mnemonic = await readSecretFile(config.mnemonicFile, 'mnemonic-file');
  const passphrase =
    config.mnemonicPassphraseFile === undefined
      ? ''
      : await readSecretFile(config.mnemonicPassphraseFile, 'mnemonic-passphrase-file');
  return mnemonicKeySource(new MnemonicKeys(mnemonic, passphrase));
}

export async function startServer(config: ServerConfig, log: Logger): Promise<RunningServer> {
  const keySource = await keySourceFor(config);
  const store = await Store.open(config.dataDir);
  let draining = false;
  try {
    await store.bindKeySource(keySource.fingerprint);
  } catch (err) {
    await store.close();
    throw err;
  }
  const group = new GroupCommitter(store);
  let depositor: Depositor | undefined;
  const { deposits } = config;
  if (deposits?.send) {
    try {
      const parts = { store, group, keySource, clock: systemClock, log };
      depositor = await openDepositor(
        { ...deposits, send: deposits.send },
        parts,
        deposits.send.reconcileMs,
      );
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  const { app } = composeApp({
    store,
    config,
    log,
    keySource,
    group,
    isDraining: () => draining,
    ...(deposits ? { deposits } : {}),
    ...(depositor ? { depositor } : {}),
  });
  let server: Server;
  try {
    server = await new Promise<Server>((resolve, reject) => {
      const s = app.listen(config.listen.port, config.listen.host, (err?: Error) =>
        err ? reject(err) : resolve(s),
      );
    });
  } catch (err) {
    depositor?.stop();
    await store.close();
    const reason = err instanceof Error ? err.message : String(err);
    throw new PkmError(
      'INVALID_CONFIG',
      `cannot listen on --listen ${config.listen.host}:${config.listen.port}: ${reason}`,
    );
  }
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  const url = `http://${host}:${port}`;
  const keys = keySource.indexed ? 'mnemonic' : 'random';
  log.info({ url, dataDir: config.dataDir, keys, counts: store.storedCounts() }, 'listening');
  log.flush();
  return {
    url,
    async close(graceMs = 10_000) {
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const force = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(force);
      depositor?.stop();
      await store.close();
      log.info('stopped');
      log.flush();
    },
  };
}
