// `pkm release`: a pod's way out, made for a preStop hook. With --interchange, the pod's
// EIP-3076 history goes up first, and the keys are released only once the server has stored
// the history of the pod's own keys: released keys cool, then go to another pod, which must
// get that history with them.
import { readFile } from 'node:fs/promises';
import { type IgnoredKey, ProtectionStored, type UploadAnswer } from '../api/interchange.js';
import { podPath } from '../api/names.js';
import { ReleasedAnswer } from '../api/pod-keys.js';
import { messageOf, PkmError } from '../errors.js';
import { type ApiOptions, callServer } from './api.js';

export interface ReleaseTarget {
  readonly namespace: string;
  readonly pod: string;
  /** An EIP-3076 interchange file (the validator client's export). */
  readonly interchangeFile?: string | undefined;
}

export interface ReleaseOutcome {
  readonly released: ReleasedAnswer;
  /** With an interchange: the keys whose history was stored, and those the server left out. */
  readonly protection?: UploadAnswer;
}

async function readInterchange(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new PkmError(
      'INVALID_INTERCHANGE',
      `--interchange ${file} is not a readable JSON file: ${messageOf(err)}`,
    );
  }
}

/**
 * Uploads the history (if given), then releases. Any refusal of the upload, such as
 * GENESIS_ROOT_UNKNOWN or INTERCHANGE_MISMATCH, is thrown before the release: the keys stay
 * with the pod rather than cool towards another pod with no history (README "Slashing
 * protection travels with a key"). Keys the server ignored (not the pod's any more) do not
 * stop the release: their history is not this pod's to hand on.
 */
export async function releasePod(
  connection: ApiOptions,
  target: ReleaseTarget,
): Promise<ReleaseOutcome> {
  const keysPath = podPath(target.namespace, target.pod);
  let protection: UploadAnswer | undefined;
  if (target.interchangeFile !== undefined) {
    const interchange = await readInterchange(target.interchangeFile);
    const answer = await callServer(
      connection,
      'POST',
      podPath(target.namespace, target.pod, 'slashing-protection'),
      interchange,
    );
    const parsed = ProtectionStored.safeParse(answer);
    if (!parsed.success)
      throw new PkmError(
        'SERVER_FAILED',
        'the server answered the upload without the pubkeys it stored: nothing released',
      );
    protection = { pubkeys: parsed.data.pubkeys, ignored: parsed.data.ignored };
  }
  const answer = ReleasedAnswer.safeParse(await callServer(connection, 'DELETE', keysPath));
  if (!answer.success)
    throw new PkmError('SERVER_FAILED', 'the server answered the release without its keys');
  return { released: answer.data, ...(protection ? { protection } : {}) };
}

/** One line per key whose history the server did not store, for stderr. */
export function ignoredLines(ignored: readonly IgnoredKey[]): string[] {
  return ignored.map(
    (k) => `pkm: warning: the server did not store the history of ${k.pubkey} (${k.reason})`,
  );
}
