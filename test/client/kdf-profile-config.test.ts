// `pkm client --kdf-profile` and `--kdf` (client/config.ts): the default stays standard scrypt,
// fast means pbkdf2, and asking for a fast scrypt is a usage error naming the flag.
import { describe, expect, it } from 'vitest';
import { parseClientConfig } from '../../src/client/config.js';

const BASE = { server: 'http://127.0.0.1:8000', pod: 'v-0', count: '2', out: '/tmp/out' };

describe('--kdf-profile', () => {
  it('defaults to standard scrypt, as before', () => {
    expect(parseClientConfig(BASE, {})).toMatchObject({ kdfProfile: 'standard', kdf: 'scrypt' });
    expect(parseClientConfig({ ...BASE, kdf: 'pbkdf2' }, {})).toMatchObject({
      kdfProfile: 'standard',
      kdf: 'pbkdf2',
    });
  });

  it('fast writes pbkdf2, with or without --kdf pbkdf2', () => {
    for (const raw of [{ kdfProfile: 'fast' }, { kdfProfile: 'fast', kdf: 'pbkdf2' }]) {
      expect(parseClientConfig({ ...BASE, ...raw }, {})).toMatchObject({
        kdfProfile: 'fast',
        kdf: 'pbkdf2',
      });
    }
  });

  it('refuses fast with scrypt, and an unknown profile, as INVALID_CONFIG naming the flag', () => {
    expect(() => parseClientConfig({ ...BASE, kdfProfile: 'fast', kdf: 'scrypt' }, {})).toThrow(
      expect.objectContaining({
        code: 'INVALID_CONFIG',
        message: expect.stringMatching(/^--kdf is scrypt, but --kdf-profile fast writes pbkdf2/),
      }),
    );
    expect(() => parseClientConfig({ ...BASE, kdfProfile: 'quick' }, {})).toThrow(
      expect.objectContaining({
        code: 'INVALID_CONFIG',
        message: '--kdf-profile is one of standard, fast, not "quick", e.g. --kdf-profile standard',
      }),
    );
  });
});
