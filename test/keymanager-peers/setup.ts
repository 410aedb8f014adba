// The fake peers' tests' shared setup: a temp folder per test with the witness ledger, fakes
// that stop after the test, and calls checked against the official Keymanager API spec
// (test/support/keymanager-spec.ts) on the way out and on the way back.
import { join } from 'node:path';
import { expect } from 'vitest';
import { http, type JsonAnswer, onCleanup, tempDir } from '../helpers.js';
import {
  type FakeSigner,
  type FakeSignerOptions,
  type FakeVc,
  type FakeVcOptions,
  startFakeSigner,
  startFakeVc,
  Witness,
} from '../support/keymanager-peers/index.js';
import { type KeymanagerSpec, loadKeymanagerSpec, problems } from '../support/keymanager-spec.js';

let specPromise: Promise<KeymanagerSpec> | undefined;
export const spec = () => {
  specPromise ??= loadKeymanagerSpec();
  return specPromise;
};

export interface Lab {
  readonly dir: string;
  readonly witness: Witness;
  vc(name: string, extra?: Partial<FakeVcOptions>): Promise<FakeVc>;
  signer(name: string, extra?: Partial<FakeSignerOptions>): Promise<FakeSigner>;
  /** The options a fake named `name` gets (its own data dir, the shared ledger). */
  options(name: string): { name: string; witnessFile: string; dataDir: string };
}

export async function lab(): Promise<Lab> {
  const dir = await tempDir();
  const witnessFile = join(dir, 'witness.jsonl');
  const options = (name: string) => ({ name, witnessFile, dataDir: join(dir, name) });
  return {
    dir,
    witness: new Witness(witnessFile),
    options,
    async vc(name, extra = {}) {
      const vc = await startFakeVc({ ...options(name), ...extra });
      onCleanup(() => vc.stop());
      return vc;
    },
    async signer(name, extra = {}) {
      const s = await startFakeSigner({ ...options(name), ...extra });
      onCleanup(() => s.stop());
      return s;
    },
  };
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function dig(v: unknown, ...keys: string[]): unknown {
  let at = v;
  for (const k of keys) at = isObject(at) ? at[k] : undefined;
  return at;
}

/** The spec's path for a concrete one: the per-key routes take `{pubkey}`. */
export const templateOf = (path: string) =>
  path.replace(/^\/eth\/v1\/validator\/[^/]+\//, '/eth/v1/validator/{pubkey}/');

/**
 * A Keymanager call whose body (unless `raw`, for a bad request on purpose) and answer are
 * checked against the spec: the status must be one the operation lists, and a JSON answer must
 * fit that status's schema.
 */
export async function km<T = unknown>(
  base: string,
  token: string | undefined,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
  raw = false,
): Promise<JsonAnswer<T>> {
  const s = await spec();
  const tpl = templateOf(path);
  const m = method.toLowerCase();
  if (body !== undefined && !raw) expect(problems(s.body(tpl, m), body)).toEqual([]);
  const auth: Record<string, string> =
    token === undefined ? {} : { authorization: `Bearer ${token}` };
  const res = await http<T>(base, method, path, body, auth);
  const listed = dig(s.doc, 'paths', tpl, m, 'responses', String(res.status));
  expect(
    listed,
    `${method} ${tpl} answered ${res.status}, which the spec does not list`,
  ).toBeDefined();
  const schema = dig(listed, 'content', 'application/json', 'schema');
  if (schema !== undefined) expect(problems(schema, res.body)).toEqual([]);
  return res;
}
