// deploy/: every manifest renders (kubectl kustomize) and applies as a client-side dry run
// (kubectl apply --dry-run=client --validate=false, against a discovery-only API server on
// 127.0.0.1), and says what the README promises: flags pkm knows, probes, a non-root read-only
// server, the webhook's safety settings, and alerts on metrics the server really exports.
// deploy/ha's own promises (several servers on PostgreSQL) are checked in ha.test.ts.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServerConfig } from '../../src/server/config.js';
import { http, startTestServer } from '../helpers.js';
import { FakeDiscoveryApi } from '../kube/fake-discovery.js';
import {
  DEPLOY,
  type Doc,
  flagsIn,
  flagsOf,
  kustomize,
  one,
  podSpec,
  run,
  yamlDocs,
} from './render.js';

const KUSTOMIZATIONS = ['base', 'ha', 'example-validator', 'monitoring'];

/** Files for kube-apiserver's own flags, not objects to apply. */
const APISERVER = join(DEPLOY, 'apiserver');

async function manifests(dir = DEPLOY): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.yaml') && e.name !== 'kustomization.yaml')
    .map((e) => join(e.parentPath, e.name))
    .filter((f) => !f.startsWith(`${APISERVER}/`))
    .sort();
}

/** The metric families a fresh server exports (their # TYPE lines). */
async function exportedMetrics(): Promise<Set<string>> {
  const server = await startTestServer();
  const metrics = await http<string>(server.url, 'GET', '/metrics');
  return new Set(
    [...metrics.body.matchAll(/^# TYPE (\S+)/gm)].flatMap((m) => (m[1] ? [m[1]] : [])),
  );
}

/** The pkm_ metrics a PromQL expression uses that the server does not export. */
function unknownMetrics(expr: string, exported: Set<string>): string[] {
  const used = [...expr.matchAll(/\b(pkm_[a-z_]+?)(?:_bucket)?\b/g)].flatMap((m) =>
    m[1] ? [m[1]] : [],
  );
  return used.filter((m) => !exported.has(m));
}

let api: FakeDiscoveryApi;
let kubeconfig: string;
let kubeconfigDir: string;
beforeAll(async () => {
  api = new FakeDiscoveryApi();
  await api.start();
  // Made here, not with tempDir() (whose cleanup runs after each test).
  kubeconfigDir = await mkdtemp(join(tmpdir(), 'pkm-kubeconfig-'));
  kubeconfig = join(kubeconfigDir, 'kubeconfig');
  await writeFile(kubeconfig, api.kubeconfigYaml());
});
afterAll(async () => {
  await api.stop();
  await rm(kubeconfigDir, { recursive: true, force: true });
});

describe('deploy/', () => {
  it('every manifest passes kubectl apply --dry-run=client --validate=false', async () => {
    const files = await manifests();
    expect(files.length).toBeGreaterThan(10);
    for (const file of files) {
      const { stdout } = await run(
        'kubectl',
        ['apply', '--dry-run=client', '--validate=false', '-f', file],
        {
          env: { ...process.env, KUBECONFIG: kubeconfig },
        },
      );
      expect([file, stdout]).toEqual([file, expect.stringMatching(/created \(dry run\)/)]);
    }
    // kubectl asked this API server about each object (and found none): it did not skip it.
    expect(api.reads).toEqual(
      expect.arrayContaining([
        '/apis/apps/v1/namespaces/pkm/statefulsets/pkm',
        '/apis/apps/v1/namespaces/pkm/deployments/pkm',
        '/apis/policy/v1/namespaces/pkm/poddisruptionbudgets/pkm',
      ]),
    );
  }, 120_000);

  it('every kustomization renders, and applies as a dry run', async () => {
    for (const dir of KUSTOMIZATIONS) {
      expect((await kustomize(dir)).length).toBeGreaterThan(1);
      const { stdout } = await run(
        'kubectl',
        ['apply', '--dry-run=client', '--validate=false', '-k', join(DEPLOY, dir)],
        {
          env: { ...process.env, KUBECONFIG: kubeconfig },
        },
      );
      expect(
        stdout
          .trim()
          .split('\n')
          .every((l) => l.endsWith('created (dry run)')),
      ).toBe(true);
    }
  }, 60_000);

  it('the server: one replica, a PVC for /data, probes, requests, non-root and read-only', async () => {
    const docs = await kustomize('base');
    const sts = one(docs, 'StatefulSet', 'pkm');
    expect(sts.spec.replicas).toBe(1);
    const claims = sts.spec.volumeClaimTemplates as Array<{ metadata: { name: string } }>;
    const spec = podSpec(sts);
    const [server] = spec.containers;
    expect(claims.map((c) => c.metadata.name)).toEqual(['data']);
    expect(server?.readinessProbe?.httpGet.path).toBe('/readyz');
    expect(server?.livenessProbe?.httpGet.path).toBe('/healthz');
    expect(server?.resources?.requests).toMatchObject({
      cpu: expect.any(String),
      memory: expect.any(String),
    });
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true });
    expect(server?.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
    });
    const known = await flagsOf('server');
    const args = server?.args ?? [];
    expect(args[0]).toBe('server');
    expect(flagsIn(args).filter((f) => !known.has(f))).toEqual([]);
    expect(args).toEqual(expect.arrayContaining(['--token-review', '--kube', '--data-dir=/data']));
    // A known --network: the genesis root of slashing protection never comes from a pod.
    const network = args.find((a) => a.startsWith('--network='))?.slice('--network='.length);
    expect(parseServerConfig({ network }).genesisValidatorsRoot).toMatch(/^0x[0-9a-f]{64}$/);

    const roles = docs.filter((d) => d.kind === 'ClusterRole' || d.kind === 'Role') as Array<
      Doc & { rules: Array<{ resources: string[]; verbs: string[] }> }
    >;
    const rules = roles.flatMap((r) => r.rules);
    expect(rules).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ resources: ['tokenreviews'], verbs: ['create'] }),
        expect.objectContaining({ resources: ['pods'], verbs: ['get', 'list', 'watch'] }),
      ]),
    );
    expect(docs.map((d) => d.kind)).toEqual(
      expect.arrayContaining([
        'Namespace',
        'ServiceAccount',
        'Service',
        'ClusterRoleBinding',
        'RoleBinding',
      ]),
    );
  });

  it('the webhook: DELETE of pods, never blocking, dry-run safe, scoped, CA from cert-manager', async () => {
    const hook = one(
      await kustomize('base'),
      'ValidatingWebhookConfiguration',
    ) as unknown as Doc & {
      metadata: { annotations: Record<string, string> };
      webhooks: Array<Record<string, unknown>>;
    };
    const [w] = hook.webhooks;
    expect(w).toMatchObject({
      failurePolicy: 'Ignore',
      sideEffects: 'NoneOnDryRun',
      rules: [expect.objectContaining({ operations: ['DELETE'], resources: ['pods'] })],
      namespaceSelector: { matchLabels: expect.any(Object) },
      clientConfig: { service: expect.objectContaining({ path: '/v1/webhooks/pod-deletion' }) },
    });
    expect(hook.metadata.annotations['cert-manager.io/inject-ca-from']).toBe('pkm/pkm-tls');
    const secret = (await manifests()).filter((f) => f.endsWith('secret.template.yaml'));
    expect(secret).toHaveLength(1);
  });

  it("the webhook answers the API server's client certificate: the server mounts its CA as --webhook-client-ca, and deploy/apiserver/ configures kube-apiserver to present it", async () => {
    const docs = await kustomize('base');
    const hook = one(docs, 'ValidatingWebhookConfiguration') as unknown as Doc & {
      webhooks: Array<{
        failurePolicy: string;
        clientConfig: { service: { name: string; namespace: string; port?: number } };
      }>;
    };
    const [w] = hook.webhooks;
    // A 403 (a review the server refuses) must never block a deletion.
    expect(w?.failurePolicy).toBe('Ignore');

    // The server: --webhook-client-ca names ca.crt of a mounted Secret, and nothing else of it.
    const spec = podSpec(one(docs, 'StatefulSet', 'pkm'));
    const [server] = spec.containers;
    const flag = server?.args?.find((a) => a.startsWith('--webhook-client-ca='));
    const caFile = flag?.split('=')[1] ?? '';
    expect(server?.args).toEqual(expect.arrayContaining([expect.stringMatching(/^--tls-cert=/)]));
    const mount = server?.volumeMounts?.find((m) => caFile.startsWith(`${m.mountPath}/`));
    const volume = spec.volumes?.find((v) => v.name === mount?.name);
    expect(volume?.secret).toEqual({
      secretName: 'pkm-webhook-client-ca',
      items: [{ key: 'ca.crt', path: caFile.slice((mount?.mountPath.length ?? 0) + 1) }],
      defaultMode: expect.any(Number),
    });
    const template = (await yamlDocs(join(DEPLOY, 'secret.template.yaml'))).find(
      (d) => d.kind === 'Secret' && d.metadata.name === 'pkm-webhook-client-ca',
    ) as (Doc & { stringData: Record<string, string> }) | undefined;
    expect(Object.keys(template?.stringData ?? {})).toEqual(['ca.crt']);

    // kube-apiserver: the AdmissionConfiguration points the ValidatingAdmissionWebhook plugin
    // at the kubeconfig next to it.
    const [admission] = (await yamlDocs(join(APISERVER, 'admission-configuration.yaml'))) as Array<
      Doc & {
        apiVersion: string;
        plugins: Array<{
          name: string;
          configuration: { apiVersion: string; kind: string; kubeConfigFile: string };
        }>;
      }
    >;
    expect(admission).toMatchObject({
      apiVersion: 'apiserver.config.k8s.io/v1',
      kind: 'AdmissionConfiguration',
    });
    const plugin = admission?.plugins.find((p) => p.name === 'ValidatingAdmissionWebhook');
    expect(plugin?.configuration).toMatchObject({
      apiVersion: 'apiserver.config.k8s.io/v1',
      kind: 'WebhookAdmissionConfiguration',
      kubeConfigFile: expect.stringMatching(/\/webhook-kubeconfig\.yaml$/),
    });
    const folder = (plugin?.configuration.kubeConfigFile ?? '').replace(/\/[^/]+$/, '');

    // The kubeconfig as kubectl's loader (client-go's, as the API server's) reads it: a
    // misspelt field would be dropped here. The API server picks the users entry named for
    // the host it dials, <service>.<namespace>.svc with :<port> unless the port is 443.
    const { stdout } = await run('kubectl', [
      'config',
      'view',
      '--raw',
      '-o',
      'json',
      '--kubeconfig',
      join(APISERVER, 'webhook-kubeconfig.yaml'),
    ]);
    const kubeconfig = JSON.parse(stdout) as {
      users: Array<{ name: string; user: Record<string, string> }>;
    };
    const service = w?.clientConfig.service;
    const port = service?.port ?? 443;
    const host = `${service?.name}.${service?.namespace}.svc`;
    const names = port === 443 ? [host, `${host}:443`] : [`${host}:${port}`];
    const user = kubeconfig.users.find((u) => names.includes(u.name));
    expect(user?.user).toEqual({
      'client-certificate': expect.stringMatching(new RegExp(`^${folder}/[^/]+\\.crt$`)),
      'client-key': expect.stringMatching(new RegExp(`^${folder}/[^/]+\\.key$`)),
    });
  });

  it('the example validator: client init, projected token, agent sidecar, release on the way out', async () => {
    const spec = podSpec(one(await kustomize('example-validator'), 'StatefulSet', 'validator'));
    const init = spec.initContainers ?? [];
    const byName = (n: string) => init.find((c) => c.name === n);
    const client = byName('keys');
    const agent = byName('agent');
    expect(client?.args?.[0]).toBe('client');
    const clientFlags = await flagsOf('client');
    expect(flagsIn(client?.args ?? []).filter((f) => !clientFlags.has(f))).toEqual([]);
    expect(client?.env).toEqual(
      expect.arrayContaining([
        { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      ]),
    );
    expect(agent?.restartPolicy).toBe('Always');
    const agentFlags = await flagsOf('agent');
    expect(flagsIn(agent?.args ?? []).filter((f) => !agentFlags.has(f))).toEqual([]);
    const release = agent?.lifecycle?.preStop?.exec.command ?? [];
    expect(release.slice(0, 2)).toEqual(['pkm', 'release']);
    const releaseFlags = await flagsOf('release');
    expect(flagsIn(release).filter((f) => !releaseFlags.has(f))).toEqual([]);
    expect(release).toEqual(expect.arrayContaining([expect.stringMatching(/^--interchange=/)]));
    // The history is exported after the validator stops: by a sidecar started after the agent
    // (sidecars stop in reverse order), whose preStop exports.
    const names = init.map((c) => c.name);
    expect(names.indexOf('exporter')).toBeGreaterThan(names.indexOf('agent'));
    expect(byName('exporter')?.lifecycle?.preStop?.exec.command.join(' ')).toMatch(
      /slashing-protection export/,
    );
    const audiences = (spec.volumes ?? []).flatMap(
      (v) => v.projected?.sources.map((s) => s.serviceAccountToken?.audience) ?? [],
    );
    expect(audiences).toContain('pkm');
    const validator = spec.containers.find((c) => c.name === 'lighthouse');
    expect(validator?.args).toEqual(
      expect.arrayContaining([
        '--validators-dir=/validator/validators',
        '--secrets-dir=/validator/secrets',
      ]),
    );
  });

  it('the example validator writes fast keystores to a memory-backed emptyDir, the password beside them, read from there', async () => {
    const sts = one(await kustomize('example-validator'), 'StatefulSet', 'validator');
    const spec = podSpec(sts);
    const client = (spec.initContainers ?? []).find((c) => c.name === 'keys');
    const args = client?.args ?? [];
    expect(args).toContain('--kdf-profile=fast');
    // The password file is the default, <out>/password.txt: beside the keystores.
    expect(flagsIn(args)).not.toContain('--password-file');
    const out = args.find((a) => a.startsWith('--out='))?.slice('--out='.length) ?? '';
    const mount = client?.volumeMounts?.find((m) => m.mountPath === out);
    const volume = spec.volumes?.find((v) => v.name === mount?.name);
    expect(volume?.emptyDir).toEqual({ medium: 'Memory', sizeLimit: expect.any(String) });
    // No claim of the same name turns it into a disk.
    const claims = (sts.spec.volumeClaimTemplates ?? []) as Array<{ metadata: { name: string } }>;
    expect(claims.map((c) => c.metadata.name)).not.toContain(mount?.name);
    // Lighthouse reads the keystores from that volume, and keeps no log files in it.
    const validator = spec.containers.find((c) => c.name === 'lighthouse');
    expect(validator?.volumeMounts).toContainEqual({ name: mount?.name, mountPath: out });
    expect(validator?.args).toEqual(
      expect.arrayContaining([`--validators-dir=${out}/validators`, '--logfile-max-number=0']),
    );
  });

  it('the example validator keeps its own doppelganger protection on, as a second line', async () => {
    const spec = podSpec(one(await kustomize('example-validator'), 'StatefulSet', 'validator'));
    const validator = spec.containers.find((c) => c.name === 'lighthouse');
    expect(validator?.command).toEqual(['lighthouse']);
    expect(validator?.args?.[0]).toBe('vc');
    // Lighthouse's flag takes no value: the bare flag, on the `vc` command itself.
    expect(validator?.args).toContain('--enable-doppelganger-protection');
  });

  it('alerts cover pool low, conflicts, deposit failures, webhook errors and refusals, on metrics the server exports', async () => {
    const rule = one(await kustomize('monitoring'), 'PrometheusRule');
    const rules = (
      rule.spec.groups as Array<{ rules: Array<{ alert: string; expr: string }> }>
    ).flatMap((g) => g.rules);
    expect(rules.map((r) => r.alert)).toEqual(
      expect.arrayContaining([
        'PkmPoolLow',
        'PkmKeyConflict',
        'PkmDepositFailures',
        'PkmWebhookErrors',
        'PkmWebhookRefused',
      ]),
    );
    const exported = await exportedMetrics();
    for (const r of rules)
      expect([r.alert, unknownMetrics(r.expr, exported)]).toEqual([r.alert, []]);
  });

  it('the Grafana dashboard queries only metrics the server exports', async () => {
    const dashboard = JSON.parse(
      await readFile(join(DEPLOY, 'monitoring', 'grafana-dashboard.json'), 'utf8'),
    ) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    const exported = await exportedMetrics();
    expect(dashboard.panels.length).toBeGreaterThan(5);
    for (const p of dashboard.panels)
      for (const t of p.targets)
        expect([p.title, unknownMetrics(t.expr, exported)]).toEqual([p.title, []]);
  });
});
