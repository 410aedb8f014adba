// `pkm agent --keymanager-url URL`: keeps a running validator client's keys equal to what the
// server assigns its pod, through the standard Keymanager API (issue 16, point 1). Each pass:
//   1. asks the server for the pod's assignment, naming the keys stored here already
//      (POST …/assignment): the keys to run, with the secrets of the missing ones, and the
//      keys that are leaving;
//   2. for the leaving keys: reads their per-validator settings from the VC, deletes them
//      (DELETE /eth/v1/keystores; remote: the VC's remote key first, then the signer's keystore)
//      and reports the VC's answer, statuses and slashing protection as they came, with the
//      settings (POST …/removals). The server stores the protection and lets each key go in one
//      commit; a key is never imported anywhere else before that commit;
//   3. imports the missing keys (POST /eth/v1/keystores), each sealed as an EIP-2335 keystore
//      with this pod's password (--password-file, made once as `pkm client` does), with the
//      slashing protection the server handed out; then sets the settings that came with them.
// It never deletes a key the server did not mark leaving, and never imports one it did not
// assign: a crash (kill -9) at any point leaves a key in this VC only while the server still
// records it as this pod's. Every step is safe to repeat: a lost DELETE answer is asked again
// (the spec keeps the slashing protection: not_active), a lost report is sent again.
import { setTimeout as sleep } from 'node:timers/promises';
import { KeySettings } from '../api/key-settings.js';
import { AssignmentAnswer, RemovalsAnswer } from '../api/moves.js';
import { podPath } from '../api/names.js';
import { messageOf, PkmError } from '../errors.js';
import type { KdfCosts, KdfName } from '../keys/keystore.js';
import type { Logger } from '../log.js';
import { type ApiOptions, callServer } from './api.js';
import { encryptAll } from './encrypt.js';
import type { ImportBatch, KeyHome } from './key-homes.js';
import {
  type KeymanagerClient,
  readSettings,
  SETTING_NAMES,
  type SettingName,
} from './keymanager-client.js';
import { loadOrCreatePassword } from './password.js';

export interface KeymanagerAgentOptions {
  readonly connection: ApiOptions;
  readonly pod: string;
  readonly namespace: string;
  /** Where the keys live: the VC's keystores, or a remote signer's (key-homes.ts). */
  readonly home: KeyHome;
  /** The validator client, for the per-validator settings. */
  readonly vc: KeymanagerClient;
  /** The keystores' password, made (0600) if missing. */
  readonly passwordFile: string;
  readonly kdf: KdfName;
  readonly concurrency: number;
  /** Cheaper KDF costs, for tests only. */
  readonly costs?: KdfCosts;
}

export interface PassSummary {
  readonly imported: string[];
  readonly removals: RemovalsAnswer['keys'];
  /** Keys the VC runs that the server does not assign this pod: left alone, reported. */
  readonly foreign: string[];
}

type Assigned = AssignmentAnswer['keys'][number];

export class KeymanagerAgent {
  /** Keys whose settings were set on the VC during this run. */
  private readonly settled = new Set<string>();
  private readonly warned = new Set<string>();

  constructor(
    private readonly opts: KeymanagerAgentOptions,
    private readonly log: Logger,
  ) {}

  private stopped = false;
  private readonly abort = new AbortController();

  /**
   * Every `intervalMs` until stop(): a heartbeat (what the VC runs, so that the server keeps
   * any key it still runs from every other pod), then a pass. A failed step is logged and
   * tried at the next turn.
   */
  async run(beat: () => Promise<unknown>, intervalMs: number): Promise<void> {
    while (!this.stopped) {
      for (const [what, step] of [
        ['heartbeat', beat],
        ['pass', () => this.pass()],
      ] as const) {
        if (this.stopped) break;
        try {
          await step();
        } catch (err) {
          this.log.warn({ err: messageOf(err) }, `${what} failed`);
        }
      }
      // stop() aborts the wait: that rejection is the signal to end, not an error.
      await sleep(intervalMs, undefined, { signal: this.abort.signal }).catch(() => undefined);
    }
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
  }

  /** One pass (see the file's head); throws when the server or the VC could not be asked. */
  async pass(): Promise<PassSummary> {
    const stored = await this.opts.home.stored();
    const view = await this.assignment(stored);
    const leaving = view.keys.filter((k) => k.leaving !== undefined);
    const removals = leaving.length > 0 ? await this.remove(leaving) : [];
    const toRun = view.keys.filter((k) => k.leaving === undefined);
    const missing = toRun.filter((k) => !stored.has(k.pubkey) && k.secretKey !== undefined);
    const imported = missing.length > 0 ? await this.import(missing) : [];
    await this.opts.home.link(toRun.map((k) => k.pubkey));
    // Settings only for keys the VC has now: a failed import is asked again at the next pass.
    const present = new Set([...stored, ...imported]);
    await this.settle(toRun.filter((k) => present.has(k.pubkey)));
    const assigned = new Set(view.keys.map((k) => k.pubkey));
    const foreign = (await this.opts.home.signing()).filter((pk) => !assigned.has(pk));
    const fresh = foreign.filter((pk) => !this.warned.has(pk));
    if (fresh.length > 0) {
      for (const pk of fresh) this.warned.add(pk);
      this.log.warn(
        { foreign: fresh },
        'the validator client runs keys the server does not assign this pod: left alone (the heartbeat reports them)',
      );
    }
    return { imported, removals, foreign };
  }

