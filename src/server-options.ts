// Every flag of `pkm server`, each also read from PKM_<FLAG> (see `flag`).
import { Option } from 'commander';
import { ROUTES } from './api/paths.js';

/** `--max-keys-per-pod` is also read from PKM_MAX_KEYS_PER_POD. */
export function flag(flags: string, description: string, defaultValue?: string): Option {
  const long = /--([a-z0-9-]+)/.exec(flags)?.[1] ?? '';
  const option = new Option(flags, description).env(
    `PKM_${long.toUpperCase().replaceAll('-', '_')}`,
  );
  return defaultValue === undefined ? option : option.default(defaultValue);
}

/** The options of `pkm server`, in the order --help lists them. */
export function serverOptions(): Option[] {
  return [
    flag('--data-dir <dir>', 'LevelDB directory (unused with a PostgreSQL --store)', './data'),
    flag(
      '--store <url>',
      'keep the state in PostgreSQL, e.g. postgres://pkm@db:5432/pkm (no password in it; needs --kek-file; default: LevelDB in --data-dir)',
    ),
    flag('--store-password-file <file>', "the PostgreSQL user's password"),
    flag(
      '--store-ssl-mode <mode>',
      'TLS to PostgreSQL: disable, require (encrypted, unverified) or verify-full (needs --store-ca-file); default: disable on loopback, required beyond it',
    ),
    flag('--store-ca-file <file>', "PEM CA the database's certificate must chain to (verify-full)"),
    flag(
      '--kek-file <file>',
      'key-encryption key, 32 bytes as hex or base64 (default: <data-dir>/kek, made once)',
    ),
    flag('--listen <host:port>', 'address to listen on', '127.0.0.1:8000'),
    flag('--namespace <name>', 'serve only this namespace (repeatable; default: all)').argParser(
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    ),
    flag(
      '--resync-window <duration>',
      "after a start, keys held before stay with their pods this long (2 x the agents' --interval)",
      '60s',
    ),
    flag(
      '--derivation-lookahead <n>',
      'with a mnemonic: indexes past the next one searched for a key a pod reports that the store lost',
      '10000',
    ),
    flag(
      '--beacon-url <url>',
      'beacon node: a cooled key seen live is not moved (needs --network)',
    ),
    flag(
      '--kube',
      'watch pods (in-cluster, or --kubeconfig): the fallback to the deletion webhook',
    ),
    flag('--kubeconfig <file>', 'kubeconfig for --kube and --token-review (default: in-cluster)'),
    flag('--label-selector <selector>', 'only pods with these labels, e.g. app=validator'),
    flag(
      '--kube-grace <duration>',
      'how long a pod must be missing before its keys are released',
      '60s',
    ),
    flag(
      '--tls-cert <file>',
      'serve HTTPS with this PEM certificate (reloaded on SIGHUP and when the file changes)',
    ),
    flag('--tls-key <file>', 'and this PEM key'),
    flag(
      '--auth-token-file <file>',
      'admin tokens, one per line, each at least 256 bits (e.g. openssl rand -hex 32)',
    ),
    flag(
      '--token-review',
      "check pods' projected ServiceAccount tokens with the Kubernetes TokenReview API",
    ),
    flag('--token-audience <audience>', 'the audience pod tokens must be for', 'pkm'),
    flag(
      '--public-assignments',
      `${ROUTES.assignmentsPage} and ${ROUTES.assignments} without a token`,
    ),
    flag(
      '--webhook-client-ca <file>',
      "the deletion webhook answers only client certificates this CA signed (the API server's) and admin tokens",
    ),
    flag('--rate-limit <n>', 'allocation requests per minute per caller (0: no limit)', '60'),
    flag(
      '--insecure',
      'allow listening beyond loopback without authentication (anyone reaching it gets keys)',
    ),
    flag(
      '--mnemonic-file <file>',
      'derive keys from this BIP-39 mnemonic at m/12381/3600/i/0/0 (default: random keys)',
    ),
    flag('--mnemonic-passphrase-file <file>', "the mnemonic's optional BIP-39 passphrase"),
    flag(
      '--mnemonic-start-index <n>',
      "with --mnemonic-file: derive new keys from this index on, never below (indexes under it were used elsewhere); the store's next index only ever grows",
    ),
    flag(
      '--reuse-delay <duration>',
      'how long released keys cool before another pod may get them',
      '20m',
    ),
    flag(
      '--network <name>',
      'the chain, mainnet|hoodi|sepolia|holesky|custom: the genesis root every slashing-protection upload must match, fences, and deposit data with withdrawal credentials (default: none)',
    ),
    flag(
      '--genesis-validators-root <hex>',
      "the chain's genesis_validators_root (0x and 64 hex digits), for --network custom or no --network; a known network's own root may be repeated, never contradicted",
    ),
    flag('--fork-version <hex>', 'genesis fork version, with --network custom'),
    flag('--chain-id <n>', 'chain id, with --network custom'),
    flag('--deposit-contract <address>', "deposit contract (default: the network's)"),
    flag(
      '--withdrawal-address <address>',
      '0x01 withdrawal credentials to this address (default: 0x00 from the mnemonic)',
    ),
    flag('--compounding', '0x02 (compounding) credentials, 32 to 2048 ETH'),
    flag('--deposit-amount-gwei <gwei>', 'deposit amount', '32000000000'),
    flag(
      '--deposit-mode <mode>',
      'record (deposit data only) or send (deposit transactions); with --network and withdrawal credentials, default: record',
    ),
    flag('--eth-rpc <url>', 'execution-layer JSON-RPC, with --deposit-mode send'),
    flag(
      '--funder-key-file <file>',
      "file holding the funder's private key, with --deposit-mode send",
    ),
    flag('--confirmations <n>', 'blocks a deposit waits for', '1'),
    flag('--receipt-timeout <duration>', 'how long a pod waits for its deposits to be mined', '5m'),
    flag('--max-deposits-per-hour <n>', 'most new deposits in any hour', '100'),
    flag('--deposit-reconcile-interval <duration>', 'how often open deposits are checked', '10s'),
    flag('--max-keys-per-pod <n>', 'most keys one pod may hold', '64'),
    flag('--max-total-keys <n>', 'most keys the server may ever create (default: unlimited)'),
    flag(
      '--new-keys <policy>',
      'always: make new keys when free ones run out; never: generate nothing, an allocation the pool cannot fill is 503 POOL_EXHAUSTED (add keys with pkm keys import or POST /eth/v1/keystores)',
      'always',
    ),
    flag('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent', 'info'),
  ];
}
