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

/** A check to run before a write: no field the schema does not know, then `problem`. */
export function writeChecker<T extends object>(
  name: string,
  schema: { readonly shape: object },
  problem: (value: T) => string | undefined,
): (value: T) => void {
  const known = fieldNames(schema);
  return (value) => {
    const why = hasUnknownField(value, known) ? 'a field it does not know' : problem(value);
    if (why !== undefined)
      throw new PkmError('INTERNAL', `refusing to write an invalid ${name}: ${why}`);
  };
}
