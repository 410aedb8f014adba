// The version `pkm --version` prints and /openapi.json states (package.json's).
export const VERSION = '0.1.0';
