import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cacheKey, checkId, escapeCacheName } from '../src/layout.js';

/** The inverse of the escaping: that it exists proves distinct names never collide. */
function unescape(escaped: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < escaped.length;) {
    if (escaped[i] === '.') {
      bytes.push(parseInt(escaped.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      bytes.push(escaped.charCodeAt(i));
      i += 1;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

describe("a trust domain's caches as directory names", () => {
  it('put the escaped domain before the escaped name, after ".."', () => {
    expect(cacheKey('npm')).toBe('npm');
    expect(cacheKey('npm', 'client-alice')).toBe('client-alice..npm');
    expect(cacheKey('a/b', 'x.y')).toBe('x.2ey..a.2fb');
  });

  it("never collide with another domain's or an unscoped name, and are a plain directory name", () => {
    const name = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 });
    fc.assert(
      fc.property(fc.option(name, { nil: undefined }), name, fc.option(name, { nil: undefined }), name, (d1, n1, d2, n2) => {
        // Long graphemes can make a pair too long for a directory name (tested below).
        const fits = (n: string, d?: string) => (d === undefined ? 0 : escapeCacheName(d).length + 2) + escapeCacheName(n).length <= 255;
        fc.pre(!(d1 === d2 && n1 === n2) && fits(n1, d1) && fits(n2, d2));
        const k1 = cacheKey(n1, d1);
        expect(k1).not.toBe(cacheKey(n2, d2));
        expect(k1).toMatch(/^[A-Za-z0-9_.-]+$/);
        expect(['.', '..']).not.toContain(k1);
        // The first ".." splits it back into the two escaped parts.
        const at = k1.indexOf('..');
        expect(at < 0 ? [undefined, unescape(k1)] : [unescape(k1.slice(0, at)), unescape(k1.slice(at + 2))]).toEqual([d1, n1]);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuse a domain and name too long together', () => {
    expect(() => cacheKey('n'.repeat(200), 'd'.repeat(60))).toThrow(/too long for domain/);
  });
});

describe('cache names as directory names', () => {
  it('escape every byte but letters, digits, "_" and "-"', () => {
    expect(escapeCacheName('opam-2.1_x')).toBe('opam-2.2e1_x');
    expect(escapeCacheName('a/b')).toBe('a.2fb');
    expect(escapeCacheName('a.2f')).toBe('a.2e2f');
    expect(escapeCacheName('a_2fb')).toBe('a_2fb');
    expect(escapeCacheName('..')).toBe('.2e.2e');
    expect(escapeCacheName('é')).toBe('.c3.a9');
  });

  it('never collide, and are always a plain directory name', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }), (name) => {
        const escaped = escapeCacheName(name);
        expect(unescape(escaped)).toBe(name);
        expect(escaped).toMatch(/^[A-Za-z0-9_-]*(\.[0-9a-f]{2}[A-Za-z0-9_-]*)*$/);
        expect(['', '.', '..']).not.toContain(escaped);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuse names that would not round-trip or fit', () => {
    expect(() => escapeCacheName('')).toThrow(/non-empty/);
    expect(() => escapeCacheName('\ud800')).toThrow(/valid Unicode/);
    expect(() => escapeCacheName('/'.repeat(86))).toThrow(/too long/);
    expect(escapeCacheName('/'.repeat(85))).toHaveLength(255);
  });
});

describe('snapshot IDs', () => {
  it('accept step IDs and refuse anything that is not one plain name', () => {
    expect(checkId('a16a57b254ca5fe6ca5f34ab5ed0e56d9f38e13c62f7de9d876addd2061f678e')).toMatch(/^a16a/);
    expect(checkId('layer-1.2')).toBe('layer-1.2');
    for (const bad of ['', '.', '..', '.hidden', 'a/b', 'a b', 'x'.repeat(201)]) expect(() => checkId(bad)).toThrow(/is not a snapshot ID/);
  });
});
