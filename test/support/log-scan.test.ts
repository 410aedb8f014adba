import { describe, expect, it } from 'vitest';
import { findLeaks } from './log-scan.js';

describe('the end-of-run secret scan', () => {
  const secret = `0x${'3c'.repeat(32)}`;
  const bytes = Buffer.from('3c'.repeat(32), 'hex');

  it('finds a secret as hex (either case, with or without 0x) and as base64', () => {
    for (const line of [
      `{"msg":"x","k":"${secret}"}`,
      `key=${'3C'.repeat(32)}`,
      `b64 ${bytes.toString('base64')}`,
      `b64url ${bytes.toString('base64url')}`,
    ])
      expect(findLeaks([secret], [line])).toEqual([secret]);
  });

  it('finds text secrets, and passes clean logs', () => {
    expect(findLeaks(['abandon ability able'], ['mnemonic: abandon ability able'])).toHaveLength(1);
    expect(findLeaks([secret, 'abandon ability able'], ['{"msg":"listening"}'])).toEqual([]);
  });
});
