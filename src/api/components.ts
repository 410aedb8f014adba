// The JSON Schemas of every body and answer, generated from the zod schemas the server parses
// bodies with and the client parses answers with: the OpenAPI document's components.
import { z } from 'zod';
import {
  EventsAnswer,
  KekRotationAnswer,
  KekRotationBody,
  RetireBody,
  RetiredAnswer,
} from './admin.js';
import { AdmissionAnswer, AdmissionReview } from './admission.js';
import { DepositEntry } from './deposits.js';
import { ErrorAnswer, ErrorCodeSchema } from './error.js';
import { KeymanagerError, SignedVoluntaryExit, SignVoluntaryExitAnswer } from './exits.js';
import { HeartbeatAnswer, HeartbeatBody } from './heartbeat.js';
import { KeysImportAnswer, KeysImportBody } from './import.js';
import { Interchange, ProtectionStored } from './interchange.js';
import { StoredState } from './key-state.js';
import {
  DeleteKeysAnswer,
  DeleteKeysBody,
  ImportKeystoresAnswer,
  ImportKeystoresBody,
  ListKeysAnswer,
} from './keymanager.js';
import {
  AssignmentAnswer,
  AssignmentBody,
  MoveAnswer,
  MoveBody,
  RebalanceAnswer,
  RebalanceBody,
  RemovalsAnswer,
  RemovalsBody,
  SetCountAnswer,
  SetCountBody,
} from './moves.js';
import { AllocateBody, AllocationAnswer, PodKeysAnswer, ReleasedAnswer } from './pod-keys.js';
import { ProbeAnswer } from './probe.js';
import { AssignmentsAnswer, RecentEvent, StatusAnswer } from './status.js';

/** What callers send, by component name: documented as the server reads it (io: input). */
export const BODIES = {
  AllocateRequest: AllocateBody,
  HeartbeatRequest: HeartbeatBody,
  Interchange,
  RetireRequest: RetireBody,
  KekRotationRequest: KekRotationBody,
  KeysImportRequest: KeysImportBody,
  ImportKeystoresRequest: ImportKeystoresBody,
  DeleteKeysRequest: DeleteKeysBody,
  AdmissionReview,
  SetCountRequest: SetCountBody,
  MoveRequest: MoveBody,
  RebalanceRequest: RebalanceBody,
  AssignmentRequest: AssignmentBody,
  RemovalsRequest: RemovalsBody,
};

/**
 * What the server answers, by component name: documented as this server sends it, the output
 * of the schema the client parses with (io: output; a field defaulted for older servers is
 * one this server always sends).
 */
export const ANSWERS = {
  Allocation: AllocationAnswer,
  PodKeys: PodKeysAnswer,
  Released: ReleasedAnswer,
  ProtectionStored,
  Heartbeat: HeartbeatAnswer,
  Assignments: AssignmentsAnswer,
  Status: StatusAnswer,
  RecentEvent,
  Events: EventsAnswer,
  DepositEntry,
  RetiredKey: RetiredAnswer,
  KekRotation: KekRotationAnswer,
  KeysImport: KeysImportAnswer,
  AdmissionReviewAnswer: AdmissionAnswer,
  KeyState: StoredState,
  Probe: ProbeAnswer,
  SignedVoluntaryExit,
  SignVoluntaryExitResponse: SignVoluntaryExitAnswer,
  KeymanagerError,
  ListKeysResponse: ListKeysAnswer,
  ImportKeystoresResponse: ImportKeystoresAnswer,
  DeleteKeysResponse: DeleteKeysAnswer,
  SetCount: SetCountAnswer,
  Move: MoveAnswer,
  Rebalance: RebalanceAnswer,
  Assignment: AssignmentAnswer,
  Removals: RemovalsAnswer,
  // An answer carries an interchange (with a key that moves): referred to, not repeated.
  Interchange,
  // Every error, whatever the route: the responses narrow the code for each status.
  Error: ErrorAnswer,
  ErrorCode: ErrorCodeSchema,
};

export type JsonSchema = Record<string, unknown>;

/** Where OpenAPI keeps a component, for `$ref`. */
export const componentRef = (name: string): string => `#/components/schemas/${name}`;

/**
 * One JSON Schema (2020-12, which OpenAPI 3.1 takes as is) per schema: a schema that is itself
 * a component is referred to by `$ref` wherever another one holds it.
 */
function generate(schemas: Record<string, z.ZodType>, io: 'input' | 'output') {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(schemas)) registry.add(schema, { id });
  const generated = z.toJSONSchema(registry, {
    io,
    target: 'draft-2020-12',
    uri: componentRef,
    // Every schema here must be representable: a gap fails the build of the document.
    unrepresentable: 'throw',
  }).schemas;
  const out: Record<string, JsonSchema> = {};
  for (const [id, { $schema: _dialect, $id: _id, ...schema }] of Object.entries(generated)) {
    // $id and $schema are for standalone documents: inside OpenAPI the component's place names
    // it, and the document's dialect (2020-12) is the one generated.
    out[id] = schema;
  }
  return out;
}

/** The components of the bodies and answers, by name. */
export function componentSchemas(): Record<string, JsonSchema> {
  const bodies = generate(BODIES, 'input');
  const answers = generate(ANSWERS, 'output');
  for (const name of Object.keys(bodies).filter((n) => n in answers)) {
    // A schema both sent and answered must read the same both ways, or one name means two.
    if (JSON.stringify(bodies[name]) !== JSON.stringify(answers[name]))
      throw new Error(`component ${name} differs between bodies and answers`);
  }
  return { ...answers, ...bodies };
}
