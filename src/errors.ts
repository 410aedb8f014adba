// One table maps every error code to its HTTP status and its CLI exit code.
// Codes are stable: clients and tests match on them; messages may change.

/** CLI exit codes, documented in README.md ("Exit codes"). */
export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  refused: 3,
  unavailable: 4,
  store: 5,
  conflict: 6,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

interface CodeInfo {
  readonly status: number;
  readonly exit: ExitCode;
}

const TABLE = {
  // request shape
  INVALID_POD_NAME: { status: 400, exit: ExitCode.usage },
  INVALID_NAMESPACE: { status: 400, exit: ExitCode.usage },
  NAMESPACE_NOT_SERVED: { status: 403, exit: ExitCode.refused },
  INVALID_REVIEW: { status: 400, exit: ExitCode.usage },
  INVALID_INTERCHANGE: { status: 400, exit: ExitCode.usage },
  INTERCHANGE_MISMATCH: { status: 409, exit: ExitCode.refused },
  /** No genesis root is configured or stored, and the caller may not set it (a pod). */
  GENESIS_ROOT_UNKNOWN: { status: 409, exit: ExitCode.refused },
  INVALID_BODY: { status: 400, exit: ExitCode.usage },
  INVALID_QUERY: { status: 400, exit: ExitCode.usage },
  MALFORMED_JSON: { status: 400, exit: ExitCode.usage },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, exit: ExitCode.usage },
  PAYLOAD_TOO_LARGE: { status: 413, exit: ExitCode.usage },
  AUTH_REQUIRED: { status: 401, exit: ExitCode.refused },
  INVALID_TOKEN: { status: 401, exit: ExitCode.refused },
  FORBIDDEN: { status: 403, exit: ExitCode.refused },
  RATE_LIMITED: { status: 429, exit: ExitCode.unavailable },
  AUTH_UNAVAILABLE: { status: 503, exit: ExitCode.unavailable },
  NOT_FOUND: { status: 404, exit: ExitCode.refused },
  METHOD_NOT_ALLOWED: { status: 405, exit: ExitCode.refused },
  // the domain
  COUNT_MISMATCH: { status: 409, exit: ExitCode.refused },
  INVALID_PUBKEY: { status: 400, exit: ExitCode.usage },
  KEY_NOT_FOUND: { status: 404, exit: ExitCode.refused },
  KEY_BUSY: { status: 409, exit: ExitCode.refused },
  /** No validator index is known for the key: not on chain, or no --beacon-url to ask. */
  VALIDATOR_INDEX_UNKNOWN: { status: 404, exit: ExitCode.refused },
  /** The server knows no Capella fork version and genesis root to sign exits over (--network). */
  EXIT_CHAIN_UNKNOWN: { status: 409, exit: ExitCode.refused },
  COUNT_OUT_OF_RANGE: { status: 400, exit: ExitCode.usage },
  POOL_EXHAUSTED: { status: 503, exit: ExitCode.unavailable },
  BEACON_UNAVAILABLE: { status: 503, exit: ExitCode.unavailable },
  RESYNCING: { status: 503, exit: ExitCode.unavailable },
  /** pkm rebalance: the selector matches no pod (issue 16). */
  NO_PODS_SELECTED: { status: 404, exit: ExitCode.refused },
  /** The caller's token names another incarnation (UID) of the pod than the keys' holder. */
  OTHER_INCARNATION: { status: 409, exit: ExitCode.refused },
  // deposits (send mode)
  DEPOSIT_RPC_UNAVAILABLE: { status: 503, exit: ExitCode.unavailable },
  DEPOSIT_TIMEOUT: { status: 503, exit: ExitCode.unavailable },
  DEPOSIT_FUNDS: { status: 503, exit: ExitCode.unavailable },
  DEPOSIT_RATE_LIMITED: { status: 503, exit: ExitCode.unavailable },
  DEPOSIT_REVERTED: { status: 502, exit: ExitCode.unavailable },
  DEPOSIT_REJECTED: { status: 502, exit: ExitCode.unavailable },
  // the service itself
  NOT_READY: { status: 503, exit: ExitCode.unavailable },
  STORE_LOCKED: { status: 503, exit: ExitCode.store },
  /** The database behind the store (PostgreSQL) cannot be reached or was lost: retry later. */
  STORE_UNAVAILABLE: { status: 503, exit: ExitCode.unavailable },
  /** PostgreSQL refused the login (password, user, database, pg_hba.conf): never retried. */
  STORE_LOGIN_REFUSED: { status: 503, exit: ExitCode.usage },
  /** The database's TLS certificate does not verify, or it offers no TLS: never retried. */
  STORE_UNTRUSTED: { status: 503, exit: ExitCode.usage },
  /**
   * Several servers on one database (PostgreSQL): another server changed what this change was
   * based on, again on every retry. Nothing was written: ask again.
   */
  STORE_CONFLICT: { status: 503, exit: ExitCode.unavailable },
  /**
   * Several servers on one database count cooling and holds on their wall clocks: one whose
   * clock is off the database's by more than a second is not ready until it is set right.
   */
  CLOCK_SKEW: { status: 503, exit: ExitCode.unavailable },
  /** Work that runs on one leader (deposit signing) asked of a server that is not it now. */
  NOT_LEADER: { status: 503, exit: ExitCode.unavailable },
  SCHEMA_TOO_NEW: { status: 500, exit: ExitCode.store },
  WRONG_KEK: { status: 500, exit: ExitCode.store },
  ROTATION_UNFINISHED: { status: 500, exit: ExitCode.store },
  ROTATION_IN_PROGRESS: { status: 409, exit: ExitCode.conflict },
  INVALID_BACKUP: { status: 400, exit: ExitCode.usage },
  RESTORE_TARGET_NOT_EMPTY: { status: 409, exit: ExitCode.conflict },
  STORE_CORRUPT: { status: 500, exit: ExitCode.store },
  STORE_OPEN_FAILED: { status: 500, exit: ExitCode.store },
  INVALID_CONFIG: { status: 500, exit: ExitCode.usage },
  // keys and keystores
  KEYSTORE_PASSWORD: { status: 400, exit: ExitCode.usage },
  KEYSTORE_INVALID: { status: 400, exit: ExitCode.usage },
  /** A keystore's pubkey field is not the pubkey of the secret it decrypts to. */
  KEYSTORE_PUBKEY_MISMATCH: { status: 400, exit: ExitCode.usage },
  /** An imported key's pubkey is stored already, with another secret. */
  KEYSTORE_CONFLICT: { status: 409, exit: ExitCode.conflict },
  MNEMONIC_MISMATCH: { status: 500, exit: ExitCode.store },
  OUT_DIR_CONFLICT: { status: 409, exit: ExitCode.conflict },
  // a CLI talking to a server
  TIMEOUT: { status: 504, exit: ExitCode.unavailable },
  SERVER_UNREACHABLE: { status: 503, exit: ExitCode.unavailable },
  // the server's certificate does not verify: fixed by --ca-file, so never retried
  SERVER_UNTRUSTED: { status: 400, exit: ExitCode.usage },
  SERVER_REFUSED: { status: 400, exit: ExitCode.refused },
  SERVER_FAILED: { status: 502, exit: ExitCode.unavailable },
  /** pkm agent: the validator client's (or remote signer's) Keymanager API failed or refused. */
  KEYMANAGER_FAILED: { status: 502, exit: ExitCode.unavailable },
  INTERNAL: { status: 500, exit: ExitCode.internal },
} as const satisfies Record<string, CodeInfo>;

