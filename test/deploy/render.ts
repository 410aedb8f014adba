// What the deploy/ tests read: kustomizations rendered by kubectl, manifests parsed as YAML, and
// the flags and PKM_* env names the built CLI declares in its --help.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { CLI } from '../e2e/spawn.js';

export const run = promisify(execFile);
export const DEPLOY = new URL('../../deploy/', import.meta.url).pathname;

export type Doc = { kind: string; metadata: { name: string; namespace?: string } } & Record<
  string,
  unknown
>;

export async function kustomize(dir: string): Promise<Doc[]> {
  const { stdout } = await run('kubectl', ['kustomize', join(DEPLOY, dir)]);
  return parseAllDocuments(stdout).map((d) => d.toJS() as Doc);
}

export async function yamlDocs(file: string): Promise<Doc[]> {
  return parseAllDocuments(await readFile(file, 'utf8')).map((d) => d.toJS() as Doc);
}

const helps = new Map<string, Promise<string>>();

/** A pkm command's --help, asked once per test file (each run starts a node process). */
function helpOf(command: string): Promise<string> {
  let help = helps.get(command);
  if (help === undefined) {
    help = run(process.execPath, [CLI, command, '--help']).then((r) => r.stdout);
    helps.set(command, help);
  }
  return help;
}

/** The long flags a pkm command takes, from its --help. */
export async function flagsOf(command: string): Promise<Set<string>> {
  return new Set([...(await helpOf(command)).matchAll(/--[a-z][a-z0-9-]*/g)].map((m) => m[0]));
}

/** The PKM_* env names a pkm command reads, from its --help ("env: PKM_STORE"). */
export async function envsOf(command: string): Promise<Set<string>> {
  return new Set(
    [...(await helpOf(command)).matchAll(/env: (PKM_[A-Z0-9_]+)/g)].flatMap((m) =>
      m[1] ? [m[1]] : [],
    ),
  );
}

/** `--flag=value` and `--flag` in a container's args (or an exec command). */
export function flagsIn(args: readonly string[]): string[] {
  return args.filter((a) => a.startsWith('--')).map((a) => a.split('=')[0] ?? a);
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    secretKeyRef?: { name: string; key: string };
  };
}
export interface Container {
  name: string;
  image?: string;
  args?: string[];
  command?: string[];
  restartPolicy?: string;
  env?: EnvVar[];
  ports?: Array<{ name: string; containerPort: number }>;
  securityContext?: Record<string, unknown>;
  readinessProbe?: { httpGet: { path: string } };
  livenessProbe?: { httpGet: { path: string } };
  resources?: { requests?: Record<string, string> };
  lifecycle?: { preStop?: { exec: { command: string[] } } };
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}
export interface Volume {
  name: string;
  projected?: { sources: Array<{ serviceAccountToken?: { audience: string } }> };
  secret?: { secretName: string; items?: Array<{ key: string; path: string }> };
  persistentVolumeClaim?: { claimName: string };
  emptyDir?: Record<string, unknown>;
}
export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  securityContext?: Record<string, unknown>;
  affinity?: Record<string, unknown>;
  volumes?: Volume[];
}

export type Workload = Doc & { spec: Record<string, unknown> };

export function one(docs: Doc[], kind: string, name?: string): Workload {
  const found = docs.find(
    (d) => d.kind === kind && (name === undefined || d.metadata.name === name),
  );
  if (!found) throw new Error(`no ${kind} ${name ?? ''}`);
  return found as Workload;
}

export const podSpec = (workload: Workload) => (workload.spec.template as { spec: PodSpec }).spec;

export const podLabels = (workload: Workload) =>
  (workload.spec.template as { metadata: { labels: Record<string, string> } }).metadata.labels;

/** Whether a matchLabels selector (or a Service's selector) picks pods with these labels. */
export function selects(
  selector: Record<string, string> | undefined,
  labels: Record<string, string>,
): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([k, v]) => labels[k] === v);
}
