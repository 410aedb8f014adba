// The wire contract's schemas: a valid body or answer parses and serializes back unchanged, the
// strictness of bodies holds, and the OpenAPI document's components are the generated ones.
import { describe, expect, it } from 'vitest';
import { KekRotationBody, RetireBody } from '../../src/api/admin.js';
import { AdmissionReview } from '../../src/api/admission.js';
import { ANSWERS, BODIES, componentSchemas } from '../../src/api/components.js';
import { ErrorAnswer, ErrorReading } from '../../src/api/error.js';
import { HeartbeatAnswer, HeartbeatBody } from '../../src/api/heartbeat.js';
import { ProtectionStored } from '../../src/api/interchange.js';
import { AllocateBody, AllocationAnswer, ReleasedAnswer } from '../../src/api/pod-keys.js';
import { ProbeAnswer } from '../../src/api/probe.js';
import { StatusAnswer } from '../../src/api/status.js';
import { ERROR_CODES, PkmError } from '../../src/errors.js';
import { openApiDocument } from '../../src/server/openapi.js';
import { review } from '../support/review.js';

const pubkey = `0x${'ab'.repeat(48)}`;
const root = `0x${'00'.repeat(32)}`;
const interchange = {
  metadata: { interchange_format_version: '5', genesis_validators_root: root },
  data: [{ pubkey, signed_blocks: [{ slot: '7' }], signed_attestations: [] }],
};
const recent = { at: '2025-01-01T00:00:00.000Z', pod: 'v-0', pubkeys: [pubkey] };

/** A valid value of each schema, as it travels. */
const SAMPLES: Array<[string, { parse(v: unknown): unknown }, unknown]> = [
  ['allocate body', AllocateBody, { count: 2 }],
  [
    'heartbeat body',
    HeartbeatBody,
    { pubkeys: [pubkey], proofs: { [pubkey]: `0x${'cd'.repeat(96)}` } },
  ],
  ['retire body', RetireBody, { reason: 'exited' }],
  ['KEK rotation body', KekRotationBody, { newKekFile: '/etc/pkm/kek-2' }],
  [
    'allocation',
    AllocationAnswer,
    {
      namespace: 'team-b',
      pod: 'v-0',
      keys: [
        {
          pubkey,
          secretKey: `0x${'11'.repeat(32)}`,
          path: 'm/12381/3600/0/0/0',
          slashingProtection: interchange,
        },
      ],
    },
  ],
  ['release', ReleasedAnswer, { pod: 'v-0', released: [pubkey] }],
  ['error', ErrorAnswer, new PkmError('NOT_READY', 'draining').toJSON()],
  ['probe answer', ProbeAnswer, { status: 'ready' }],
  [
    'upload answer',
    ProtectionStored,
    { pod: 'v-0', pubkeys: [], ignored: [{ pubkey, reason: 'not-held' }] },
  ],
  [
    'heartbeat answer',
    HeartbeatAnswer,
    {
      pod: 'v-0',
      bootToken: 't',
      reclaimed: [],
      conflicts: [],
      unknown: [],
      reported: [],
      stillCooling: [],
      refused: [pubkey],
    },
  ],
  [
    'status',
    StatusAnswer,
    {
      ready: true,
      counts: { free: 1, total: 1 },
      pool: { free: 1, cooling: 0, canCreate: true, newKeys: 'always', healthy: true },
      conflicts: [recent],
      fences: [],
      reported: [],
      lastDeposits: [],
    },
  ],
  [
    'admission review',
    AdmissionReview,
    {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: 'u-1',
        kind: { group: '', version: 'v1', kind: 'Pod' },
        operation: 'DELETE',
        name: 'v-0',
        userInfo: { username: 'system:node:n1', groups: ['system:nodes'] },
        options: { gracePeriodSeconds: 0 },
      },
    },
  ],
];

