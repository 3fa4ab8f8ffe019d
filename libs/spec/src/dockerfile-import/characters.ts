/** Characters as BuildKit's Dockerfile parser classes them, and the trimming and splitting built on them. */

/** Go's unicode.IsSpace, which BuildKit uses to trim lines and split words. */
export function isGoSpace(c: string | undefined): boolean {
  if (c === undefined) return false;
  const code = c.charCodeAt(0);
  return (
    (code >= 0x09 && code <= 0x0d) ||
    code === 0x20 ||
    code === 0x85 ||
    code === 0xa0 ||
    code === 0x1680 ||
    (code >= 0x2000 && code <= 0x200a) ||
    code === 0x2028 ||
    code === 0x2029 ||
    code === 0x202f ||
    code === 0x205f ||
    code === 0x3000
  );
}

/** BuildKit splits an instruction from its arguments, and whitespace lists, on these only. */
export const isTokenSpace = (c: string | undefined) => c === ' ' || c === '\t' || c === '\v' || c === '\f' || c === '\r';
export const isBlank = (c: string | undefined) => c === ' ' || c === '\t';
export const isBlankOrNewline = (c: string | undefined) => c === ' ' || c === '\t' || c === '\n' || c === '\f' || c === '\r';

export function trimStart(s: string, space: (c: string | undefined) => boolean): string {
  let i = 0;
  while (i < s.length && space(s[i])) i++;
  return s.slice(i);
}

export function trimEnd(s: string, space: (c: string | undefined) => boolean): string {
  let i = s.length;
  while (i > 0 && space(s[i - 1])) i--;
  return s.slice(0, i);
}

export const goTrim = (s: string) => trimEnd(trimStart(s, isGoSpace), isGoSpace);

export function splitTokens(s: string): string[] {
  const out: string[] = [];
  let word = '';
  for (const c of s) {
    if (!isTokenSpace(c)) word += c;
    else if (word) {
      out.push(word);
      word = '';
    }
  }
  if (word) out.push(word);
  return out;
}
