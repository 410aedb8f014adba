// A small beacon node on 127.0.0.1 that speaks the standard API's wire format
// (ethereum/beacon-APIs) for the calls the liveness gate makes, with knobs for each way a real
// node, or what sits in front of it, can go wrong.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { NETWORKS } from '../../src/deposit/networks.js';
import { onCleanup } from '../helpers.js';

export interface FakeValidator {
  index: string;
  status: string;
  slashed: boolean;
}

export type FakeRoute =
  | 'genesis'
  | 'spec'
  | 'syncing'
  | 'postValidators'
  | 'getValidators'
  | 'liveness';

export interface FakeBeaconState {
  /** The path the node is served under (a proxy's prefix), e.g. "/beacon". */
  prefix: string;
  genesis: { genesis_time: string; genesis_validators_root: string; genesis_fork_version: string };
  spec: Record<string, string>;
  syncing: { is_syncing: boolean; is_optimistic: boolean; el_offline: boolean };
  /** The head slot; default: the wall clock's slot (from `now`). */
  headSlot: number | undefined;
  /** The node's wall clock (ms), for its head slot. */
  now: () => number;
  /** By lowercase pubkey. */
  validators: Map<string, FakeValidator>;
  /** Indices seen live, in any epoch asked. */
  live: Set<string>;
  /** Routes this node does not have: a plain 404, as from a node or proxy that lacks them. */
  missing: Set<FakeRoute>;
  /** The liveness route answers this status with the spec's ErrorMessage instead. */
  livenessStatus: number | undefined;
  /** Indices left out of liveness answers (a partial answer). */
  livenessOmits: Set<string>;
  /** Replaces a liveness answer's body (a wrong shape). */
  livenessBody: unknown;
}

export interface FakeBeacon {
  readonly url: string;
  readonly state: FakeBeaconState;
  /** `METHOD /path` of every request, in order (the query is left out). */
  readonly calls: string[];
  /** The ids of each validators request, in order. */
  readonly validatorIds: string[][];
  /** The Authorization header of every request, in order. */
  readonly authorizations: Array<string | undefined>;
  close(): Promise<void>;
}

/** 0x + 96 hex digits: the beacon API does not check that it is a point on the curve. */
export function fakePubkey(): string {
  return `0x${randomBytes(48).toString('hex')}`;
}

export async function fakeBeacon(init: Partial<FakeBeaconState> = {}): Promise<FakeBeacon> {
  const hoodi = NETWORKS.hoodi;
  const state: FakeBeaconState = {
    prefix: '',
    genesis: {
      genesis_time: String(hoodi.genesisTime),
      genesis_validators_root: hoodi.genesisValidatorsRoot ?? '',
      genesis_fork_version: hoodi.forkVersion,
    },
    spec: { SECONDS_PER_SLOT: '12', SLOTS_PER_EPOCH: '32', CONFIG_NAME: 'hoodi' },
    syncing: { is_syncing: false, is_optimistic: false, el_offline: false },
    headSlot: undefined,
    now: () => Date.now(),
    validators: new Map(),
    live: new Set(),
    missing: new Set(),
    livenessStatus: undefined,
    livenessOmits: new Set(),
    livenessBody: undefined,
    ...init,
  };
  const calls: string[] = [];
  const validatorIds: string[][] = [];
  const authorizations: Array<string | undefined> = [];

  const json = (res: ServerResponse, status: number, body: unknown) =>
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const error = (res: ServerResponse, status: number, message: string) =>
    json(res, status, { code: status, message });

  const validatorsAnswer = (ids: string[]) => {
    validatorIds.push(ids);
    // "If an index or public key does not match any known validator, no information will be
    // returned but this will not cause an error."
    const data = ids.flatMap((id) => {
      const v = state.validators.get(id.toLowerCase());
      if (v === undefined) return [];
      return [
        {
          index: v.index,
          balance: '32000000000',
          status: v.status,
          validator: {
            pubkey: id.toLowerCase(),
            withdrawal_credentials: `0x01${'00'.repeat(11)}${'ab'.repeat(20)}`,
            effective_balance: '32000000000',
            slashed: v.slashed,
            activation_eligibility_epoch: '0',
            activation_epoch: '0',
            exit_epoch: '18446744073709551615',
            withdrawable_epoch: '18446744073709551615',
          },
        },
      ];
    });
    return { execution_optimistic: state.syncing.is_optimistic, finalized: false, data };
  };

  const handle = (req: IncomingMessage, res: ServerResponse, body: string) => {
    const url = new URL(req.url ?? '/', 'http://x');
    calls.push(`${req.method} ${url.pathname}`);
    authorizations.push(req.headers.authorization);
    if (!url.pathname.startsWith(`${state.prefix}/`)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found');
      return;
    }
    const path = url.pathname.slice(state.prefix.length);
    const route = (name: FakeRoute) => !state.missing.has(name);
    if (req.method === 'GET' && path === '/eth/v1/beacon/genesis' && route('genesis'))
      return json(res, 200, { data: state.genesis });
    if (req.method === 'GET' && path === '/eth/v1/config/spec' && route('spec'))
      return json(res, 200, { data: state.spec });
    if (req.method === 'GET' && path === '/eth/v1/node/syncing' && route('syncing')) {
      const slotMs = Number(state.spec.SECONDS_PER_SLOT) * 1000;
      const wallSlot = Math.floor(
        (state.now() - Number(state.genesis.genesis_time) * 1000) / slotMs,
      );
      const head = state.headSlot ?? wallSlot;
      return json(res, 200, {
        data: {
          head_slot: String(head),
          sync_distance: String(state.syncing.is_syncing ? Math.max(1, wallSlot - head) : 0),
          ...state.syncing,
        },
      });
    }
    if (path === '/eth/v1/beacon/states/head/validators') {
      if (req.method === 'GET' && route('getValidators')) {
        const ids = url.searchParams.getAll('id').flatMap((v) => v.split(','));
        if (ids.length > 64) return error(res, 414, 'Too many validator IDs in request');
        return json(res, 200, validatorsAnswer(ids));
      }
      if (req.method === 'POST' && route('postValidators')) {
        const parsed = JSON.parse(body) as { ids?: string[] };
        return json(res, 200, validatorsAnswer(parsed.ids ?? []));
      }
    }
    const liveness = /^\/eth\/v1\/validator\/liveness\/(\d+)$/.exec(path);
    if (req.method === 'POST' && liveness && route('liveness')) {
      if (state.livenessStatus !== undefined)
        return error(res, state.livenessStatus, 'liveness not available');
      const indices = JSON.parse(body) as string[];
      if (!Array.isArray(indices) || indices.length === 0)
        return error(res, 400, 'Invalid request body');
      if (state.livenessBody !== undefined) return json(res, 200, state.livenessBody);
      return json(res, 200, {
        data: indices
          .filter((index) => !state.livenessOmits.has(index))
          .map((index) => ({ index, is_live: state.live.has(index) })),
      });
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found');
  };

  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      try {
        handle(req, res, body);
      } catch {
        error(res, 400, 'Invalid request');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  onCleanup(close);
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, state, calls, validatorIds, authorizations, close };
}

/** A port on 127.0.0.1 that nothing listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
