// deploy/ha: several pkm servers, all active, on one PostgreSQL database (issue 15, point 7; README,
// "When one server is not enough"). Rendered with kubectl kustomize, it must hold a Deployment of
// 3 servers running deploy/base's flags with --store in place of --data-dir, every flag and PKM_*
// name one the built CLI declares, the database URL and password from a Secret, a
// PodDisruptionBudget and anti-affinity over the servers, a Service (the webhook's too) over all
// of them, and no volume for data. manifests.test.ts renders and dry-run-applies it with the rest.
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseServerConfig } from '../../src/server/config.js';
import {
  type Container,
  DEPLOY,
  type Doc,
  envsOf,
  flagsIn,
  flagsOf,
  kustomize,
  one,
  type PodSpec,
  podLabels,
  podSpec,
  selects,
  type Workload,
  yamlDocs,
} from './render.js';

/** The flags only a PostgreSQL store takes, and the one it does without. */
const STORE_FLAGS = ['--store-password-file', '--store-ssl-mode', '--store-ca-file'];
const LEVELDB_FLAG = '--data-dir';

let docs: Doc[];
let deployment: Workload;
let spec: PodSpec;
let server: Container;
beforeAll(async () => {
  docs = await kustomize('ha');
  deployment = one(docs, 'Deployment', 'pkm');
  spec = podSpec(deployment);
  const [first] = spec.containers;
  if (first === undefined) throw new Error('the Deployment has no container');
  server = first;
});

