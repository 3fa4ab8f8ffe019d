/**
 * bcrypt password hashes (`$2a$COST$SALTHASH`), the form nats-server accepts in place of
 * a clear-text password, written from the algorithm (Provos and Mazières, "A
 * Future-Adaptable Password Scheme", 1999) so that the NATS config (nats-auth.ts) needs no
 * native module. Only hashing is needed here: nats-server does the checking.
 *
 * Blowfish's initial P-array and S-boxes are the fractional hex digits of pi, so they
 * are computed (Machin's formula in BigInt fixed point) rather than pasted as tables.
 */
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';

const WORDS = 18 + 4 * 256;

/** The first WORDS 32-bit words of pi's fractional part, in order: P[0..17], then S0..S3. */
function piWords(): Uint32Array {
  const bits = WORDS * 32;
  const guard = 64n;
  const precision = BigInt(bits) + guard;
  const one = 1n << precision;
  // atan(1/x) = 1/x - 1/(3x^3) + 1/(5x^5) - ...
  const atanInverse = (x: bigint): bigint => {
    const xx = x * x;
    let power = one / x;
    let sum = power;
    for (let k = 3n, sign = -1n; power !== 0n; k += 2n, sign = -sign) {
      power /= xx;
      sum += (sign * power) / k;
    }
    return sum;
  };
  const pi = 16n * atanInverse(5n) - 4n * atanInverse(239n);
  const fraction = (pi - 3n * one) >> guard;
  const words = new Uint32Array(WORDS);
  for (let i = 0; i < WORDS; i++) words[i] = Number((fraction >> BigInt(bits - 32 * (i + 1))) & 0xffffffffn);
  return words;
}

interface State {
  p: Uint32Array;
  s: Uint32Array;
}

let initial: Uint32Array | undefined;
function initialState(): State {
  initial ??= piWords();
  // Known first and last words of the tables: a wrong digit anywhere shifts none of these
  // alone, but a wrong precision or order would.
  if (initial[0] !== 0x243f6a88 || initial[18] !== 0xd1310ba6 || initial[WORDS - 1] !== 0x3ac372e6) {
    throw new Error('bcrypt: the Blowfish tables computed from pi are wrong');
  }
  return { p: initial.slice(0, 18), s: initial.slice(18) };
}

function encipher(state: State, lr: Uint32Array, off: number): void {
  const { p, s } = state;
  let l = lr[off]!;
  let r = lr[off + 1]!;
  l ^= p[0]!;
  for (let i = 1; i <= 16; i += 2) {
    r ^= (((s[l >>> 24]! + s[0x100 | ((l >>> 16) & 0xff)]!) ^ s[0x200 | ((l >>> 8) & 0xff)]!) + s[0x300 | (l & 0xff)]!) ^ p[i]!;
    l ^= (((s[r >>> 24]! + s[0x100 | ((r >>> 16) & 0xff)]!) ^ s[0x200 | ((r >>> 8) & 0xff)]!) + s[0x300 | (r & 0xff)]!) ^ p[i + 1]!;
  }
  lr[off] = r ^ p[17]!;
  lr[off + 1] = l;
}

/** Reads `data` as a cyclic stream of big-endian 32-bit words. */
function wordStream(data: Uint8Array): () => number {
  let at = 0;
  return () => {
    let word = 0;
    for (let i = 0; i < 4; i++) {
      word = (word << 8) | data[at]!;
      at = (at + 1) % data.length;
    }
    return word >>> 0;
  };
}

/** Blowfish's key schedule, with the salt mixed into every block when given (bcrypt's ExpandKey). */
function expandKey(state: State, key: Uint8Array, salt: Uint8Array | undefined): void {
  const keyWord = wordStream(key);
  for (let i = 0; i < 18; i++) state.p[i] = state.p[i]! ^ keyWord();
  const saltWord = salt ? wordStream(salt) : () => 0;
  const lr = new Uint32Array(2);
  const fill = (table: Uint32Array) => {
    for (let i = 0; i < table.length; i += 2) {
      lr[0] = lr[0]! ^ saltWord();
      lr[1] = lr[1]! ^ saltWord();
      encipher(state, lr, 0);
      table[i] = lr[0]!;
      table[i + 1] = lr[1]!;
    }
  };
  fill(state.p);
  fill(state.s);
}

const ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** bcrypt's own base64: its alphabet, no padding. */
function encode(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i]!;
    const b = bytes[i + 1] ?? 0;
    const c = bytes[i + 2] ?? 0;
    out += ALPHABET.charAt(a >> 2) + ALPHABET.charAt(((a & 3) << 4) | (b >> 4));
    if (i + 1 < bytes.length) out += ALPHABET.charAt(((b & 0xf) << 2) | (c >> 6));
    if (i + 2 < bytes.length) out += ALPHABET.charAt(c & 0x3f);
  }
  return out;
}

/**
 * `$2a$COST$...` for `password`; `salt` (16 bytes) is random unless given (tests).
 * The password is used as bcrypt defines it: its UTF-8 bytes, a NUL, at most 72 bytes.
 */
export function bcryptHash(password: string, cost = 11, salt: Uint8Array = randomBytes(16)): string {
  if (!Number.isInteger(cost) || cost < 4 || cost > 31) throw new Error(`bcrypt: cost must be 4..31, not ${cost}`);
  if (salt.length !== 16) throw new Error('bcrypt: the salt is 16 bytes');
  const key = Buffer.concat([Buffer.from(password, 'utf8'), Buffer.from([0])]).subarray(0, 72);
  const state = initialState();
  expandKey(state, key, salt);
  for (let i = 0; i < 2 ** cost; i++) {
    expandKey(state, key, undefined);
    expandKey(state, salt, undefined);
  }
  const text = Buffer.from('OrpheanBeholderScryDoubt', 'latin1');
  const cdata = new Uint32Array(6);
  for (let i = 0; i < 6; i++) cdata[i] = text.readUInt32BE(i * 4);
  for (let round = 0; round < 64; round++) for (let j = 0; j < 6; j += 2) encipher(state, cdata, j);
  const hash = Buffer.alloc(24);
  for (let i = 0; i < 6; i++) hash.writeUInt32BE(cdata[i]!, i * 4);
  return `$2a$${String(cost).padStart(2, '0')}$${encode(salt)}${encode(hash.subarray(0, 23))}`;
}
