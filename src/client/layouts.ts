// Where each validator client reads keystores and their passwords (DESIGN.md "Client output
// layouts"). Paths are relative to --out; pubkeys are 0x-prefixed lowercase hex.
import { PUBKEY_HEX } from '../api/pubkey.js';

export const LAYOUTS = ['lighthouse', 'teku', 'nimbus', 'lodestar', 'prysm'] as const;
export type Layout = (typeof LAYOUTS)[number];

export interface LayoutSpec {
  keystorePath(pubkey: string): string;
  /** A password file per key, or undefined where the layout has one shared file. */
  passwordPath(pubkey: string): string | undefined;
  /** One password file for all keystores (Prysm's `validator accounts import`). */
  readonly sharedPasswordPath: string | undefined;
  /** Matches a keystore's relative path and captures its pubkey. */
  readonly keystorePattern: RegExp;
  /** The folder the pattern's paths start in. */
  readonly keystoreDir: string;
}

const PK = `(${PUBKEY_HEX})`;

function perKeyDir(dir: string, file: string, secrets: string): LayoutSpec {
  return {
    keystorePath: (pk) => `${dir}/${pk}/${file}`,
    passwordPath: (pk) => `${secrets}/${pk}`,
    sharedPasswordPath: undefined,
    keystorePattern: new RegExp(`^${dir}/${PK}/${file.replace('.', '\\.')}$`),
    keystoreDir: dir,
  };
}

export const LAYOUT_SPECS: Record<Layout, LayoutSpec> = {
  lighthouse: perKeyDir('validators', 'voting-keystore.json', 'secrets'),
  nimbus: perKeyDir('validators', 'keystore.json', 'secrets'),
  lodestar: perKeyDir('keystores', 'voting-keystore.json', 'secrets'),
  teku: {
    keystorePath: (pk) => `keys/${pk}.json`,
    passwordPath: (pk) => `passwords/${pk}.txt`,
    sharedPasswordPath: undefined,
    keystorePattern: new RegExp(`^keys/${PK}\\.json$`),
    keystoreDir: 'keys',
  },
  prysm: {
    keystorePath: (pk) => `keystores/keystore-${pk}.json`,
    passwordPath: () => undefined,
    sharedPasswordPath: 'wallet-password.txt',
    keystorePattern: new RegExp(`^keystores/keystore-${PK}\\.json$`),
    keystoreDir: 'keystores',
  },
};
