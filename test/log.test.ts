import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, SECRET_FIELDS } from '../src/log.js';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  return { lines, log: createLogger('info', stream) };
}

describe('log redaction by field name', () => {
  it('censors every secret field at the top and nested, and keeps the rest', () => {
    const { lines, log } = capture();
    for (const [i, field] of SECRET_FIELDS.entries()) {
      const value = `s3cret-${i}-${'ab'.repeat(16)}`;
      log.info({ [field]: value, pod: 'validator-0' }, 'top');
      log.info({ key: { [field]: value, pubkey: '0xaa' } }, 'nested');
      log.info({ req: { headers: { [field]: value } } }, 'deeper');
    }
    log.flush();
    const text = lines.join('');
    expect(text).not.toMatch(/s3cret-/);
    expect(text.match(/\[redacted\]/g)).toHaveLength(SECRET_FIELDS.length * 3);
    expect(text).toContain('validator-0');
    expect(text).toContain('0xaa');
  });
});
