import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MASK, maskPatterns, MIN_MASKED_LENGTH, SecretMasker } from '../src/secret-mask.js';

const masker = (...values: string[]) => {
  const m = SecretMasker.for(values.map((v) => Buffer.from(v)));
  if (!m) throw new Error('no masker');
  return m;
};

/** Writes `chunks` one by one, and returns everything the sink got, and when. */
function streamed(m: SecretMasker, chunks: readonly Uint8Array[]): { out: Buffer; afterEachWrite: number[] } {
  const got: Buffer[] = [];
  const afterEachWrite: number[] = [];
  const s = m.stream((c) => got.push(Buffer.from(c)));
  for (const c of chunks) {
    s.write(c);
    afterEachWrite.push(Buffer.concat(got).length);
  }
  s.end();
  return { out: Buffer.concat(got), afterEachWrite };
}

const chunksOf = (data: Buffer, size: number) => Array.from({ length: Math.ceil(data.length / size) }, (_, i) => data.subarray(i * size, (i + 1) * size));

/** The masking as specified, the slow way: byte ranges of every occurrence, overlaps merged. */
function reference(patterns: readonly Buffer[], data: Buffer): Buffer {
  const ranges: [number, number][] = [];
  for (const p of patterns) {
    for (let i = 0; i + p.length <= data.length; i++) if (data.subarray(i, i + p.length).equals(p)) ranges.push([i, i + p.length]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const r of ranges) {
    const last = merged.at(-1);
    if (last && r[0] < last[1]) last[1] = Math.max(last[1], r[1]);
    else merged.push([...r]);
  }
  const parts: Buffer[] = [];
  let pos = 0;
  for (const [a, b] of merged) {
    parts.push(data.subarray(pos, a), Buffer.from(MASK));
    pos = b;
  }
  parts.push(data.subarray(pos));
  return Buffer.concat(parts);
}

describe('secret masking', () => {
  const secret = 'hunter2-very-secret-value';

  it('masks a value split across every possible pair of chunk boundaries', () => {
    const m = masker(`${secret}\n`);
    const text = Buffer.from(`before ${secret} middle ${Buffer.from(`${secret}\n`).toString('base64')}\nafter ${secret}`);
    const expected = `before ${MASK} middle ${MASK}\nafter ${MASK}`;
    expect(m.mask(text).toString()).toBe(expected);
    for (let i = 0; i <= text.length; i++) {
      for (let j = i; j <= text.length; j++) {
        const { out } = streamed(m, [text.subarray(0, i), text.subarray(i, j), text.subarray(j)]);
        expect(out.toString(), `cut at ${i} and ${j}`).toBe(expected);
      }
    }
    expect(
      streamed(
        m,
        [...text].map((b) => Uint8Array.of(b)),
      ).out.toString(),
    ).toBe(expected);
  });

  it('holds back only a tail that could begin a secret, and never more than the longest pattern - 1 bytes', () => {
    const m = masker(secret);
    const longest = Math.max(...m.patterns.map((p) => p.length));
    // Nothing that could start a secret: all of it goes out at once.
    expect(streamed(m, [Buffer.from('plain output\n')]).afterEachWrite).toEqual(['plain output\n'.length]);
    const partial = `log: ${secret.slice(0, -1)}`;
    const { out, afterEachWrite } = streamed(m, [Buffer.from(partial), Buffer.from(secret.slice(-1)), Buffer.from('!')]);
    expect(afterEachWrite[0]).toBe('log: '.length);
    expect(out.toString()).toBe(`log: ${MASK}!`);
    // A long run of a secret's first byte: held back is bounded.
    const run = streamed(masker('aaaaaaaaaab'), [Buffer.from('a'.repeat(1000))]);
    expect(1000 - run.afterEachWrite[0]!).toBeLessThanOrEqual(longest - 1);
    expect(run.out.toString()).toBe('a'.repeat(1000));
  });

  it('merges overlapping occurrences into one mask, and keeps touching ones apart', () => {
    expect(masker('abcdef', 'defghi').mask(Buffer.from('xxabcdefghixx')).toString()).toBe(`xx${MASK}xx`);
    // One secret inside another: the longer is hidden whole.
    expect(masker('pass', 'my-pass-word').mask(Buffer.from('[my-pass-word] [pass]')).toString()).toBe(`[${MASK}] [${MASK}]`);
    // A secret overlapping itself.
    expect(masker('abab').mask(Buffer.from('xabababx')).toString()).toBe(`x${MASK}x`);
    expect(masker('abcd').mask(Buffer.from('abcdabcd')).toString()).toBe(`${MASK}${MASK}`);
    // An overlapping chain cut at every point still makes one mask.
    const m = masker('abcabc');
    const text = Buffer.from('-abcabcabcabcabc-');
    for (let i = 0; i <= text.length; i++) {
      expect(streamed(m, [text.subarray(0, i), text.subarray(i)]).out.toString()).toBe(`-${MASK}-`);
    }
  });

  it('masks the base64 forms: standard, URL-safe, padded or not, and inside a longer base64 stream at each alignment', () => {
    const value = Buffer.from('s3cr3t?>>~value\n');
    const m = SecretMasker.for([value])!;
    const forms = [
      value.toString('base64'),
      value.toString('base64url'),
      value.toString('base64').replace(/=+$/, ''),
      Buffer.from('s3cr3t?>>~value').toString('base64'),
      Buffer.from('s3cr3t?>>~value').toString('base64url'),
    ];
    expect(new Set(forms).size).toBeGreaterThan(3);
    for (const form of forms) expect(m.mask(Buffer.from(`<${form}>`)).toString(), form).toBe(`<${MASK}>`);
    for (let before = 0; before < 6; before++) {
      for (let after = 0; after < 4; after++) {
        for (const encoding of ['base64', 'base64url'] as const) {
          const encoded = Buffer.concat([randomBytes(before), value, randomBytes(after)]).toString(encoding);
          const masked = m.mask(Buffer.from(`data: ${encoded}\n`)).toString();
          const visible = /^data: ([\w+/=-]*)\*\*\*([\w+/=-]*)\n$/.exec(masked);
          expect(visible, `${before} bytes before, ${after} after: ${masked}`).not.toBeNull();
          // What stays visible encodes the bytes around the value, and no more than one character of it.
          expect(visible![1]!.length).toBeLessThanOrEqual(Math.ceil(before / 3) * 4);
          expect(visible![2]!.length).toBeLessThanOrEqual(Math.ceil(after / 3) * 4 + 3);
        }
      }
    }
  });

  it('masks the percent-encoded forms', () => {
    const m = masker('p@ss w/rd&(x)!');
    expect(m.mask(Buffer.from(`u=${encodeURIComponent('p@ss w/rd&(x)!')}&v=1`)).toString()).toBe(`u=${MASK}&v=1`);
    expect(m.mask(Buffer.from('u=p%40ss%20w%2Frd%26%28x%29%21&v=1')).toString()).toBe(`u=${MASK}&v=1`);
  });

  it('masks each line of a multi-line secret, but not lines under the threshold', () => {
    const key = '-----BEGIN KEY-----\r\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nab\n-----END KEY-----\n';
    const m = masker(key);
    expect(m.mask(Buffer.from(key)).toString()).toBe(`${MASK}\n`);
    expect(m.mask(Buffer.from('line: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n')).toString()).toBe(`line: ${MASK}\n`);
    expect(m.mask(Buffer.from('tab\n')).toString()).toBe('tab\n');
    expect(m.mask(Buffer.from(Buffer.from(key).toString('base64'))).toString()).toBe(MASK);
  });

  it(`does not mask values under ${MIN_MASKED_LENGTH} bytes once trimmed`, () => {
    expect(SecretMasker.for([Buffer.from('abc\n'), Buffer.from('  \n')])).toBeUndefined();
    expect(maskPatterns([Buffer.from('abc'), Buffer.from('abcd')]).map(String)).toContain('abcd');
    expect(maskPatterns([Buffer.from('abc')])).toEqual([]);
    expect(masker('abc', 'abcd').mask(Buffer.from('abc abcd')).toString()).toBe(`abc ${MASK}`);
  });

  it('works on bytes: a UTF-8 value cut inside a character, and other text passed through byte for byte', () => {
    const m = masker('pässwörd-ünïcode');
    const text = Buffer.from('→ pässwörd-ünïcode ← ✓\n');
    for (let i = 0; i <= text.length; i++) {
      expect(streamed(m, [text.subarray(0, i), text.subarray(i)]).out.toString()).toBe(`→ ${MASK} ← ✓\n`);
    }
    const binary = randomBytes(4096);
    expect(m.mask(binary).equals(binary)).toBe(true);
  });

  it('gives what the slow reference gives, for random secrets, text and chunkings', () => {
    for (let round = 0; round < 300; round++) {
      const letters = (n: number) => Array.from({ length: n }, () => 'ab\n'[Math.floor(Math.random() * 3)]).join('');
      const values = Array.from({ length: 1 + (round % 3) }, () => Buffer.from(letters(4 + Math.floor(Math.random() * 6))));
      const m = SecretMasker.for(values);
      const text = Buffer.from(letters(200));
      if (!m) continue;
      const expected = reference(m.patterns, text);
      const cuts = [0, ...Array.from({ length: 8 }, () => Math.floor(Math.random() * text.length)).sort((a, b) => a - b), text.length];
      const chunks = cuts.slice(1).map((c, i) => text.subarray(cuts[i]!, c));
      expect(streamed(m, chunks).out.toString(), JSON.stringify({ values: values.map(String), text: String(text), cuts })).toBe(expected.toString());
    }
  });

  it('gives what the slow reference gives for longer secrets, printed whole, in part and encoded, cut anywhere', () => {
    const pick = <T>(items: readonly T[]) => items[Math.floor(Math.random() * items.length)]!;
    const letters = (n: number) => Array.from({ length: n }, () => pick(['a', 'b', 'c', ' ', '\n', 'Y', 'W'])).join('');
    for (let round = 0; round < 200; round++) {
      const values = Array.from({ length: 1 + (round % 2) }, () => Buffer.from(letters(6 + Math.floor(Math.random() * 30))));
      const m = SecretMasker.for(values);
      if (!m) continue;
      const pieces: string[] = [];
      for (let i = 0; i < 20; i++) {
        const v = pick(values).toString();
        pieces.push(
          pick([
            letters(Math.floor(Math.random() * 40)),
            v,
            v.slice(0, Math.floor(Math.random() * v.length)),
            Buffer.from(v).toString('base64'),
            Buffer.from(letters(2) + v).toString('base64url'),
            encodeURIComponent(v),
          ]),
        );
      }
      const text = Buffer.from(pieces.join(''));
      const expected = reference(m.patterns, text).toString();
      for (const size of [1, 7, 64, text.length]) {
        const chunks = chunksOf(text, size);
        expect(streamed(m, chunks).out.toString(), JSON.stringify({ values: values.map(String), text: String(text), size })).toBe(expected);
      }
    }
  });
});