/** `--store-ssl-mode` -> storeSslMode, as commander names the option. */
function optionName(flag: string): string {
  return flag.replace(/^--/, '').replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** PKM_STORE_SSL_MODE -> --store-ssl-mode, the flag the env name stands for. */
function flagOfEnv(name: string): string {
  return `--${name.replace(/^PKM_/, '').toLowerCase().replace(/_/g, '-')}`;
}

/** A Secret's value as deploy/secret.template.yaml shows it. */
async function templateValue(secret: string, key: string): Promise<string | undefined> {
  const template = (await yamlDocs(join(DEPLOY, 'secret.template.yaml'))).find(
    (d) => d.kind === 'Secret' && d.metadata.name === secret,
  ) as (Doc & { stringData?: Record<string, string> }) | undefined;
  return template?.stringData?.[key];
}

/** The flags commander would hand over: args, then each PKM_* env (a Secret's from the template). */
async function rawFlags(container: Container): Promise<Record<string, unknown>> {
  const raw: Record<string, unknown> = {};
  for (const env of container.env ?? []) {
    if (!env.name.startsWith('PKM_')) continue;
    const ref = env.valueFrom?.secretKeyRef;
    const value = ref ? await templateValue(ref.name, ref.key) : env.value;
    raw[optionName(flagOfEnv(env.name))] = value;
  }
  for (const arg of (container.args ?? []).slice(1)) {
    const [flag = '', ...rest] = arg.split('=');
    raw[optionName(flag)] = rest.length === 0 ? true : rest.join('=');
  }
  return raw;
}

/** The Secret and key a path in the container is mounted from, if a Secret's. */
function secretFileAt(path: string): { secret: string; key: string } | undefined {
  const mount = server.volumeMounts?.find((m) => path.startsWith(`${m.mountPath}/`));
  const secret = spec.volumes?.find((v) => v.name === mount?.name)?.secret;
  if (mount === undefined || secret === undefined) return undefined;
  const file = path.slice(mount.mountPath.length + 1);
  const key = secret.items ? secret.items.find((i) => i.path === file)?.key : file;
  return key === undefined ? undefined : { secret: secret.secretName, key };
}

describe('deploy/ha/', () => {
  it('a Deployment of 3 servers, and no StatefulSet, PVC or data volume: the state is in PostgreSQL', () => {
    expect(deployment.spec.replicas).toBe(3);
    const selector = deployment.spec.selector as { matchLabels: Record<string, string> };
    expect(selects(selector.matchLabels, podLabels(deployment))).toBe(true);
    expect(
      docs.filter((d) => d.kind === 'StatefulSet' || d.kind === 'PersistentVolumeClaim'),
    ).toEqual([]);
    expect(deployment.spec.volumeClaimTemplates).toBeUndefined();
    // Only Secrets and a scratch /tmp: nothing that ties a server to a node.
    for (const v of spec.volumes ?? [])
      expect([v.name, v.secret !== undefined || v.emptyDir !== undefined]).toEqual([v.name, true]);
    expect(flagsIn(server.args ?? [])).not.toContain(LEVELDB_FLAG);
    // A rollout stops an old server only once a new one is ready.
    expect(deployment.spec.strategy).toMatchObject({ rollingUpdate: { maxUnavailable: 0 } });
  });

  it("each server runs deploy/base's flags with --store's in place of --data-dir, every flag and PKM_* name one the CLI declares", async () => {
    const args = server.args ?? [];
    expect(args[0]).toBe('server');
    const known = await flagsOf('server');
    expect(flagsIn(args).filter((f) => !known.has(f))).toEqual([]);
    const envs = (server.env ?? []).map((e) => e.name);
    const knownEnvs = await envsOf('server');
    expect(envs.filter((e) => e.startsWith('PKM_') && !knownEnvs.has(e))).toEqual([]);
    expect(envs.filter((e) => !known.has(flagOfEnv(e)))).toEqual([]);

    const [base] = podSpec(one(await kustomize('base'), 'StatefulSet', 'pkm')).containers;
    const baseArgs = (base?.args ?? []).filter((a) => !a.startsWith(`${LEVELDB_FLAG}=`));
    const haArgs = args.filter((a) => !STORE_FLAGS.includes(a.split('=')[0] ?? a));
    expect([...haArgs].sort()).toEqual([...baseArgs].sort());
    expect(server.env?.find((e) => e.name === 'PKM_LOG_LEVEL')).toEqual(
      base?.env?.find((e) => e.name === 'PKM_LOG_LEVEL'),
    );
    // The probes, requests and hardening of deploy/base.
    expect(server.readinessProbe?.httpGet.path).toBe('/readyz');
    expect(server.livenessProbe?.httpGet.path).toBe('/healthz');
    expect(server.resources?.requests).toEqual(base?.resources?.requests);
    expect(server.securityContext).toEqual(base?.securityContext);
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true });
  });

  it('the server parses it as a PostgreSQL store over verified TLS: password and CA files from pkm-store, the KEK from pkm-secrets', async () => {
    const config = parseServerConfig(await rawFlags(server));
    if (config.store.kind !== 'postgres') throw new Error(`a ${config.store.kind} store`);
    expect(config.store.ssl.mode).toBe('verify-full');
    expect(secretFileAt(config.store.passwordFile ?? '')).toEqual({
      secret: 'pkm-store',
      key: 'password',
    });
    if (config.store.ssl.mode === 'verify-full')
      expect(secretFileAt(config.store.ssl.caFile)).toEqual({ secret: 'pkm-store', key: 'ca.crt' });
    expect(secretFileAt(config.kekFile ?? '')).toEqual({ secret: 'pkm-secrets', key: 'kek' });
    expect(secretFileAt(config.tls?.certFile ?? '')).toEqual({ secret: 'pkm-tls', key: 'tls.crt' });
  });

  it('the URL and the password come from a Secret: no password, database URL or Secret in the manifests', async () => {
    const store = server.env?.find((e) => e.name === 'PKM_STORE');
    expect(store).toEqual({
      name: 'PKM_STORE',
      valueFrom: { secretKeyRef: { name: 'pkm-store', key: 'url' } },
    });
    expect(flagsIn(server.args ?? [])).not.toContain('--store');
    expect(docs.filter((d) => d.kind === 'Secret')).toEqual([]);
    const rendered = JSON.stringify(docs);
    expect(rendered).not.toMatch(/postgres(ql)?:\/\//);
    expect(rendered).not.toMatch(/password=|PGPASSWORD/i);
    // Only the password and the CA are files; the URL (in the env) holds no password.
    const volume = spec.volumes?.find((v) => v.secret?.secretName === 'pkm-store');
    expect(volume?.secret?.items?.map((i) => i.key).sort()).toEqual(['ca.crt', 'password']);
    const url = new URL((await templateValue('pkm-store', 'url')) ?? '');
    expect([url.protocol, url.password, url.search]).toEqual(['postgres:', '', '']);
  });

  it('a PodDisruptionBudget over the servers keeps two of the three serving', () => {
    const pdb = one(docs, 'PodDisruptionBudget', 'pkm');
    const selector = pdb.spec.selector as { matchLabels: Record<string, string> };
    expect(selects(selector.matchLabels, podLabels(deployment))).toBe(true);
    const { maxUnavailable, minAvailable } = pdb.spec;
    expect(maxUnavailable === 1 || minAvailable === 2).toBe(true);
  });

  it('pod anti-affinity on kubernetes.io/hostname spreads the servers across nodes', () => {
    type Term = { topologyKey: string; labelSelector: { matchLabels: Record<string, string> } };
    const anti = spec.affinity?.podAntiAffinity as
      | {
          requiredDuringSchedulingIgnoredDuringExecution?: Term[];
          preferredDuringSchedulingIgnoredDuringExecution?: Array<{ podAffinityTerm: Term }>;
        }
      | undefined;
    const terms = [
      ...(anti?.requiredDuringSchedulingIgnoredDuringExecution ?? []),
      ...(anti?.preferredDuringSchedulingIgnoredDuringExecution ?? []).map(
        (p) => p.podAffinityTerm,
      ),
    ];
    expect(
      terms.some(
        (t) =>
          t.topologyKey === 'kubernetes.io/hostname' &&
          selects(t.labelSelector.matchLabels, podLabels(deployment)),
      ),
    ).toBe(true);
  });

  it('the Service selects every server (and no LevelDB server of deploy/base), and the webhook calls it', async () => {
    const service = one(docs, 'Service', 'pkm');
    const selector = service.spec.selector as Record<string, string>;
    expect(selects(selector, podLabels(deployment))).toBe(true);
    expect(selects(selector, podLabels(one(await kustomize('base'), 'StatefulSet', 'pkm')))).toBe(
      false,
    );
    const ports = service.spec.ports as Array<{ port: number; targetPort: string }>;
    expect(ports.map((p) => p.targetPort)).toEqual(server.ports?.map((p) => p.name));

    const hook = one(docs, 'ValidatingWebhookConfiguration') as unknown as Doc & {
      webhooks: Array<{
        clientConfig: { service: { name: string; namespace: string; port: number } };
      }>;
    };
    for (const w of hook.webhooks)
      expect(w.clientConfig.service).toMatchObject({
        name: service.metadata.name,
        namespace: service.metadata.namespace,
        port: ports[0]?.port,
      });
  });
});
