// The audit log: every state change appends its events in the same batch as the change, so the
// log and the state never disagree. Keys are a zero-padded sequence: a plain forward read is
// the order things happened in.
import { z } from 'zod';
import { PkmError } from '../errors.js';
import {
  fieldNames,
  hasUnknownField,
  isCount,
  isList,
  isOptional,
  isString,
  writeChecker,
} from './write-check.js';

export const AuditEvent = z
  .object({
    seq: z.number().int().nonnegative(),
    at: z.number().int().nonnegative(),
    type: z.enum([
      'allocate',
      'release',
      'reuse',
      'retire',
      'deposit',
      'conflict',
      'protection',
      'reassert',
      'kek-rotation',
      /** Keys whose holder's stop is not known: they wait the reuse delay and the gate. */
      'fence',
      /** Cooling keys whose holder's stop was confirmed. */
      'confirm',
      /** Keys a pod reported that the store had no record of (flagged). */
      'report',
      /**
       * Derivation indexes skipped: their keys are validators already, a pod holds them, or the
       * operator used them elsewhere (--mnemonic-start-index).
       */
      'skip',
      /** Keys imported from keystores (pkm keys import, POST /v1/admin/keys/import). */
      'import',
      /** Keys taken back from a pod (a smaller count, a move, a rebalance): its VC is to drop them. */
      'leave',
      /** Keys deleted from one pod's VC with proof, handed to the move's destination. */
      'move',
      /** Keys a pod's agent deleted from its VC: free with proof, cooling without. */
      'remove',
    ]),
    pod: z.string().optional(),
    pubkeys: z.array(z.string()),
    detail: z.string().optional(),
  })
  .strict();
export type AuditEvent = z.infer<typeof AuditEvent>;
/** An event as a change stages it; the store gives it its sequence number. */
export type NewAuditEvent = Omit<AuditEvent, 'seq'>;

const SEQ_DIGITS = 16;

export function eventKey(seq: number): string {
  return String(seq).padStart(SEQ_DIGITS, '0');
}

const EVENT_TYPES: ReadonlySet<string> = new Set(AuditEvent.shape.type.options);
const EVENT_FIELDS = fieldNames(AuditEvent);

/** What a write checks (records.ts says why not the whole schema); a read checks it all. */
const checkEvent = writeChecker('audit event', AuditEvent, (e: AuditEvent) => {
  if (!isCount(e.seq) || !isCount(e.at)) return 'seq or at is not a whole number';
  if (!EVENT_TYPES.has(e.type)) return 'an unknown type';
  if (!isList(e.pubkeys, isString)) return 'pubkeys is not a list of strings';
  if (!isOptional(e.pod, isString) || !isOptional(e.detail, isString))
    return 'the pod or the detail is not a string';
  return undefined;
});

/**
 * A staged event with its sequence number. Built field by field: `{ ...e, seq }` takes V8's
 * slow path for a field the source lacks, about 1 us an event (issue 17, point 4).
 */
export function numbered(e: NewAuditEvent, seq: number): AuditEvent {
  // A field it would not copy is refused, as the write's check refuses it (not dropped).
  if (hasUnknownField(e, EVENT_FIELDS))
    throw new PkmError(
      'INTERNAL',
      'refusing to write an invalid audit event: a field it does not know',
    );
  const event: AuditEvent = { seq, at: e.at, type: e.type, pubkeys: e.pubkeys };
  if (e.pod !== undefined) event.pod = e.pod;
  if (e.detail !== undefined) event.detail = e.detail;
  return event;
}
/** Every field of an event is set by numbered: one the schema gains fails to compile here. */
type UnsetEventField = Exclude<
  keyof AuditEvent,
  'seq' | 'at' | 'type' | 'pubkeys' | 'pod' | 'detail'
>;
const _everyEventFieldSet: [UnsetEventField] extends [never] ? true : UnsetEventField = true;

export function encodeEvent(event: AuditEvent): string {
  checkEvent(event);
  return JSON.stringify(event);
}

export function decodeEvent(text: string): AuditEvent {
  const parsed = AuditEvent.safeParse(JSON.parse(text));
  if (!parsed.success)
    throw new PkmError(
      'STORE_CORRUPT',
      `a stored audit event is malformed: ${parsed.error.message}`,
    );
  return parsed.data;
}
