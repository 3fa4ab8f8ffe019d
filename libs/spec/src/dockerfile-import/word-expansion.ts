/** Variable substitution, as BuildKit's shell lexer does it in FROM, COPY, ENV, ... */

/** A variable's value; undefined when unset. May throw when the value cannot be known. */
export type Lookup = (name: string) => string | undefined;

const MAX_NESTING = 64;

export class WordExpander {
  private i = 0;
  private depth = 0;
  private readonly c: readonly string[];

  constructor(
    word: string,
    private readonly escape: string,
    private readonly lookup: Lookup,
    private readonly fail: (reason: string) => never,
  ) {
    this.c = Array.from(word);
  }

  expand(): string {
    return this.until(undefined);
  }

  private until(stop: string | undefined): string {
    let out = '';
    while (this.i < this.c.length) {
      const ch = this.c[this.i]!;
      if (ch === stop) {
        this.i++;
        return out;
      }
      if (ch === "'") out += this.singleQuoted();
      else if (ch === '"') out += this.doubleQuoted();
      else if (ch === '$') out += this.dollar();
      else {
        this.i++;
        if (ch === this.escape) {
          if (this.i >= this.c.length) break;
          out += this.c[this.i++];
        } else out += ch;
      }
    }
    if (stop !== undefined) this.fail(`a "${stop}" is missing`);
    return out;
  }

  private singleQuoted(): string {
    const close = this.c.indexOf("'", this.i + 1);
    if (close < 0) this.fail('a closing single quote is missing');
    const out = this.c.slice(this.i + 1, close).join('');
    this.i = close + 1;
    return out;
  }

  private doubleQuoted(): string {
    let out = '';
    this.i++;
    for (;;) {
      const ch = this.c[this.i];
      if (ch === undefined) this.fail('a closing double quote is missing');
      if (ch === '"') {
        this.i++;
        return out;
      }
      if (ch === '$') {
        out += this.dollar();
        continue;
      }
      this.i++;
      if (ch === this.escape) {
        const next = this.c[this.i];
        if (next === undefined) continue;
        if (next === '"' || next === '$' || next === this.escape) {
          out += next;
          this.i++;
          continue;
        }
      }
      out += ch;
    }
  }

  private dollar(): string {
    this.i++;
    if (this.c[this.i] !== '{') {
      const name = this.name();
      return name === '' ? '$' : (this.lookup(name) ?? '');
    }
    this.i++;
    const first = this.c[this.i];
    if (first === undefined) this.fail('a "}" is missing');
    if (first === '{' || first === '}' || first === ':') this.fail('bad substitution ${' + first);
    const name = this.name();
    const op = this.c[this.i++];
    if (op === '}') return this.lookup(name) ?? '';
    if (op === ':') return this.modifier(name, this.c[this.i++], true);
    return this.modifier(name, op, false);
  }

  private modifier(name: string, op: string | undefined, nullIsUnset: boolean): string {
    if (op === '#' || op === '%' || op === '/') {
      this.fail(`the pattern substitution \${${name}${nullIsUnset ? ':' : ''}${op}...} cannot be imported; use a plain value`);
    }
    if (op !== '-' && op !== '+' && op !== '?') this.fail(`unsupported modifier "${op ?? ''}" in \${${name}...}`);
    if (++this.depth > MAX_NESTING) this.fail('substitutions are nested too deeply');
    const word = this.until('}');
    this.depth--;
    const value = this.lookup(name);
    const unset = value === undefined || (nullIsUnset && value === '');
    if (op === '-') return unset ? word : value;
    if (op === '+') return unset ? '' : word;
    if (unset) this.fail(`${name}: ${word || `is not allowed to be ${value === undefined ? 'unset' : 'empty'}`}`);
    return value;
  }

  /** A variable name; digits and special parameters ($1, $@...) are names of one kind too. */
  private name(): string {
    const first = this.c[this.i];
    if (first !== undefined && /^\p{Nd}$/u.test(first)) {
      let digits = '';
      while (this.c[this.i] !== undefined && /^\p{Nd}$/u.test(this.c[this.i]!)) digits += this.c[this.i++];
      return digits;
    }
    if (first !== undefined && '@*#?-$!0'.includes(first)) {
      this.i++;
      return first;
    }
    let name = '';
    while (this.c[this.i] !== undefined && /^[\p{L}\p{Nd}_]$/u.test(this.c[this.i]!)) name += this.c[this.i++];
    return name;
  }
}

export const isSpecialParameter = (name: string) => /^(\p{Nd}+|[@*#?\-$!0])$/u.test(name);
