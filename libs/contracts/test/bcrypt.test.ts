/**
 * bcrypt against published answers (OpenBSD's and the Openwall crypt_blowfish test
 * vectors, $2a$), so that a wrong salt encoding or hash form is found here rather than
 * as "Authorization Violation" from nats-server.
 */
import { describe, expect, it } from 'vitest';
import { bcryptHash } from '../src/index.js';

const ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** The 16 salt bytes of a hash's 22 salt characters (bcrypt's base64; the last 4 bits are padding). */
function saltOf(hash: string): Uint8Array {
  const bits = [...hash.slice(7, 29)].map((c) => ALPHABET.indexOf(c).toString(2).padStart(6, '0')).join('');
  return Uint8Array.from({ length: 16 }, (_, i) => parseInt(bits.slice(i * 8, i * 8 + 8), 2));
}

describe('bcryptHash', () => {
  it.each([
    ['U*U', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW'],
    ['U*U*', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK'],
    ['', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy'],
    [
      '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789chars after 72 are ignored',
      '$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui',
    ],
  ])('%j', (password, expected) => {
    expect(bcryptHash(password, 5, saltOf(expected))).toBe(expected);
  });

  it('refuses a cost outside 4..31 and a salt that is not 16 bytes', () => {
    expect(() => bcryptHash('x', 3)).toThrow(/cost/);
    expect(() => bcryptHash('x', 4, new Uint8Array(15))).toThrow(/salt/);
  });
});