describe('api/ schemas', () => {
  it.each(SAMPLES)('a valid %s parses and serializes back unchanged', (_name, schema, value) => {
    expect(JSON.parse(JSON.stringify(schema.parse(value)))).toEqual(value);
  });

  it("an admission review's empty pod UID reads as none (a record keeps one of a character)", () => {
    const sent = review({ uid: '' });
    const parsed = AdmissionReview.parse(sent);
    expect(parsed.request.oldObject?.metadata?.uid).toBeUndefined();
    expect(AdmissionReview.parse(review({ uid: 'u-2' })).request.oldObject?.metadata?.uid).toBe(
      'u-2',
    );
  });

  it('bodies stay strict: an extra field is refused', () => {
    expect(AllocateBody.safeParse({ count: 1, force: true }).success).toBe(false);
    expect(HeartbeatBody.safeParse({ pubkeys: [], extra: 1 }).success).toBe(false);
    expect(RetireBody.safeParse({ reason: 'x', extra: 1 }).success).toBe(false);
    expect(KekRotationBody.safeParse({ newKekFile: 'f', extra: 1 }).success).toBe(false);
  });

  it('an error answer reads field by field: an unknown code keeps its message', () => {
    const read = (v: unknown) => ErrorReading.safeParse(v).data?.error;
    expect(read({ error: { code: 'NOT_READY', message: 'm' } })).toEqual({
      code: 'NOT_READY',
      message: 'm',
    });
    expect(read({ error: { code: 'FROM_THE_FUTURE', message: 'm' } })).toEqual({ message: 'm' });
    expect(read({ error: { code: 'NOT_READY', message: 7 } })).toEqual({ code: 'NOT_READY' });
    expect([read(undefined), read('busy'), read({ error: 'x' })]).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
    expect(
      ErrorAnswer.safeParse({ error: { code: 'FROM_THE_FUTURE', message: 'm' } }).success,
    ).toBe(false);
  });

  it("answers from older servers read with today's defaults", () => {
    const old = HeartbeatAnswer.parse({
      bootToken: 't',
      pod: 'v',
      reclaimed: [],
      conflicts: [],
      unknown: [],
    });
    expect([old.reported, old.refused]).toEqual([[], []]);
    expect(ProtectionStored.parse({ pod: 'v', pubkeys: [] }).ignored).toEqual([]);
  });
});

describe('the OpenAPI components', () => {
  const schemas = (openApiDocument('test') as { components: { schemas: Record<string, unknown> } })
    .components.schemas;

  it('are exactly the generated ones, the error shape among them', () => {
    expect(schemas).toEqual(componentSchemas());
    expect(Object.keys(schemas).sort()).toEqual(
      [...new Set([...Object.keys(BODIES), ...Object.keys(ANSWERS)])].sort(),
    );
  });

  it('state the error envelope with every code of errors.ts, by reference', () => {
    expect(schemas.ErrorCode).toEqual({
      type: 'string',
      enum: ERROR_CODES,
      description: 'Every code; CLI-only codes never come from the server',
    });
    expect(schemas.Error).toMatchObject({
      type: 'object',
      required: ['error'],
      properties: {
        error: {
          type: 'object',
          required: ['code', 'message'],
          properties: {
            code: { $ref: '#/components/schemas/ErrorCode' },
            message: { type: 'string' },
          },
        },
      },
    });
    expect(schemas.Probe).toMatchObject({ properties: { status: { enum: ['ok', 'ready'] } } });
  });

  it('keep what the zod schemas say beyond types: limits, patterns, enums, descriptions', () => {
    expect(schemas.AllocateRequest).toMatchObject({
      additionalProperties: false,
      properties: { count: { type: 'integer', minimum: 1 } },
    });
    expect(schemas.HeartbeatRequest).toMatchObject({
      properties: {
        pubkeys: { maxItems: 4096, items: { pattern: '^0[xX][0-9a-fA-F]{96}$' } },
        proofs: { description: expect.stringContaining('PKM_HEARTBEAT_POSSESSION') },
      },
    });
    expect(schemas.RetireRequest).toMatchObject({ properties: { reason: { maxLength: 200 } } });
    expect(schemas.Allocation).toMatchObject({
      properties: {
        keys: {
          items: {
            properties: { slashingProtection: { $ref: '#/components/schemas/Interchange' } },
          },
        },
      },
    });
    expect(schemas.ProtectionStored).toMatchObject({
      required: ['pod', 'pubkeys', 'ignored'],
      properties: {
        ignored: {
          items: {
            properties: { reason: { enum: ['not-held', 'conflict', 'retired', 'unknown'] } },
          },
        },
      },
    });
    expect(schemas.RetiredKey).toMatchObject({
      properties: { state: { $ref: '#/components/schemas/KeyState' } },
    });
  });
});
