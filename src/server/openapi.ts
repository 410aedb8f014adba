// The HTTP API as an OpenAPI 3.1 document, served at /openapi.json. Error responses are built
// from the code table in errors.ts, so a code's status here is the status the server sends.
// test/server/openapi.test.ts checks that every express route is here and every route here
// answers.
import { componentRef } from '../api/components.js';
import { MAX_POD_NAME } from '../api/names.js';
import { queryParameters } from '../api/parameters.js';
import { openApiPath, type PodRoute, podTemplates, ROUTES } from '../api/paths.js';
import { QUERIES } from '../api/queries.js';
import { type ErrorCode, PkmError, statusOf } from '../errors.js';
import { keymanagerStatus } from './http-errors.js';
import { PUBKEY, ref, SCHEMAS, type Schema } from './openapi-schemas.js';

/** The document's JSON; a generated schema is any JSON object. */
type Json = null | boolean | number | string | Json[] | { [key: string]: Json } | Schema;
const json = (schema: Schema) => ({ 'application/json': { schema } });

/**
 * The error responses of a route, grouped by the status each code has in errors.ts. A Keymanager
 * API route's errors also carry the spec's ErrorResponse (a top-level `message`).
 */
function errors(codes: readonly ErrorCode[], keymanager = false): Record<string, Json> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of [...codes, 'METHOD_NOT_ALLOWED', 'INTERNAL'] as const) {
    const status = keymanager ? keymanagerStatus(new PkmError(code, '')) : statusOf(code);
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<string, Json> = {};
  for (const [status, list] of [...byStatus].sort(([a], [b]) => a - b))
    out[String(status)] = {
      description: [...new Set(list)].join(', '),
      content: json({
        allOf: [
          ref('Error'),
          ...(keymanager ? [ref('KeymanagerError')] : []),
          { properties: { error: { properties: { code: { enum: [...new Set(list)] } } } } },
        ],
      }),
    };
  return out;
}

function ok(description: string, schema: Schema, type = 'application/json'): Record<string, Json> {
  return { '200': { description, content: { [type]: { schema } } } };
}

const AUTH: ErrorCode[] = ['AUTH_REQUIRED', 'INVALID_TOKEN', 'FORBIDDEN', 'AUTH_UNAVAILABLE'];
const POD: ErrorCode[] = [
  'INVALID_POD_NAME',
  'INVALID_NAMESPACE',
  'NAMESPACE_NOT_SERVED',
  ...AUTH,
  'NOT_READY',
];
const BODY: ErrorCode[] = [
  'INVALID_BODY',
  'MALFORMED_JSON',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
];
/** The spec's Uint64, as the signed exit's message holds it. */
const uint64 = `${componentRef('SignedVoluntaryExit')}/properties/message/properties/epoch`;
const podToken = [{ podToken: [] }, { adminToken: [] }];
const adminToken = [{ adminToken: [] }];

