// `pkm status`, for a terminal: the server's /v1/status in a few lines.
import { type RecentEvent, StatusAnswer } from '../api/status.js';
import { PkmError } from '../errors.js';

const short = (pubkey: string) => `${pubkey.slice(0, 10)}…${pubkey.slice(-6)}`;

function recent(e: RecentEvent): string {
  const who = e.pod === undefined ? '' : ` ${e.pod}`;
  return `${e.at}${who} ${e.pubkeys.map(short).join(' ')}${e.detail ? ` (${e.detail})` : ''}`;
}

export function statusText(answer: unknown): string {
  const parsed = StatusAnswer.safeParse(answer);
  if (!parsed.success) throw new PkmError('SERVER_FAILED', 'the server answered no status');
  const s = parsed.data;
  const { pods, total, ...states } = s.counts;
  const pool = s.pool.healthy
    ? `ok: ${s.pool.free} free${s.pool.canCreate ? ', new keys allowed' : s.pool.newKeys === 'never' ? ', --new-keys never' : ''}`
    : s.pool.newKeys === 'never'
      ? `EXHAUSTED: no free key and --new-keys never (${s.pool.cooling} cooling): import keystores with pkm keys import or POST /eth/v1/keystores`
      : `EXHAUSTED: no free key and --max-total-keys reached (${s.pool.cooling} cooling)`;
  const lines = [
    `ready      ${s.ready ? 'yes' : `NO: ${s.notReady ?? 'unknown'}`}`,
    `keys       ${Object.entries(states)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')} (total ${total ?? 0})`,
    `pods       ${pods ?? 0}`,
    `pool       ${pool}`,
    `conflicts  ${s.conflicts.length === 0 ? 'none' : `${s.conflicts.length} recent, retire or resolve:`}`,
    ...s.conflicts.map((e) => `  ${recent(e)}`),
    `deposits   ${s.lastDeposits.length === 0 ? 'none' : 'latest first:'}`,
    ...s.lastDeposits.map((e) => `  ${recent(e)}`),
  ];
  return `${lines.join('\n')}\n`;
}
