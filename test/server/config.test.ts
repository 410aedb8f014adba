// `pkm server`'s flags checked against each other at parse time, before the server opens (or
// makes) its store: each refusal is INVALID_CONFIG and shows the flag that is missing.
import { describe, expect, it } from 'vitest';
import type { RawFlags } from '../../src/config.js';
import { PkmError } from '../../src/errors.js';
import { parseServerConfig } from '../../src/server/config.js';

function refusal(raw: RawFlags): PkmError {
  try {
    parseServerConfig(raw);
  } catch (err) {
    if (err instanceof PkmError) return err;
    throw err;
  }
  throw new Error(`parseServerConfig accepted ${JSON.stringify(raw)}`);
}

describe('pkm server flags that need another flag', () => {
  it('refuses --beacon-url without --network, with an example of --network', () => {
    const err = refusal({ beaconUrl: 'http://beacon:5052' });
    expect(err.code).toBe('INVALID_CONFIG');
    expect(err.message).toMatch(/^--beacon-url needs --network\b.*, e.g. --network hoodi$/);
  });

  it('takes --beacon-url with --network, the gate bound to that network', () => {
    const config = parseServerConfig({ beaconUrl: 'http://beacon:5052', network: 'hoodi' });
    expect(config.liveness?.beaconUrl).toBe('http://beacon:5052');
    expect(config.liveness?.network.name).toBe('hoodi');
    expect(parseServerConfig({ network: 'hoodi' }).liveness).toBeUndefined();
  });

  it('refuses --mnemonic-passphrase-file without --mnemonic-file, with an example of it', () => {
    const err = refusal({ mnemonicPassphraseFile: '/etc/pkm/passphrase' });
    expect(err.code).toBe('INVALID_CONFIG');
    expect(err.message).toMatch(
      /^--mnemonic-passphrase-file needs --mnemonic-file, e\.g\. --mnemonic-file \/etc\/pkm\/mnemonic$/,
    );
  });

  it('takes --mnemonic-file with or without its passphrase file, and neither for random keys', () => {
    expect(
      parseServerConfig({
        mnemonicFile: '/etc/pkm/mnemonic',
        mnemonicPassphraseFile: '/etc/pkm/passphrase',
      }).mnemonic,
    ).toEqual({ file: '/etc/pkm/mnemonic', passphraseFile: '/etc/pkm/passphrase' });
    expect(parseServerConfig({ mnemonicFile: '/etc/pkm/mnemonic' }).mnemonic).toEqual({
      file: '/etc/pkm/mnemonic',
      passphraseFile: undefined,
    });
    expect(parseServerConfig({}).mnemonic).toBeUndefined();
  });
});