/** The operations on one pod's keys, for /v1/pods/{pod}/… (plain) and /v1/namespaces/{namespace}/pods/{pod}/…. */
function podPaths(namespaced: boolean): Record<string, Json> {
  const path = (route: PodRoute) => openApiPath(podTemplates(route)[namespaced ? 1 : 0]);
  const params: Json[] = [
    ...(namespaced
      ? [{ name: 'namespace', in: 'path', required: true, schema: { type: 'string' } }]
      : []),
    {
      name: 'pod',
      in: 'path',
      required: true,
      schema: { type: 'string', maxLength: MAX_POD_NAME },
    },
  ];
  const where = namespaced ? 'in {namespace}' : 'in the default namespace';
  return {
    [path('keys')]: {
      parameters: params,
      post: {
        summary: `Allocate keys to a pod ${where} (its own keys again, then free ones, then new ones)`,
        security: podToken,
        requestBody: { required: true, content: json(ref('AllocateRequest')) },
        responses: {
          ...ok("The pod's keys, with secrets (Cache-Control: no-store)", ref('Allocation')),
          ...errors([
            ...POD,
            ...BODY,
            'COUNT_OUT_OF_RANGE',
            'COUNT_MISMATCH',
            'POOL_EXHAUSTED',
            'RATE_LIMITED',
            'BEACON_UNAVAILABLE',
            'DEPOSIT_RPC_UNAVAILABLE',
            'DEPOSIT_TIMEOUT',
            'DEPOSIT_FUNDS',
            'DEPOSIT_RATE_LIMITED',
            'DEPOSIT_REVERTED',
            'DEPOSIT_REJECTED',
          ]),
        },
      },
      get: {
        summary: `The pubkeys a pod ${where} holds`,
        security: podToken,
        responses: { ...ok('Pubkeys', ref('PodKeys')), ...errors(POD) },
      },
      delete: {
        summary: `Release a pod's keys ${where}: they cool for --reuse-delay`,
        security: podToken,
        responses: { ...ok('The released pubkeys', ref('Released')), ...errors(POD) },
      },
      put: {
        summary: `Change the count of a running pod ${where}; its agent (--keymanager-url) makes its VC follow`,
        description:
          'Fewer: the keys handed out last are marked leaving; the pod holds them until its agent reports them deleted from its VC. More: keys leaving for the pool stay instead, then the pod is topped up as POST does (all or nothing). 0 to --max-keys-per-pod. A refusal changes nothing.',
        security: adminToken,
        requestBody: { required: true, content: json(ref('SetCountRequest')) },
        responses: {
          ...ok('The keys the pod is to run, and those leaving', ref('SetCount')),
          ...errors([
            ...POD,
            ...BODY,
            'COUNT_OUT_OF_RANGE',
            'COUNT_MISMATCH',
            'POOL_EXHAUSTED',
            'BEACON_UNAVAILABLE',
            'RESYNCING',
          ]),
        },
      },
    },
    [path('assignment')]: {
      parameters: params,
      post: {
        summary:
          "The pod agent's view (live key moves): every key the pod holds, which are leaving, their settings, and the secret and slashing protection of each key to run that its VC does not have (Cache-Control: no-store)",
        security: podToken,
        requestBody: { required: true, content: json(ref('AssignmentRequest')) },
        responses: {
          ...ok('The assignment', ref('Assignment')),
          ...errors([...POD, ...BODY, 'RATE_LIMITED', 'OTHER_INCARNATION']),
        },
      },
    },
    [path('removals')]: {
      parameters: params,
      post: {
        summary:
          "Report keys the pod's agent deleted from its VC, with the VC's DELETE /eth/v1/keystores answer: one commit stores the returned history and settings and lets each leaving key go (at once with proof, else cooling)",
        description:
          "Proof: status deleted or not_active, and an interchange entry that covers the key (non-empty for a key that was active: Prysm #17408; never below the history on record). An interchange of another chain is refused (INTERCHANGE_MISMATCH) and changes nothing; so is a report from another incarnation (UID) of the pod than the keys' holder (OTHER_INCARNATION). The caller is checked before the body is read.",
        security: podToken,
        requestBody: { required: true, content: json(ref('RemovalsRequest')) },
        responses: {
          ...ok('What became of each key', ref('Removals')),
          ...errors([
            ...POD,
            ...BODY,
            'INVALID_INTERCHANGE',
            'INTERCHANGE_MISMATCH',
            'OTHER_INCARNATION',
            'RATE_LIMITED',
          ]),
        },
      },
    },
    [path('heartbeat')]: {
      parameters: params,
      post: {
        summary:
          'Report the keys the pod runs (pkm agent); a claim on a key the store does not record as the pod’s needs a proof of possession',
        security: podToken,
        requestBody: { required: true, content: json(ref('HeartbeatRequest')) },
        responses: {
          ...ok('Reconciled', ref('Heartbeat')),
          ...errors([...POD, ...BODY, 'RATE_LIMITED']),
        },
      },
    },
    [path('slashing-protection')]: {
      parameters: params,
      post: {
        summary: "Upload the pod's EIP-3076 slashing-protection history for its keys",
        security: podToken,
        requestBody: { required: true, content: json(ref('Interchange')) },
        description:
          "Per key: the history of each key the pod holds (or released and is still cooling) is merged into it; every other key listed is named in `ignored`, with why. The whole upload is refused when its genesis_validators_root is not the server's (INTERCHANGE_MISMATCH names both), and when the server knows no root yet and the caller is a pod (GENESIS_ROOT_UNKNOWN): only --network, --genesis-validators-root or an admin token set it. A refusal changes nothing.",
        responses: {
          ...ok(
            'The pubkeys whose history was stored, and those left out',
            ref('ProtectionStored'),
          ),
          ...errors([
            ...POD,
            ...BODY,
            'INVALID_INTERCHANGE',
            'INTERCHANGE_MISMATCH',
            'GENESIS_ROOT_UNKNOWN',
          ]),
        },
      },
    },
  };
}

