// The agent's client of a Keymanager API: a validator client's, or a remote signer's
// (specs/keymanager-APIs/keymanager-oapi.yaml). Every answer is parsed against the spec's
// shape; anything else is KEYMANAGER_FAILED. No error message ever holds a request body: an
// import carries keystores and their password.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ETH_ADDRESS, type KeySettings } from '../api/key-settings.js';
import {
  DeleteKeysAnswer,
  type DeleteStatus,
  ImportKeystoresAnswer,
  ListKeysAnswer,
} from '../api/keymanager.js';
import { errnoOf, messageOf, PkmError } from '../errors.js';
import { send } from './api.js';

export interface KeymanagerOptions {
  readonly url: URL;
  /** The API token (keymanager-oapi.yaml: a file holding it), read at each call; none: no auth. */
  readonly tokenFile?: string | undefined;
  /** PEM CA bundle for an HTTPS Keymanager API (Teku's is HTTPS by default). */
  readonly caFile?: string | undefined;
  readonly timeoutMs?: number;
  /** How the peer is named in errors: "the validator client", "the remote signer". */
  readonly name: string;
}

/** DeleteRemoteKeysResponse and ImportRemoteKeysResponse (apis/remote_keystores.yaml). */
const RemoteStatuses = z.object({
  data: z.array(
    z.object({
      status: z.enum(['imported', 'duplicate', 'deleted', 'not_found', 'error']),
      message: z.string().optional(),
    }),
  ),
});
const ListRemoteKeys = z.object({
  data: z.array(z.object({ pubkey: z.string(), url: z.string().optional() })),
});
/** The per-validator routes' GET answers (apis/fee_recipient.yaml, graffiti.yaml, gas_limit.yaml). */
const SETTING_ROUTE = { feeRecipient: 'feerecipient', graffiti: 'graffiti', gasLimit: 'gas_limit' };
export type SettingName = keyof typeof SETTING_ROUTE;
const SettingAnswers: Record<SettingName, z.ZodType<string>> = {
  feeRecipient: z
    .object({ data: z.object({ ethaddress: z.string().regex(ETH_ADDRESS) }) })
    .transform((a) => a.data.ethaddress),
  graffiti: z
    .object({ data: z.object({ graffiti: z.string() }) })
    .transform((a) => a.data.graffiti),
  gasLimit: z
    .object({ data: z.object({ gas_limit: z.string() }) })
    .transform((a) => a.data.gas_limit),
};
export const SETTING_NAMES: readonly SettingName[] = ['feeRecipient', 'graffiti', 'gasLimit'];

export type ImportStatus = ImportKeystoresAnswer['data'][number]['status'];
export type RemovalStatus = DeleteStatus;

export class KeymanagerClient {
  constructor(private readonly opts: KeymanagerOptions) {}

  get url(): URL {
    return this.opts.url;
  }

  /** listKeys: the local keystores it holds (lowercase pubkeys). */
  async keystores(): Promise<string[]> {
    const answer = await this.json('GET', 'eth/v1/keystores', ListKeysAnswer);
    return answer.data.map((k) => k.validating_pubkey.toLowerCase());
  }

  /** importKeystores: one status per keystore, in order. */
  async importKeystores(body: {
    keystores: string[];
    passwords: string[];
    slashing_protection?: string;
  }): Promise<ImportStatus[]> {
    const answer = await this.json('POST', 'eth/v1/keystores', ImportKeystoresAnswer, body);
    this.sameLength(answer.data, body.keystores.length, 'import');
    return answer.data.map((d) => d.status);
  }

  /** deleteKeys: one status per pubkey, and the slashing protection (JSON text, as it came). */
  async deleteKeystores(
    pubkeys: readonly string[],
  ): Promise<{ statuses: RemovalStatus[]; slashingProtection: string }> {
    const answer = await this.json('DELETE', 'eth/v1/keystores', DeleteKeysAnswer, { pubkeys });
    this.sameLength(answer.data, pubkeys.length, 'delete');
    return {
      statuses: answer.data.map((d) => d.status),
      slashingProtection: answer.slashing_protection,
    };
  }

  /** listRemoteKeys: the remote keys registered, with their signer's URL. */
  async remoteKeys(): Promise<Array<{ pubkey: string; url: string | undefined }>> {
    const answer = await this.json('GET', 'eth/v1/remotekeys', ListRemoteKeys);
    return answer.data.map((k) => ({ pubkey: k.pubkey.toLowerCase(), url: k.url }));
  }

  async importRemoteKeys(keys: ReadonlyArray<{ pubkey: string; url: string }>) {
    const answer = await this.json('POST', 'eth/v1/remotekeys', RemoteStatuses, {
      remote_keys: keys,
    });
    this.sameLength(answer.data, keys.length, 'remote key import');
    return answer.data.map((d) => d.status);
  }

