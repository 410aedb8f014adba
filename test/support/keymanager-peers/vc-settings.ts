// A validator client's per-key settings (apis/fee_recipient.yaml, graffiti.yaml, gas_limit.yaml):
// GET answers the key's own value or the process-wide default, POST sets it (202), DELETE
// drops it (204); a key the VC does not manage is a 404. Deleting the key drops its settings,
// as Lighthouse does (#5402): whoever moves a key must carry them over.
import { z } from 'zod';
import { HttpError, type Route } from './http.js';
import { parseBody } from './local-keys.js';
import type { Lock } from './lock.js';

export interface KeySettings {
  feeRecipient?: string | undefined;
  graffiti?: string | undefined;
  gasLimit?: string | undefined;
}
export interface Defaults {
  readonly feeRecipient: string;
  readonly graffiti: string;
  readonly gasLimit: string;
}
export interface SettingsOwner {
  readonly defaults: Defaults;
  readonly lock: Lock;
  isManaged(pubkey: string): boolean;
  persist(): Promise<void>;
}

const PUBKEY = /^0x[0-9a-fA-F]{96}$/;
const ADDRESS = /^0x[a-fA-F0-9]{40}$/;
const ZERO_ADDRESS = /^0x0{40}$/;

/** One setting: its route name, its JSON field, and how a POST body gives its value. */
const KINDS = [
  {
    route: 'feerecipient',
    field: 'ethaddress',
    key: 'feeRecipient',
    read: (body: unknown) =>
      parseBody(
        z.object({
          ethaddress: z
            .string()
            .regex(ADDRESS, 'an EthAddress')
            .refine((a) => !ZERO_ADDRESS.test(a), 'the 0x00 fee recipient cannot be set'),
        }),
        body,
      ).ethaddress,
  },
  {
    route: 'graffiti',
    field: 'graffiti',
    key: 'graffiti',
    read: (body: unknown) =>
      parseBody(
        z.object({
          graffiti: z.string().refine((g) => Buffer.byteLength(g) <= 32, 'at most 32 bytes'),
        }),
        body,
      ).graffiti,
  },
  {
    route: 'gas_limit',
    field: 'gas_limit',
    key: 'gasLimit',
    read: (body: unknown) =>
      parseBody(
        z.object({ gas_limit: z.string().regex(/^(0|[1-9][0-9]{0,19})$/, 'a Uint64') }),
        body,
      ).gas_limit,
  },
] as const;

export class Settings {
  private readonly byKey = new Map<string, KeySettings>();

  constructor(private readonly owner: SettingsOwner) {}

  restore(saved: Record<string, KeySettings>): void {
    for (const [k, v] of Object.entries(saved)) this.byKey.set(k, { ...v });
  }

  saved(): Record<string, KeySettings> {
    return Object.fromEntries(this.byKey);
  }

  drop(pubkey: string): void {
    this.byKey.delete(pubkey);
  }

  routes(): Route[] {
    return KINDS.flatMap((kind) => {
      const path = new RegExp(`^/eth/v1/validator/([^/]+)/${kind.route}$`);
      const get: Route = {
        method: 'GET',
        path,
        auth: true,
        handle: async ({ params }) => {
          const pubkey = this.managed(params[0]);
          const value = this.byKey.get(pubkey)?.[kind.key] ?? this.owner.defaults[kind.key];
          return { status: 200, body: { data: { pubkey, [kind.field]: value } } };
        },
      };
      const post: Route = {
        method: 'POST',
        path,
        auth: true,
        handle: ({ params, body }) =>
          this.owner.lock.run(async () => {
            const pubkey = this.managed(params[0]);
            const value = kind.read(body);
            this.byKey.set(pubkey, { ...this.byKey.get(pubkey), [kind.key]: value });
            await this.owner.persist();
            return { status: 202 };
          }),
      };
      const del: Route = {
        method: 'DELETE',
        path,
        auth: true,
        handle: ({ params }) =>
          this.owner.lock.run(async () => {
            const pubkey = this.managed(params[0]);
            const own = { ...this.byKey.get(pubkey) };
            delete own[kind.key];
            this.byKey.set(pubkey, own);
            await this.owner.persist();
            return { status: 204 };
          }),
      };
      return [get, post, del];
    });
  }

  /** The path's pubkey, lowercased: a 400 if malformed, a 404 if not this VC's. */
  private managed(given: string | undefined): string {
    if (given === undefined || !PUBKEY.test(given))
      throw new HttpError(400, 'not a 0x pubkey of 48 bytes');
    const pubkey = given.toLowerCase();
    if (!this.owner.isManaged(pubkey)) throw new HttpError(404, 'no such validator in this client');
    return pubkey;
  }
}
