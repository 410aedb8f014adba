// The OpenAPI `parameters` of the routes that take a query, generated from the schemas the
// server parses the query with (api/queries.ts).
import { z } from 'zod';
import { componentRef, type JsonSchema } from './components.js';
import { StoredState } from './key-state.js';

/**
 * One query parameter per property of the route's schema. A parameter's schema in OpenAPI is
 * the value as it reads once deserialized, not its wire text (which is always text): that is
 * the output of the parse, an integer for ?limit=, so the output side is generated. A field the
 * schema reads without (undefined parses) is optional.
 */
export function queryParameters(schema: z.ZodObject): JsonSchema[] {
  const registry = z.registry<{ id: string }>();
  // A key state is the KeyState component, referred to rather than repeated.
  registry.add(StoredState, { id: 'KeyState' });
  registry.add(schema, { id: 'query' });
  const generated = z.toJSONSchema(registry, {
    io: 'output',
    target: 'draft-2020-12',
    uri: componentRef,
    unrepresentable: 'throw',
  }).schemas.query;
  return Object.entries(schema.shape).map(([name, field]) => {
    const property = generated?.properties?.[name];
    if (typeof property !== 'object') throw new Error(`query parameter ${name} has no schema`);
    return { name, in: 'query', required: !field.safeParse(undefined).success, schema: property };
  });
}
