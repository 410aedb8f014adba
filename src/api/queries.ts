// The query parameters of the routes that take some, as the server reads them. Express hands
// each value over as text (its 'simple' parser: string, or string[] when repeated), so every
// field starts from a string and a repeated parameter is refused. The refusal texts are part of
// the contract: a field's own message, and the code INVALID_QUERY unless the issue names another.
import { z } from 'zod';
import { isErrorCode, PkmError } from '../errors.js';
import { StoredState } from './key-state.js';
import { isPodName, MAX_POD_NAME, PodName, podNameRefusal } from './names.js';
import { ROUTES } from './paths.js';

/** One string of at most max characters. */
function text(name: string, max: number) {
  const message = `query parameter ${name} must be one string of at most ${max} characters`;
  return z.string({ error: message }).max(max, { error: message });
}

/**
 * An integer sent as text. Its schema is the text's, piped into the number's: the document
 * shows the number's (api/parameters.ts reads the output side), so a bound is stated once, in
 * the check that enforces it, with no override to keep in step.
 */
function whole(name: string, max: number) {
  const message = `${name} must be a whole number up to ${max}`;
  return z
    .string({ error: message })
    .regex(/^\d+$/, { error: message })
    .transform(Number)
    .pipe(
      z
        .number({ error: message })
        .int({ error: message })
        .min(0, { error: message })
        .max(max, { error: message }),
    );
}

/** The assignments page: a page holds 500 pods unless ?limit= says otherwise. */
export const PAGE_SIZE = 500;
export const MAX_PAGE_SIZE = 10_000;
const pageLimit = `query parameter limit must be from 1 to ${MAX_PAGE_SIZE}`;

/** GET /assignments: the filter, the cursor (the last pod of the previous page), the page size. */
export const PageQuery = z.object({
  q: text('q', 200).default('').describe('pod name contains it, or a pubkey starts with it'),
  after: text('after', MAX_POD_NAME).default('').describe('the last pod of the previous page'),
  // As before: the text is read as a JavaScript number (an empty one is the default).
  limit: text('limit', 6)
    .transform((t) => (t === '' ? PAGE_SIZE : Number(t)))
    .pipe(
      z
        .number({ error: pageLimit })
        .int({ error: pageLimit })
        .min(1, { error: pageLimit })
        .max(MAX_PAGE_SIZE, { error: pageLimit }),
    )
    .default(PAGE_SIZE),
});

export const EVENTS_PAGE = 100;
export const MAX_EVENTS_PAGE = 1000;

/** GET /v1/events: the first sequence number to read, and how many events at most. */
export const EventsQuery = z.object({
  since: whole('since', Number.MAX_SAFE_INTEGER).default(0),
  limit: whole('limit', MAX_EVENTS_PAGE).default(EVENTS_PAGE).describe('0 reads as 1'),
});

const stateRefusal = `state is one of ${StoredState.options.join(', ')}`;

/**
 * GET /v1/deposits: the filters, and no other parameter. Each field checks with its own
 * refusal first, then pipes into the schema the document shows.
 */
export const DepositsQuery = z.strictObject(
  {
    state: z
      .custom<StoredState>((v) => StoredState.safeParse(v).success, { error: stateRefusal })
      .pipe(StoredState)
      .optional(),
    pod: z
      .custom<string>(isPodName, {
        error: (issue) => podNameRefusal(issue.input),
        params: { code: 'INVALID_POD_NAME' },
      })
      .pipe(PodName)
      .optional(),
  },
  {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown query parameter ${issue.keys.join(', ')}; use pod or state`
        : undefined,
  },
);

/** The query schema of each route that takes parameters, by express template. */
export const QUERIES = {
  [ROUTES.assignmentsPage]: PageQuery,
  [ROUTES.deposits]: DepositsQuery,
  [ROUTES.events]: EventsQuery,
};

/**
 * A route's query, parsed, or its first refusal as a PkmError: an unknown parameter is named
 * before anything is read, then the fields in order, each with its own text and code.
 */
export function parseQuery<S extends z.ZodType>(schema: S, query: unknown): z.output<S> {
  const parsed = schema.safeParse(query);
  if (parsed.success) return parsed.data;
  const { issues } = parsed.error;
  const issue = issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0];
  const code =
    issue?.code === 'custom' && isErrorCode(issue.params?.code)
      ? issue.params.code
      : 'INVALID_QUERY';
  throw new PkmError(code, issue?.message ?? 'invalid query');
}
