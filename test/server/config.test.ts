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

describe('--mnemonic-start-index and --new-keys', () => {
  it('refuses --mnemonic-start-index without --mnemonic-file, with an example of it', () => {
    const err = refusal({ mnemonicStartIndex: '1000' });
    expect(err.code).toBe('INVALID_CONFIG');
    expect(err.message).toMatch(
      /^--mnemonic-start-index needs --mnemonic-file, e\.g\. --mnemonic-file \/etc\/pkm\/mnemonic$/,
    );
  });

  it('takes a 32-bit index with --mnemonic-file, and refuses anything else with an example', () => {
    const file = '/etc/pkm/mnemonic';
    expect(
      parseServerConfig({ mnemonicFile: file, mnemonicStartIndex: '1000' }).mnemonic?.startIndex,
    ).toBe(1000);
    expect(parseServerConfig({ mnemonicFile: file }).mnemonic?.startIndex).toBeUndefined();
    expect(
      parseServerConfig({ mnemonicFile: file, mnemonicStartIndex: '4294967295' }).mnemonic
        ?.startIndex,
    ).toBe(2 ** 32 - 1);
    for (const bad of ['-1', 'ten', '1.5', '4294967296', '0x10']) {
      const err = refusal({ mnemonicFile: file, mnemonicStartIndex: bad });
      expect(err.code).toBe('INVALID_CONFIG');
      expect(err.message).toMatch(
        /^--mnemonic-start-index takes a whole number from 0 to 4294967295, .* e\.g\. --mnemonic-start-index 1000$/,
      );
    }
  });

  it('--new-keys is always by default, takes never, and refuses anything else', () => {
    expect(parseServerConfig({}).newKeys).toBe('always');
    expect(parseServerConfig({ newKeys: 'always' }).newKeys).toBe('always');
    expect(parseServerConfig({ newKeys: 'never' }).newKeys).toBe('never');
    for (const bad of ['sometimes', 'Never', 'no']) {
      const err = refusal({ newKeys: bad });
      expect(err.code).toBe('INVALID_CONFIG');
      expect(err.message).toBe(
        `--new-keys is always or never, not "${bad}", e.g. --new-keys never`,
      );
    }
  });
});
