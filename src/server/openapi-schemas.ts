// The schemas of the OpenAPI document (openapi.ts): bodies, answers and the error shape.
import { IgnoredReason } from '../api/interchange.js';
import { ERROR_CODES } from '../errors.js';
import { StoredState } from '../store/records.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Schema = { [key: string]: Json };

export const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
export const PUBKEY: Schema = { type: 'string', pattern: '^0x[0-9a-fA-F]{96}$' };
export const strings: Schema = { type: 'array', items: { type: 'string' } };

export const SCHEMAS: Record<string, Schema> = {
  ErrorCode: {
    type: 'string',
    enum: ERROR_CODES,
    description: 'Every code; CLI-only codes never come from the server',
  },
  Error: {
    type: 'object',
    required: ['error'],
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message'],
        properties: { code: ref('ErrorCode'), message: { type: 'string' } },
      },
    },
  },
  KeyState: { type: 'string', enum: [...StoredState.options] },
  AllocateRequest: {
    type: 'object',
    required: ['count'],
    additionalProperties: false,
    properties: { count: { type: 'integer', minimum: 1 } },
  },
  Allocation: {
    type: 'object',
    required: ['pod', 'keys'],
    properties: {
      namespace: { type: 'string' },
      pod: { type: 'string' },
      keys: {
        type: 'array',
        items: {
          type: 'object',
          required: ['pubkey', 'secretKey'],
          properties: {
            pubkey: PUBKEY,
            secretKey: { type: 'string', pattern: '^0x[0-9a-f]{64}$' },
            path: { type: 'string', description: 'EIP-2334 path, for mnemonic keys' },
            slashingProtection: ref('Interchange'),
          },
        },
      },
    },
  },
  PodKeys: {
    type: 'object',
    required: ['pod', 'pubkeys'],
    properties: { namespace: { type: 'string' }, pod: { type: 'string' }, pubkeys: strings },
  },
  ProtectionStored: {
    type: 'object',
    required: ['pod', 'pubkeys', 'ignored'],
    properties: {
      namespace: { type: 'string' },
      pod: { type: 'string' },
      pubkeys: { ...strings, description: 'keys whose history was stored (merged)' },
      ignored: {
        type: 'array',
        description: 'keys the interchange lists whose history was not stored',
        items: {
          type: 'object',
          required: ['pubkey', 'reason'],
          properties: {
            pubkey: { type: 'string' },
            reason: {
              type: 'string',
              enum: [...IgnoredReason.options],
              description:
                'not-held: another pod’s, or free; conflict: two pods ran it; retired; unknown: no such key',
            },
          },
        },
      },
    },
  },
  Released: {
    type: 'object',
    required: ['pod', 'released'],
    properties: { namespace: { type: 'string' }, pod: { type: 'string' }, released: strings },
  },
  HeartbeatRequest: {
    type: 'object',
    required: ['pubkeys'],
    additionalProperties: false,
    properties: {
      pubkeys: { type: 'array', items: PUBKEY, maxItems: 4096 },
      proofs: {
        type: 'object',
        description:
          'Proofs of possession, for keys the store does not record as this pod’s: pubkey -> BLS signature (0x, 96 bytes) by that key over the UTF-8 text "pkm heartbeat proof of possession v1\\n<bootToken>\\n<namespace>/<pod>\\n<pubkey>", under the DST PKM_HEARTBEAT_POSSESSION_BLS12381G2_XMD:SHA-256_SSWU_RO_ (never Ethereum’s). At most --max-keys-per-pod, each for a key in pubkeys.',
        propertyNames: PUBKEY,
        additionalProperties: { type: 'string', pattern: '^0x[0-9a-fA-F]{192}$' },
      },
    },
  },
  Heartbeat: {
    type: 'object',
    properties: {
      pod: { type: 'string' },
      bootToken: { type: 'string' },
      reclaimed: strings,
      conflicts: strings,
      unknown: strings,
      reported: {
        ...strings,
        description:
          'keys the store had not as this pod’s, proven: recorded as reported by this pod, never handed out',
      },
      stillCooling: {
        ...strings,
        description: 'keys released by this pod without a confirmed stop: they stay cooling',
      },
      refused: {
        ...strings,
        description:
          'claims without a valid proof of possession: nothing changed; send them again with proofs over this bootToken',
      },
    },
  },
  Interchange: {
    type: 'object',
    description: 'EIP-3076 slashing-protection interchange, version 5',
    required: ['metadata', 'data'],
    properties: {
      metadata: {
        type: 'object',
        properties: {
          interchange_format_version: { type: 'string' },
          genesis_validators_root: { type: 'string' },
        },
      },
      data: { type: 'array', items: { type: 'object' } },
    },
  },
  Assignments: {
    type: 'object',
    required: ['counts', 'pods'],
    properties: {
      counts: { type: 'object', additionalProperties: { type: 'integer' } },
      pods: { type: 'object', additionalProperties: strings },
    },
  },
  DepositEntry: {
    type: 'object',
    properties: Object.fromEntries(
      [
        'pubkey',
        'withdrawal_credentials',
        'signature',
        'deposit_message_root',
        'deposit_data_root',
        'fork_version',
        'network_name',
        'deposit_cli_version',
      ]
        .map((f) => [f, { type: 'string' }] as [string, Json])
        .concat([['amount', { type: 'integer' }]]),
    ),
  },
  Events: {
    type: 'object',
    required: ['events', 'next'],
    properties: {
      events: {
        type: 'array',
        items: {
          type: 'object',
          required: ['seq', 'at', 'type', 'pubkeys'],
          properties: {
            seq: { type: 'integer' },
            at: { type: 'integer' },
            type: { type: 'string' },
            pod: { type: 'string' },
            pubkeys: strings,
            detail: { type: 'string' },
          },
        },
      },
      next: { type: 'integer' },
    },
  },
  Status: {
    type: 'object',
    required: ['ready', 'counts', 'pool', 'conflicts', 'lastDeposits'],
    properties: {
      ready: { type: 'boolean' },
      notReady: { type: 'string' },
      counts: { type: 'object', additionalProperties: { type: 'integer' } },
      pool: {
        type: 'object',
        properties: {
          free: { type: 'integer' },
          cooling: { type: 'integer' },
          canCreate: { type: 'boolean' },
          healthy: { type: 'boolean' },
        },
      },
      conflicts: { type: 'array', items: ref('RecentEvent') },
      fences: {
        type: 'array',
        items: ref('RecentEvent'),
        description: 'keys fenced lately: their holder’s stop was not confirmed',
      },
      reported: { type: 'array', items: ref('RecentEvent') },
      lastDeposits: { type: 'array', items: ref('RecentEvent') },
    },
  },
  RecentEvent: {
    type: 'object',
    required: ['at', 'pubkeys'],
    properties: {
      at: { type: 'string', format: 'date-time' },
      pod: { type: 'string' },
      pubkeys: strings,
      detail: { type: 'string' },
    },
  },
  RetireRequest: {
    type: 'object',
    additionalProperties: false,
    properties: { reason: { type: 'string', maxLength: 200 } },
  },
  KekRotationRequest: {
    type: 'object',
    required: ['newKekFile'],
    additionalProperties: false,
    properties: { newKekFile: { type: 'string' } },
  },
  KekRotation: {
    type: 'object',
    properties: {
      from: { type: 'string' },
      target: { type: 'string' },
      migrated: { type: 'integer' },
    },
  },
  AdmissionReview: {
    type: 'object',
    description: 'admission.k8s.io/v1 AdmissionReview',
    required: ['apiVersion', 'kind'],
    properties: {
      apiVersion: { const: 'admission.k8s.io/v1' },
      kind: { const: 'AdmissionReview' },
      request: { type: 'object' },
      response: { type: 'object' },
    },
  },
};
