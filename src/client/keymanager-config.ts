// `pkm agent`'s Keymanager flags (issue 16): --keymanager-url and --keymanager-token-file turn
// on live moves (keymanager-agent.ts); --remote-signer-url keeps the keys in a remote signer
// (Web3Signer) registered with the VC as remote keys. Each error names the flag and gives an
// example; nothing is started on a bad flag.
import { bad, type RawFlags, text } from '../config.js';

export interface KeymanagerConfig {
  /** The validator client's Keymanager API. */
  readonly url: URL;
  /** Its API token file (keymanager-oapi.yaml: sensitive routes MUST take a token). */
  readonly tokenFile: string;
  /** PEM CA bundle, for an HTTPS Keymanager API. */
  readonly caFile: string | undefined;
  /** The remote signer's Keymanager API; also the URL the VC is told to sign at. */
  readonly remoteSigner:
    | {
        readonly url: URL;
        readonly tokenFile: string | undefined;
        readonly caFile: string | undefined;
      }
    | undefined;
}

function httpUrl(raw: string, flag: string, example: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw bad(flag, `is not a URL: "${raw}"`, example);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw bad(flag, `must be http or https, not "${url.protocol}"`, example);
  return url;
}

/** The Keymanager flags; undefined when --keymanager-url is not given (heartbeats only). */
export function parseKeymanagerConfig(raw: RawFlags): KeymanagerConfig | undefined {
  const url = text(raw, 'keymanagerUrl');
  const signer = text(raw, 'remoteSignerUrl');
  if (url === undefined) {
    for (const flag of ['keymanagerTokenFile', 'keymanagerCaFile', 'remoteSignerUrl'] as const)
      if (text(raw, flag) !== undefined)
        throw bad(
          'keymanager-url',
          `is required with --${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: the validator client's Keymanager API`,
          'http://127.0.0.1:5062',
        );
    return undefined;
  }
  if (signer === undefined)
    for (const flag of ['remoteSignerTokenFile', 'remoteSignerCaFile'] as const)
      if (text(raw, flag) !== undefined)
        throw bad(
          'remote-signer-url',
          `is required with --${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
          'http://127.0.0.1:9000',
        );
  const tokenFile = text(raw, 'keymanagerTokenFile');
  if (tokenFile === undefined)
    throw bad(
      'keymanager-token-file',
      "is required with --keymanager-url: the validator client's API token file",
      '/data/validators/api-token.txt',
    );
  return {
    url: httpUrl(url, 'keymanager-url', 'http://127.0.0.1:5062'),
    tokenFile,
    caFile: text(raw, 'keymanagerCaFile'),
    remoteSigner:
      signer === undefined
        ? undefined
        : {
            url: httpUrl(signer, 'remote-signer-url', 'http://127.0.0.1:9000'),
            tokenFile: text(raw, 'remoteSignerTokenFile'),
            caFile: text(raw, 'remoteSignerCaFile'),
          },
  };
}
