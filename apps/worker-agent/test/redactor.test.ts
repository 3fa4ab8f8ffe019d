import { describe, expect, it } from 'vitest';
import { REDACTED, Redactor } from '../src/redactor.js';

describe('Redactor', () => {
  const r = new Redactor([Buffer.from('s3cret-token\n'), Buffer.from('pw')]);

  it('replaces every occurrence of every secret and its base64, keeping line breaks, and not values under the threshold', () => {
    expect(REDACTED).toBe('***');
    expect(r.redact('a s3cret-token\nb pw c s3cret-token')).toBe(`a ${REDACTED}\nb pw c ${REDACTED}`);
    expect(r.redact(`failed: ${Buffer.from('s3cret-token\n').toString('base64')}`)).toBe(`failed: ${REDACTED}`);
  });

  it('holds back a tail that could be the start of a secret', () => {
    expect(r.safeLength('output s3cret-')).toBe('output '.length);
    expect(r.safeLength('output done\n')).toBe('output done\n'.length);
  });

  it('with no secrets, passes text through', () => {
    const none = new Redactor([]);
    expect(none.empty).toBe(true);
    expect(none.redact('anything')).toBe('anything');
    expect(none.safeLength('anything')).toBe(8);
  });
});
