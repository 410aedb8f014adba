// The checks a write runs on a record this server built (records.ts says what, and why not the
// whole schema): small predicates over values the types already shape, and the checker that
// refuses a record with a coded INTERNAL error before anything is written.
import { PkmError } from '../errors.js';

/** A whole number of ms since the epoch (or of anything counted). */
export const isCount = (n: unknown): boolean => Number.isSafeInteger(n) && (n as number) >= 0;
export const isString = (v: unknown): v is string => typeof v === 'string';

/** Absent (undefined), or passing `check`. */
export function isOptional<T>(v: T | undefined, check: (v: T) => boolean): boolean {
  return v === undefined || check(v);
}

/** An array whose every item passes `check`. */
export function isList(v: unknown, check: (item: unknown) => boolean): boolean {
  return Array.isArray(v) && v.every(check);
}

/** The field names of a zod object schema. */
export function fieldNames(schema: { readonly shape: object }): ReadonlySet<string> {
  return new Set(Object.keys(schema.shape));
}

/** Whether `value` has a field that `known` does not hold (a strict read would refuse it). */
export function hasUnknownField(value: object, known: ReadonlySet<string>): boolean {
  for (const field in value) if (!known.has(field)) return true;
  return false;
}

/** Why `value` fails a record's checks: a field the schema does not know, then `problem`. */
function recordProblem<T extends object>(
  schema: { readonly shape: object },
  problem: (value: T) => string | undefined,
): (value: T) => string | undefined {
  const known = fieldNames(schema);
  return (value) => (hasUnknownField(value, known) ? 'a field it does not know' : problem(value));
}

/** A check to run before a write: recordProblem, refused with a coded INTERNAL error. */
export function writeChecker<T extends object>(
  name: string,
  schema: { readonly shape: object },
  problem: (value: T) => string | undefined,
): (value: T) => void {
  const why = recordProblem(schema, problem);
  return (value) => {
    const found = why(value);
    if (found !== undefined)
      throw new PkmError('INTERNAL', `refusing to write an invalid ${name}: ${found}`);
  };
}

/**
 * A read's shortcut past the whole schema: whether a value parsed from JSON passes what a
 * write checks. The write's checks are the schema's, field by field, so what passes them the
 * schema accepts as it is (test/store/codecs.test.ts checks this over values broken at random).
 * A value they refuse, or that is not shaped as the checks expect (they may throw on it), gets
 * no answer here: the caller asks the schema, which says what is wrong.
 */
export function readShortcut<T extends object>(
  schema: { readonly shape: object },
  problem: (value: T) => string | undefined,
): (raw: unknown) => raw is T {
  const why = recordProblem(schema, problem);
  return (raw): raw is T => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return false;
    try {
      return why(raw as T) === undefined;
    } catch {
      return false;
    }
  };
}
