// pkm exits export: asks the server for a signed voluntary exit (EIP-7044, valid for good) of
// every key, or of one pod's, and writes each as the beacon API's SignedVoluntaryExit JSON to
// <out>/<0xpubkey>.json (0600, folder 0700): the file a beacon node's submitPoolVoluntaryExit
// takes as is, named by the key it exits. Keys without a known validator index are reported;
// the others are written.
import { join } from 'node:path';
import { z } from 'zod';
import { DepositEntry } from '../api/deposits.js';
import { SignVoluntaryExitAnswer } from '../api/exits.js';
import { pathTo, podTemplates, ROUTES } from '../api/paths.js';
import { PodKeysAnswer } from '../api/pod-keys.js';
import { PUBKEY_ANY_CASE } from '../api/pubkey.js';
import { AssignmentsAnswer } from '../api/status.js';
import { PkmError } from '../errors.js';
import { mkdirPrivate, writePrivateFile } from '../files.js';
import { type ApiOptions, callServer } from './api.js';

export interface ExitExportOptions {
  readonly out: string;
  /** Only this pod's keys (default namespace unless given). */
  readonly pod?: { readonly name: string; readonly namespace?: string } | undefined;
  /** Decimal uint64: the earliest epoch the exits may be processed at. */
  readonly epoch: string;
  /** Validator indices given by hand (--index), by lowercase pubkey. */
  readonly indices: ReadonlyMap<string, string>;
}

export interface ExitExportOutcome {
  readonly out: string;
  readonly written: string[];
  /** Keys with no validator index known to the server or given with --index. */
  readonly noIndex: string[];
  /** Keys the server holds no secret for any more (retired): nothing to sign with. */
  readonly skipped: string[];
}

function answerOf<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new PkmError('SERVER_FAILED', `the server answered no ${what}`);
  return parsed.data;
}

/**
 * The keys to export: the pod's, or every key the server shows: those pods hold
 * (/v1/assignments) and those with deposit data (/v1/deposits, free and cooling keys too).
 */
async function pubkeysOf(api: ApiOptions, opts: ExitExportOptions): Promise<string[]> {
  if (opts.pod !== undefined) {
    const [plain, namespaced] = podTemplates('keys');
    const path =
      opts.pod.namespace === undefined
        ? pathTo(plain, { pod: opts.pod.name })
        : pathTo(namespaced, { pod: opts.pod.name, namespace: opts.pod.namespace });
    return answerOf(PodKeysAnswer, await callServer(api, 'GET', path), 'pod keys').pubkeys;
  }
  const held = answerOf(
    AssignmentsAnswer,
    await callServer(api, 'GET', pathTo(ROUTES.assignments, {})),
    'assignments',
  );
  const deposits = answerOf(
    z.array(DepositEntry),
    await callServer(api, 'GET', pathTo(ROUTES.deposits, {})),
    'deposit data',
  );
  // deposit_data.json writes the pubkey without 0x.
  const deposited = deposits.map((d) => `0x${d.pubkey}`);
  const all = [...Object.values(held.pods).flat(), ...deposited].map((pk) => pk.toLowerCase());
  return [...new Set(all.filter((pk) => PUBKEY_ANY_CASE.test(pk)))].sort();
}

export async function exportExits(
  api: ApiOptions,
  opts: ExitExportOptions,
): Promise<ExitExportOutcome> {
  await mkdirPrivate(opts.out);
  const outcome = {
    out: opts.out,
    written: [] as string[],
    noIndex: [] as string[],
    skipped: [] as string[],
  };
  for (const pubkey of await pubkeysOf(api, opts)) {
    const index = opts.indices.get(pubkey);
    const query = new URLSearchParams({
      epoch: opts.epoch,
      ...(index === undefined ? {} : { validator_index: index }),
    });
    let answer: unknown;
    try {
      answer = await callServer(
        api,
        'POST',
        `${pathTo(ROUTES.voluntaryExit, { pubkey })}?${query}`,
      );
    } catch (err) {
      if (!(err instanceof PkmError)) throw err;
      if (err.code === 'VALIDATOR_INDEX_UNKNOWN') outcome.noIndex.push(pubkey);
      else if (err.code === 'KEY_NOT_FOUND') outcome.skipped.push(pubkey);
      else throw err;
      continue;
    }
    const { data } = answerOf(SignVoluntaryExitAnswer, answer, 'signed exit');
    const file = join(opts.out, `${pubkey}.json`);
    await writePrivateFile(file, `${JSON.stringify(data, null, 2)}\n`);
    outcome.written.push(file);
  }
  return outcome;
}

/** --index 0xpubkey=123 (repeatable), by lowercase pubkey. */
export function parseIndices(values: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const value of values) {
    const match = /^(0[xX][0-9a-fA-F]{96})=(0|[1-9][0-9]{0,19})$/.exec(value);
    if (match?.[1] === undefined || match[2] === undefined || BigInt(match[2]) >= 2n ** 64n)
      throw new PkmError(
        'INVALID_CONFIG',
        `--index takes a pubkey and its validator index, not "${value}", e.g. --index 0x93247f…=123`,
      );
    out.set(match[1].toLowerCase(), match[2]);
  }
  return out;
}