const probe = (summary: string, extra: ErrorCode[] = []) => ({
  get: {
    summary,
    security: [],
    responses: {
      ...ok('OK', ref('Probe')),
      ...errors(extra),
    },
  },
});

export function openApiDocument(version: string): Schema {
  return {
    openapi: '3.1.0',
    info: {
      title: 'cluster-pk-manager (pkm)',
      version,
      description:
        'Hands Ethereum validator BLS keys to Kubernetes validator pods, slashing-safely. Errors are always {"error":{"code","message"}}; the code is stable, the message may change.',
    },
    servers: [{ url: '/' }],
    paths: {
      [ROUTES.health]: probe('Liveness: the process answers'),
      [ROUTES.ready]: probe('Readiness: the store is open, not draining, the funder can pay', [
        'NOT_READY',
      ]),
      [ROUTES.metrics]: {
        get: {
          summary: 'Prometheus metrics',
          security: [],
          responses: {
            ...ok('Prometheus text format', { type: 'string' }, 'text/plain'),
            ...errors([]),
          },
        },
      },
      [ROUTES.openApi]: {
        get: {
          summary: 'This document',
          security: [],
          responses: { ...ok('OpenAPI 3.1', { type: 'object' }), ...errors([]) },
        },
      },
      ...podPaths(false),
      ...podPaths(true),
      [ROUTES.assignments]: {
        get: {
          summary: 'Counts per state, and which pod holds which pubkeys',
          security: [...adminToken, {}],
          responses: { ...ok('Assignments', ref('Assignments')), ...errors(AUTH) },
        },
      },
      [ROUTES.assignmentsPage]: {
        get: {
          summary: 'The assignments page (HTML): totals, filter, paginated table',
          security: [...adminToken, { adminBasic: [] }, {}],
          parameters: queryParameters(QUERIES[ROUTES.assignmentsPage]),
          responses: {
            ...ok('HTML page', { type: 'string' }, 'text/html'),
            ...errors([...AUTH, 'INVALID_QUERY']),
          },
        },
      },
      [ROUTES.status]: {
        get: {
          summary: 'For operators (pkm status): counts, pool health, recent conflicts and deposits',
          security: adminToken,
          responses: { ...ok('Status', ref('Status')), ...errors(AUTH) },
        },
      },
      [ROUTES.deposits]: {
        get: {
          summary: 'Deposit data (launchpad deposit_data.json format)',
          security: adminToken,
          parameters: queryParameters(QUERIES[ROUTES.deposits]),
          responses: {
            ...ok('Deposit entries', { type: 'array', items: ref('DepositEntry') }),
            ...errors([...AUTH, 'INVALID_QUERY', 'INVALID_POD_NAME']),
          },
        },
      },
      [ROUTES.events]: {
        get: {
          summary: 'The audit log, oldest first',
          security: adminToken,
          parameters: queryParameters(QUERIES[ROUTES.events]),
          responses: {
            ...ok('Events, and the cursor for the next read', ref('Events')),
            ...errors([...AUTH, 'INVALID_QUERY']),
          },
        },
      },
      [openApiPath(ROUTES.retireKey)]: {
        parameters: [{ name: 'pubkey', in: 'path', required: true, schema: PUBKEY }],
        post: {
          summary: 'Retire a key: it is never handed out again',
          security: adminToken,
          requestBody: { required: false, content: json(ref('RetireRequest')) },
          responses: {
            ...ok("The key's new state", ref('RetiredKey')),
            ...errors([...AUTH, ...BODY, 'INVALID_PUBKEY', 'KEY_NOT_FOUND', 'KEY_BUSY']),
          },
        },
      },
      [ROUTES.kekRotation]: {
        post: {
          summary: 'Re-encrypt every secret under the KEK in a file on the server',
          security: adminToken,
          requestBody: { required: true, content: json(ref('KekRotationRequest')) },
          responses: {
            ...ok('Done', ref('KekRotation')),
            ...errors([
              ...AUTH,
              ...BODY,
              'ROTATION_IN_PROGRESS',
              'INVALID_CONFIG',
              'NOT_READY',
              'STORE_LOCKED',
            ]),
          },
        },
      },
      [openApiPath(ROUTES.voluntaryExit)]: {
        parameters: [{ name: 'pubkey', in: 'path', required: true, schema: PUBKEY }],
        post: {
          summary:
            'Keymanager API signVoluntaryExit: a SignedVoluntaryExit for a key of the pool, over the EIP-7044 domain (Capella fork version), valid for good',
          description:
            "Only for a key whose secret the pool holds (not retired). The validator index is `validator_index` (pkm's addition to the spec) or looked up on --beacon-url. `epoch` defaults to the current epoch; 0 is valid at any epoch.",
          tags: ['Voluntary Exit'],
          security: adminToken,
          parameters: [
            { name: 'epoch', in: 'query', required: false, schema: { $ref: uint64 } },
            { name: 'validator_index', in: 'query', required: false, schema: { $ref: uint64 } },
          ],
          responses: {
            ...ok('The signed exit', ref('SignVoluntaryExitResponse')),
            ...errors(
              [
                ...AUTH,
                'INVALID_PUBKEY',
                'INVALID_QUERY',
                ...BODY,
                'KEY_NOT_FOUND',
                'VALIDATOR_INDEX_UNKNOWN',
                'EXIT_CHAIN_UNKNOWN',
                'BEACON_UNAVAILABLE',
                'WRONG_KEK',
              ],
              true,
            ),
          },
        },
      },
      [ROUTES.keysImport]: {
        post: {
          summary:
            'Import EIP-2335 keystores (and their EIP-3076 history): fenced until the reuse delay, or free if never validated',
          security: adminToken,
          requestBody: { required: true, content: json(ref('KeysImportRequest')) },
          responses: {
            ...ok('What was imported, skipped and refused (by index)', ref('KeysImport')),
            ...errors([
              ...AUTH,
              ...BODY,
              'INVALID_INTERCHANGE',
              'INTERCHANGE_MISMATCH',
              'GENESIS_ROOT_UNKNOWN',
              'INVALID_CONFIG',
              'NOT_READY',
            ]),
          },
        },
      },
      [ROUTES.keystores]: {
        get: {
          summary:
            'Keymanager API listKeys: every key of the pool (not retired, secret held); readonly: a pod holds it',
          tags: ['Local Key Manager'],
          security: adminToken,
          responses: {
            ...ok('The keys, streamed', ref('ListKeysResponse')),
            ...errors(AUTH, true),
          },
        },
        post: {
          summary:
            'Keymanager API importKeystores: keystores and passwords (and slashing_protection) as JSON-encoded strings; imported keys enter fenced',
          description:
            'As flows/README.md: lengths that differ, a body that is no such object, or a slashing_protection that cannot be read for this chain are 400 and import nothing; then one status per keystore, in order: imported, duplicate (the pool holds it already) or error. History is merged only for keys of this request.',
          tags: ['Local Key Manager'],
          security: adminToken,
          requestBody: { required: true, content: json(ref('ImportKeystoresRequest')) },
          responses: {
            ...ok('One status per keystore', ref('ImportKeystoresResponse')),
            ...errors([...AUTH, ...BODY, 'INVALID_CONFIG', 'NOT_READY'], true),
          },
        },
        delete: {
          summary:
            'Keymanager API deleteKeys: retires keys no pod holds and returns their slashing protection (kept, never deleted)',
          description:
            'Per key, in order: deleted (retired now: never handed out again), not_active (retired before; its protection is returned), not_found, or error (held by a pod, cooling inside the reuse delay, not cleared by the liveness gate, a deposit in flight, or no genesis_validators_root known): an error changes nothing. slashing_protection lists the deleted and not_active keys only.',
          tags: ['Local Key Manager'],
          security: adminToken,
          requestBody: { required: true, content: json(ref('DeleteKeysRequest')) },
          responses: {
            ...ok('One status per pubkey, and their protection', ref('DeleteKeysResponse')),
            ...errors([...AUTH, ...BODY, 'NOT_READY'], true),
          },
        },
      },
      [ROUTES.moves]: {
        post: {
          summary:
            'Move keys between running pods: `count` of `from`’s keys leave for `to`, each once its VC deleted it (live key moves)',
          security: adminToken,
          requestBody: { required: true, content: json(ref('MoveRequest')) },
          responses: {
            ...ok('The keys now leaving', ref('Move')),
            ...errors([
              ...AUTH,
              ...BODY,
              'INVALID_POD_NAME',
              'INVALID_NAMESPACE',
              'NAMESPACE_NOT_SERVED',
              'COUNT_OUT_OF_RANGE',
              'COUNT_MISMATCH',
            ]),
          },
        },
      },
      [ROUTES.rebalance]: {
        post: {
          summary:
            'Even the keys out over the pods a selector names (comma-separated names or patterns with *): the moves, marked in one commit',
          security: adminToken,
          requestBody: { required: true, content: json(ref('RebalanceRequest')) },
          responses: {
            ...ok('The moves', ref('Rebalance')),
            ...errors([...AUTH, ...BODY, 'NO_PODS_SELECTED']),
          },
        },
      },
      [ROUTES.podDeletionWebhook]: {
        post: {
          summary:
            "Validating admission webhook for DELETE of pods (always allowed; releases the pod's keys)",
          security: [{ apiServerCertificate: [] }, ...adminToken, {}],
          requestBody: { required: true, content: json(ref('AdmissionReview')) },
          responses: {
            ...ok('allowed: true, with the request uid', ref('AdmissionReviewAnswer')),
            ...errors(['INVALID_REVIEW', 'FORBIDDEN', 'INVALID_TOKEN', ...BODY]),
          },
        },
      },
    },
    components: {
      securitySchemes: {
        podToken: {
          type: 'http',
          scheme: 'bearer',
          description:
            "The pod's projected ServiceAccount token (audience pkm), checked by TokenReview (--token-review)",
        },
        adminToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'A token from --auth-token-file',
        },
        adminBasic: {
          type: 'http',
          scheme: 'basic',
          description: 'For a browser: any user name, the admin token as password',
        },
        apiServerCertificate: {
          type: 'mutualTLS',
          description: 'A client certificate signed by --webhook-client-ca',
        },
      },
      schemas: SCHEMAS,
    },
  };
}