  async deleteRemoteKeys(pubkeys: readonly string[]) {
    const answer = await this.json('DELETE', 'eth/v1/remotekeys', RemoteStatuses, { pubkeys });
    this.sameLength(answer.data, pubkeys.length, 'remote key delete');
    return answer.data.map((d) => d.status);
  }

  /** A per-validator setting, or undefined where the VC has none to give (a 4xx). */
  async setting(pubkey: string, name: SettingName): Promise<string | undefined> {
    const path = `eth/v1/validator/${pubkey}/${SETTING_ROUTE[name]}`;
    const res = await this.request('GET', path);
    if (res.status >= 400 && res.status < 500) return undefined;
    return this.parse(res, SettingAnswers[name], `GET ${path}`);
  }

  /** Sets a per-validator setting (202); a refusal is KEYMANAGER_FAILED with the VC's word. */
  async setSetting(pubkey: string, name: SettingName, value: string): Promise<void> {
    const path = `eth/v1/validator/${pubkey}/${SETTING_ROUTE[name]}`;
    const body: Record<SettingName, object> = {
      feeRecipient: { ethaddress: value },
      graffiti: { graffiti: value },
      gasLimit: { gas_limit: value },
    };
    const res = await this.request('POST', path, body[name]);
    if (res.status < 200 || res.status >= 300) throw this.failed(`POST ${path}`, res);
  }

  private sameLength(data: readonly unknown[], want: number, what: string): void {
    if (data.length !== want)
      throw new PkmError(
        'KEYMANAGER_FAILED',
        `${this.opts.name} answered ${data.length} statuses to a ${what} of ${want}`,
      );
  }

  private async json<T>(method: string, path: string, schema: z.ZodType<T>, body?: unknown) {
    const res = await this.request(method, path, body);
    if (res.status !== 200) throw this.failed(`${method} ${path}`, res);
    return this.parse(res, schema, `${method} ${path}`);
  }

  private parse<T>(res: { text: string }, schema: z.ZodType<T>, what: string): T {
    let json: unknown;
    try {
      json = JSON.parse(res.text);
    } catch {
      json = undefined;
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success)
      throw new PkmError(
        'KEYMANAGER_FAILED',
        `${this.opts.name} answered ${what} with something that is not the Keymanager API's answer`,
      );
    return parsed.data;
  }

  private failed(what: string, res: { status: number; text: string }): PkmError {
    let message = '';
    try {
      const parsed: unknown = JSON.parse(res.text);
      if (typeof parsed === 'object' && parsed !== null && 'message' in parsed)
        message = String(parsed.message).slice(0, 300);
    } catch {
      // not JSON: the status says enough
    }
    return new PkmError(
      'KEYMANAGER_FAILED',
      `${this.opts.name} answered ${what} with HTTP ${res.status}${message ? `: ${message}` : ''}`,
    );
  }

  private async request(method: string, path: string, body?: unknown) {
    const url = new URL(
      path,
      this.opts.url.href.endsWith('/') ? this.opts.url : `${this.opts.url.href}/`,
    );
    const token = await this.token();
    const ca = this.opts.caFile === undefined ? undefined : await readFile(this.opts.caFile);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    try {
      return await send(
        url,
        method,
        payload,
        { server: url, timeoutMs: this.opts.timeoutMs ?? 120_000 },
        {
          accept: 'application/json',
          // With its length: Node sends a DELETE's body unframed otherwise (no chunked
          // encoding by default for DELETE), and the VC would read none.
          ...(payload === undefined
            ? {}
            : {
                'content-type': 'application/json',
                'content-length': String(Buffer.byteLength(payload)),
              }),
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        },
        ca,
      );
    } catch (cause) {
      throw new PkmError(
        'KEYMANAGER_FAILED',
        `cannot reach ${this.opts.name} at ${url.origin}: ${messageOf(cause)}`,
        { cause },
      );
    }
  }

  private async token(): Promise<string | undefined> {
    const file = this.opts.tokenFile;
    if (file === undefined) return undefined;
    try {
      // The token is the file's last non-empty line: one line for every client but an older
      // Prysm, whose auth-token file holds the JWT on its second line.
      const lines = (await readFile(file, 'utf8')).split(/\r?\n/).map((l) => l.trim());
      return lines.filter((l) => l !== '').at(-1) ?? '';
    } catch (err) {
      throw new PkmError(
        'INVALID_CONFIG',
        `the token file ${file} of ${this.opts.name} cannot be read (${errnoOf(err) ?? 'unreadable'})`,
      );
    }
  }
}

/** The settings a VC has for a key, as KeySettings (fields it would not give left out). */
export async function readSettings(
  vc: KeymanagerClient,
  pubkey: string,
): Promise<Partial<Record<SettingName, string>>> {
  const out: Partial<Record<SettingName, string>> = {};
  for (const name of SETTING_NAMES) {
    const value = await vc.setting(pubkey, name);
    if (value !== undefined) out[name] = value;
  }
  return out;
}

export type { KeySettings };
