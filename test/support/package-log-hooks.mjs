// The resolve hook of package-log.mjs; runs on node's module loader thread.
import { appendFileSync } from 'node:fs';

let file;

export function initialize(data) {
  file = data.file;
}

/** A bare specifier names a package, or one of its subpaths (`ethers/address`). */
function isBare(specifier) {
  return !/^(\.|\/|node:|file:|data:)/.test(specifier) && !specifier.startsWith('#');
}

export async function resolve(specifier, context, next) {
  if (file !== undefined && isBare(specifier)) appendFileSync(file, `${specifier}\n`);
  return next(specifier, context);
}