  private async assignment(stored: ReadonlySet<string>): Promise<AssignmentAnswer> {
    const path = podPath(this.opts.namespace, this.opts.pod, 'assignment');
    const parsed = AssignmentAnswer.safeParse(
      await callServer(this.opts.connection, 'POST', path, { have: [...stored] }),
    );
    if (!parsed.success)
      throw new PkmError('SERVER_FAILED', "the server's answer is not an assignment");
    return parsed.data;
  }

  /** Reads the settings, deletes, reports: the server lets each key go on this report alone. */
  private async remove(leaving: readonly Assigned[]): Promise<RemovalsAnswer['keys']> {
    const pubkeys = leaving.map((k) => k.pubkey);
    const signing = new Set(await this.opts.home.signing());
    const settings = new Map<string, KeySettings>();
    for (const pk of pubkeys.filter((p) => signing.has(p)))
      settings.set(pk, sanitized(await readSettings(this.opts.vc, pk)));
    const removal = await this.opts.home.remove(pubkeys);
    const keys = pubkeys.flatMap((pubkey) => {
      const status = removal.statuses.get(pubkey) ?? 'error';
      if (status === 'error') return [];
      const s = settings.get(pubkey);
      return [{ pubkey, status, ...(s === undefined ? {} : { settings: s }) }];
    });
    const failed = pubkeys.filter((pk) => removal.statuses.get(pk) === 'error');
    if (failed.length > 0)
      this.log.warn(
        { pubkeys: failed },
        'the validator client could not delete these leaving keys: they stay, and are asked again',
      );
    if (keys.length === 0 || removal.slashingProtection === undefined) return [];
    const path = podPath(this.opts.namespace, this.opts.pod, 'removals');
    const parsed = RemovalsAnswer.safeParse(
      await callServer(this.opts.connection, 'POST', path, {
        keys,
        slashing_protection: removal.slashingProtection,
      }),
    );
    if (!parsed.success)
      throw new PkmError('SERVER_FAILED', "the server's answer is not a removal report's");
    for (const r of parsed.data.keys) {
      this.settled.delete(r.pubkey);
      const line = { pubkey: r.pubkey, outcome: r.outcome, to: r.to, why: r.why };
      if (r.outcome === 'cooling' || r.outcome === 'leaving')
        this.log.warn(line, 'a key left this validator client without proof: it cools');
      else this.log.info(line, 'a key left this validator client');
    }
    return parsed.data.keys;
  }

  /** Seals the missing keys with this pod's password and imports them in one batch. */
  private async import(missing: readonly Assigned[]): Promise<string[]> {
    const { password, created } = await loadOrCreatePassword(this.opts.passwordFile);
    if (created)
      this.log.info({ passwordFile: this.opts.passwordFile }, 'made a new keystore password');
    const keys = missing.map((k) => ({
      pubkey: k.pubkey,
      secretKey: Uint8Array.from(Buffer.from((k.secretKey ?? '').slice(2), 'hex')),
      path: k.path ?? '',
    }));
    const keystores = await encryptAll(keys, password, {
      kdf: this.opts.kdf,
      concurrency: this.opts.concurrency,
      sharedKdf: false,
      ...(this.opts.costs ? { costs: this.opts.costs } : {}),
    });
    for (const k of keys) k.secretKey.fill(0);
    const protection = missing.flatMap((k) => (k.slashingProtection ? [k.slashingProtection] : []));
    const first = protection[0];
    const batch: ImportBatch = {
      pubkeys: missing.map((k) => k.pubkey),
      keystores: keystores.map((ks) => JSON.stringify(ks)),
      passwords: keystores.map(() => password),
      ...(first === undefined
        ? {}
        : {
            slashingProtection: JSON.stringify({
              metadata: first.metadata,
              data: protection.flatMap((p) => p.data),
            }),
          }),
    };
    const stored = await this.opts.home.import(batch);
    const done = batch.pubkeys.filter((pk) => stored.get(pk) === true);
    const failed = batch.pubkeys.filter((pk) => stored.get(pk) !== true);
    if (done.length > 0) this.log.info({ pubkeys: done }, 'imported into the validator client');
    if (failed.length > 0)
      this.log.warn(
        { pubkeys: failed },
        'the validator client refused to import these keys: asked again',
      );
    return done;
  }

  /** Sets on the VC the settings each key brought, once per key and run. */
  private async settle(keys: readonly Assigned[]): Promise<void> {
    for (const k of keys) {
      if (this.settled.has(k.pubkey)) continue;
      try {
        for (const name of SETTING_NAMES) {
          const value = k.settings?.[name];
          if (value !== undefined) await this.opts.vc.setSetting(k.pubkey, name, value);
        }
        this.settled.add(k.pubkey);
      } catch (err) {
        this.log.warn(
          { pubkey: k.pubkey, err: messageOf(err) },
          'could not set the per-validator settings this key brought: tried again',
        );
      }
    }
  }
}

/** The settings a VC gave that are settings (a value out of shape is left behind, not sent). */
function sanitized(raw: Partial<Record<SettingName, string>>): KeySettings {
  const out: KeySettings = {};
  for (const name of SETTING_NAMES) {
    const one = KeySettings.safeParse({ [name]: raw[name] });
    if (one.success && one.data[name] !== undefined) Object.assign(out, { [name]: one.data[name] });
  }
  return out;
}
