// Rows as PostgreSQL returns them, parsed (never cast): a row of another shape is a damaged
// store, STORE_CORRUPT. bigint columns arrive as text (pg keeps 64-bit integers exact).
import { z } from 'zod';
import { PkmError } from '../../errors.js';

/** A bigint column (text from pg) that must fit a JS safe integer. */
export const BigintText = z
  .union([z.string().regex(/^-?\d+$/), z.number().int()])
  .transform(Number)
  .pipe(z.number().int().refine(Number.isSafeInteger, 'not a safe integer'));

export const TextValue = z.object({ value: z.string() });
export const KeyRow = z.object({ pubkey: z.string(), record: z.string() });
export const PodRow = z.object({ name: z.string(), record: z.string() });
export const EntryRow = z.object({ since: BigintText, pubkey: z.string() });
export const EntryRecordRow = EntryRow.extend({ record: z.string() });
export const EventRow = z.object({ event: z.string() });
export const CountRow = z.object({ n: BigintText });
export const NextSeqRow = z.object({ next: BigintText });
export const MetaRow = z.object({ key: z.string(), value: z.string() });

/** Every row parsed by `schema`; one that is not is STORE_CORRUPT. */
export function parseRows<T>(schema: z.ZodType<T>, rows: readonly unknown[], what: string): T[] {
  return rows.map((row) => {
    const parsed = schema.safeParse(row);
    if (!parsed.success)
      throw new PkmError(
        'STORE_CORRUPT',
        `a stored ${what} row is malformed: ${parsed.error.message}`,
      );
    return parsed.data;
  });
}

/** The one row a query must return. */
export function parseOne<T>(schema: z.ZodType<T>, rows: readonly unknown[], what: string): T {
  const [row] = parseRows(schema, rows, what);
  if (row === undefined) throw new PkmError('STORE_CORRUPT', `the store has no ${what}`);
  return row;
}
