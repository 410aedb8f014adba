// The server's Auth from its flags: admin tokens from --auth-token-file, pod tokens through
// TokenReview (--token-review), and the warnings an operator must see at every start.
import { readSecretFile, type ServerConfig } from '../config.js';
import { PkmError } from '../errors.js';
import { KubeTokenReviewer } from '../kube/token-review.js';
import { loadKubeConfig } from '../kube/watcher.js';
import type { Logger } from '../log.js';
import { Auth, parseAdminTokens } from './auth.js';

async function adminTokens(file: string | undefined): Promise<string[]> {
  if (file === undefined) return [];
  return parseAdminTokens(
    await readSecretFile(file, 'auth-token-file'),
    `--auth-token-file ${file}`,
  );
}

export async function openAuth(config: ServerConfig, log: Logger): Promise<Auth> {
  const { auth } = config;
  let reviewer: KubeTokenReviewer | undefined;
  if (auth.tokenReview) {
    try {
      reviewer = new KubeTokenReviewer(loadKubeConfig(config.kubeconfig), auth.audience);
    } catch (err) {
      throw new PkmError(
        'INVALID_CONFIG',
        `--token-review needs the in-cluster service account or --kubeconfig: ${(err as Error).message}`,
      );
    }
  }
  const result = new Auth({
    adminTokens: await adminTokens(auth.tokenFile),
    ...(reviewer ? { reviewer } : {}),
    publicAssignments: auth.publicAssignments,
  });
  if (!result.enabled && auth.insecure)
    log.warn(
      { listen: `${config.listen.host}:${config.listen.port}` },
      '--insecure: no authentication, and not only on loopback: anyone who reaches this server can take validator keys',
    );
  if (result.enabled && auth.webhookClientCa === undefined)
    log.warn(
      'the deletion webhook answers any caller: set --webhook-client-ca so only the API server may release keys',
    );
  if (config.tls === undefined && result.enabled)
    log.warn('tokens travel in plain HTTP: set --tls-cert and --tls-key');
  return result;
}