export type ErrorCode = keyof typeof TABLE;

export class PkmError extends Error {
  readonly code: ErrorCode;
  /** Seconds a client should wait before asking again (sent as Retry-After). */
  readonly retryAfter: number | undefined;
  /** Overrides the table's exit code (a client turns any 4xx from the server into `refused`). */
  private readonly exitOverride: ExitCode | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { retryAfter?: number; cause?: unknown; exit?: ExitCode } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'PkmError';
    this.code = code;
    this.retryAfter = opts.retryAfter;
    this.exitOverride = opts.exit;
  }

  get status(): number {
    return TABLE[this.code].status;
  }

  get exitCode(): ExitCode {
    return this.exitOverride ?? TABLE[this.code].exit;
  }

  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

/** Every code, in the table's order (the OpenAPI document lists them all). */
export const ERROR_CODES: readonly ErrorCode[] = Object.keys(TABLE).filter(isErrorCode);

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(TABLE, value);
}

export function statusOf(code: ErrorCode): number {
  return TABLE[code].status;
}

/** Anything thrown becomes a PkmError; unknown errors become INTERNAL without leaking details. */
export function toPkmError(err: unknown): PkmError {
  if (err instanceof PkmError) return err;
  return new PkmError('INTERNAL', 'internal error', { cause: err });
}

/** The message of anything thrown, for the text of a coded error or a log line. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The errno code of a failed system call (ENOENT, EACCES, ECONNREFUSED...), if it has one. */
export function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}
