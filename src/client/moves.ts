// `pkm move` and `pkm rebalance` (issue 16, point 3): ask a running server to move keys between
// running pods (POST /v1/moves, /v1/rebalance; admin). The server only marks the keys leaving;
// each moves once its pod's agent (pkm agent --keymanager-url) deleted it from its VC. With
// --wait, the command then waits until no key is left in its old pod, and says where each went.
import { setTimeout as sleep } from 'node:timers/promises';
import { MoveAnswer, RebalanceAnswer } from '../api/moves.js';
import { podIdentity, podPath } from '../api/names.js';
import { pathTo, ROUTES } from '../api/paths.js';
import { PodKeysAnswer } from '../api/pod-keys.js';
import { PkmError } from '../errors.js';
import { type ApiOptions, callServer } from './api.js';

export interface MoveRequest {
  readonly from: { readonly namespace: string; readonly name: string };
  readonly to: { readonly namespace: string; readonly name: string };
  readonly count: number;
}

export async function requestMove(api: ApiOptions, req: MoveRequest): Promise<MoveAnswer> {
  const parsed = MoveAnswer.safeParse(
    await callServer(api, 'POST', pathTo(ROUTES.moves, {}), {
      from: podIdentity(req.from.namespace, req.from.name),
      to: podIdentity(req.to.namespace, req.to.name),
      count: req.count,
    }),
  );
  if (!parsed.success) throw new PkmError('SERVER_FAILED', "the server's answer is not a move");
  return parsed.data;
}

export async function requestRebalance(
  api: ApiOptions,
  selector: string,
): Promise<RebalanceAnswer> {
  const parsed = RebalanceAnswer.safeParse(
    await callServer(api, 'POST', pathTo(ROUTES.rebalance, {}), { selector }),
  );
  if (!parsed.success)
    throw new PkmError('SERVER_FAILED', "the server's answer is not a rebalance");
  return parsed.data;
}

/** Where a moved key is once it left its old pod: in the destination, or elsewhere (cooling). */
export interface Arrival {
  readonly arrived: string[];
  /** Left its old pod without arriving: without proof it cools (see the server's log). */
  readonly elsewhere: string[];
}

/**
 * Waits until none of the moves' keys is in its old pod any more (their agents deleted them
 * and reported), polling every `everyMs`; TIMEOUT after `timeoutMs`, naming those still there.
 */
export async function waitForMoves(
  api: ApiOptions,
  moves: readonly MoveAnswer[],
  timeoutMs: number,
  everyMs = 1000,
): Promise<Arrival> {
  const keysOf = async (identity: string) => {
    const slash = identity.indexOf('/');
    const [ns, name] =
      slash < 0 ? ['default', identity] : [identity.slice(0, slash), identity.slice(slash + 1)];
    const parsed = PodKeysAnswer.safeParse(await callServer(api, 'GET', podPath(ns, name)));
    if (!parsed.success)
      throw new PkmError('SERVER_FAILED', "the server's answer is not a pod's keys");
    return new Set(parsed.data.pubkeys);
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const waiting: string[] = [];
    const out: Arrival = { arrived: [], elsewhere: [] };
    for (const m of moves) {
      const [from, to] = await Promise.all([keysOf(m.from), keysOf(m.to)]);
      for (const pk of m.keys) {
        if (from.has(pk)) waiting.push(pk);
        else (to.has(pk) ? out.arrived : out.elsewhere).push(pk);
      }
    }
    if (waiting.length === 0) return out;
    if (Date.now() > deadline)
      throw new PkmError(
        'TIMEOUT',
        `${waiting.length} key(s) are still in their old pod (its agent has not deleted them yet): ${waiting.join(', ')}`,
      );
    await sleep(everyMs);
  }
}
