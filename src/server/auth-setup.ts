// The server's Auth from its flags: admin tokens from --auth-token-file, pod tokens through
// TokenReview (--token-review), and the warnings an operator must see at every start.
import { messageOf, PkmError } from '../errors.js';
import { readSecretFile } from '../files.js';
import type { KubeTokenReviewer } from '../kube/token-review.js';
import type { Logger } from '../log.js';
import { Auth, parseAdminTokens } from './auth.js';
import type { ServerConfig } from './config.js';

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
    // Loaded only here: the Kubernetes client takes about a second to load (issue 17, point 5).
    const [{ KubeTokenReviewer }, { loadKubeConfig }] = await Promise.all([
      import('../kube/token-review.js'),
      import('../kube/watcher.js'),
    ]);
    try {
      reviewer = new KubeTokenReviewer(loadKubeConfig(config.kubeconfig), auth.audience);
    } catch (err) {
      throw new PkmError(
        'INVALID_CONFIG',
        `--token-review needs the in-cluster service account or --kubeconfig: ${messageOf(err)}`,
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
  if (result.enabled && auth.webhookClientCa === undefined) warnNoWebhookCa(config, log);
  if (config.tls === undefined && result.enabled)
    log.warn('tokens travel in plain HTTP: set --tls-cert and --tls-key');
  return result;
}

/**
 * Without --webhook-client-ca the webhook cannot tell the API server from anyone else, so with
 * authentication on it answers admin tokens only (webhook.ts): the API server's reviews get 403,
 * and failurePolicy Ignore (deploy/base/webhook.yaml) lets the deletions through unreported.
 */
function warnNoWebhookCa(config: Pick<ServerConfig, 'kube'>, log: Logger): void {
  const unless =
    'unless the API server sends the webhook an admin token (its AdmissionConfiguration kubeconfig)';
  if (config.kube)
    log.warn(
      `no --webhook-client-ca: the deletion webhook answers admin tokens only, so the pod watcher (--kube) is the only way pod deletions reach this server, ${unless}. Set --webhook-client-ca to the CA of the API server's webhook client certificate`,
    );
  else
    log.warn(
      `no --webhook-client-ca and no --kube: the deletion webhook answers admin tokens only, so pod deletions reach this server only through pods' own releases (pkm release) and operators, ${unless}. Set --webhook-client-ca, or --kube for the pod watcher`,
    );
}
