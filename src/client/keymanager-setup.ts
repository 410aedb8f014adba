// `pkm agent --keymanager-url`'s parts, wired from its flags: the validator client's (and the
// remote signer's) Keymanager API clients, where the keys live, and the loop.
import type { Logger } from '../log.js';
import { connection } from './client.js';
import type { ClientConfig } from './config.js';
import { type KeyHome, LocalKeys, RemoteKeys } from './key-homes.js';
import { KeymanagerAgent } from './keymanager-agent.js';
import { KeymanagerClient } from './keymanager-client.js';
import type { KeymanagerConfig } from './keymanager-config.js';

/** The agent's live-move side (--keymanager-url): where the keys live, and the loop. */
export function keymanagerAgent(km: KeymanagerConfig, client: ClientConfig, log: Logger) {
  const vc = new KeymanagerClient({
    url: km.url,
    tokenFile: km.tokenFile,
    caFile: km.caFile,
    name: 'the validator client',
  });
  const signer = km.remoteSigner;
  const home: KeyHome = signer
    ? new RemoteKeys(
        vc,
        new KeymanagerClient({ ...signer, name: 'the remote signer' }),
        signer.url.href.replace(/\/$/, ''),
      )
    : new LocalKeys(vc);
  const agent = new KeymanagerAgent(
    {
      connection: connection(client),
      pod: client.pod,
      namespace: client.namespace,
      home,
      vc,
      passwordFile: client.passwordFile,
      kdf: client.kdf,
      concurrency: client.concurrency,
    },
    log,
  );
  return { home, agent };
}
