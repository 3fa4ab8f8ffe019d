import { ROOT_UNIX, type CopyOp, type CopySource, type Mount, type Op, type Spec, type User } from './ast.js';
import { closest } from './did-you-mean.js';
import type { Position } from './sexp.js';
import { SpecError } from './spec-error.js';

/**
 * Dockerfile import: a Dockerfile becomes the one spec AST, so nothing downstream knows
 * which text a spec came from. Reading follows BuildKit's Dockerfile frontend (parser
 * directives, line continuations, flags, JSON forms, variable substitution). Whatever a
 * spec cannot express faithfully is a SpecError naming the line, never dropped.
 *
 * Where Docker and a spec differ, the import keeps Docker's meaning:
 * - RUN uses Docker's shell, `/bin/sh -c`, not the spec default bash: a `(shell /bin/sh -c)`
 *   comes before the first RUN of a stage (and after any SHELL, the SHELL's arguments).
 * - RUN gets `(network host)`: Docker's RUN reaches the network by default, a spec's does
 *   not. `--network=none` gives no network field.
 * - An ARG with a value becomes `(env NAME VALUE)` where it is declared: BuildKit adds it to
 *   the environment of every later RUN of the stage, exactly like an ENV.
 * - COPY writes root-owned files unless `--chown`, whatever USER says, while a spec copy is
 *   owned by the current user: when they differ the copy is wrapped in `(user ...)` ops.
 * - The base image's config is invisible here: a variable must be set by an ARG or ENV of
 *   the Dockerfile to be expanded, and the workdir, user and shell start as Docker's
 *   defaults for an image that sets none (`/`, root, `/bin/sh -c`), as in OBuilder.
 */
export interface DockerfileImportOptions {
  /** Contents of a .dockerignore, if any: its patterns become `exclude` of every context copy. */
  readonly dockerignore?: string;
  /** Values for ARGs given on the command line (override defaults). */
  readonly buildArgs?: Readonly<Record<string, string>>;
  /** File name used in error messages. */
  readonly file?: string;
}

export function specOfDockerfile(text: string, options: DockerfileImportOptions = {}): Spec {
  try {
    const excludes = options.dockerignore === undefined ? [] : excludesOfDockerignore(options.dockerignore);
    const { entries, directives } = readEntries(text);
    const importer = new Importer(directives.escape, excludes, options.buildArgs ?? {});
    for (const entry of entries) importer.add(entry);
    return importer.finish();
  } catch (e) {
    if (e instanceof SpecError && options.file !== undefined && e.file === undefined) throw e.inFile(options.file);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------
// Characters

/** Go's unicode.IsSpace, which BuildKit uses to trim lines and split words. */
function isGoSpace(c: string | undefined): boolean {
  if (c === undefined) return false;
  const code = c.charCodeAt(0);
  return (code >= 0x09 && code <= 0x0d) || code === 0x20 || code === 0x85 || code === 0xa0 || code === 0x1680
    || (code >= 0x2000 && code <= 0x200a) || code === 0x2028 || code === 0x2029 || code === 0x202f
    || code === 0x205f || code === 0x3000;
}

/** BuildKit splits an instruction from its arguments, and whitespace lists, on these only. */
const isTokenSpace = (c: string | undefined) => c === ' ' || c === '\t' || c === '\v' || c === '\f' || c === '\r';
const isBlank = (c: string | undefined) => c === ' ' || c === '\t';

function trimStart(s: string, space: (c: string | undefined) => boolean): string {
  let i = 0;
  while (i < s.length && space(s[i])) i++;
  return s.slice(i);
}

function trimEnd(s: string, space: (c: string | undefined) => boolean): string {
  let i = s.length;
  while (i > 0 && space(s[i - 1])) i--;
  return s.slice(0, i);
}

const goTrim = (s: string) => trimEnd(trimStart(s, isGoSpace), isGoSpace);

function splitTokens(s: string): string[] {
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

// ---------------------------------------------------------------------------------------
// Lines: parser directives, comments, continuations

interface Piece {
  readonly text: string;
  /** Offset of the piece in the joined logical line. */
  readonly start: number;
  readonly line: number;
  readonly column: number;
}

/** One instruction as Docker reads it: its lines joined, each continuation removed. */
class Logical {
  readonly text: string;

  constructor(readonly pieces: readonly Piece[]) {
    this.text = pieces.map((p) => p.text).join('');
  }

  pos(offset: number): Position {
    // The last non-empty piece starting at or before the offset, by binary search.
    let lo = 0;
    let hi = this.pieces.length - 1;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (this.pieces[mid]!.start <= offset) lo = mid;
      else hi = mid - 1;
    }
    while (lo > 0 && this.pieces[lo]!.text.length === 0) lo--;
    const best = this.pieces[lo]!;
    return { line: best.line, column: best.column + Math.max(0, offset - best.start) };
  }

  /** The text between two offsets, cut where the Dockerfile continued a line. */
  segments(from: number, to: number): string[] {
    const out: string[] = [];
    for (const p of this.pieces) {
      const s = Math.max(from, p.start);
      const e = Math.min(to, p.start + p.text.length);
      if (s < e) out.push(this.text.slice(s, e));
    }
    return out;
  }
}

type Entry =
  | { readonly kind: 'comment'; readonly text: string }
  | { readonly kind: 'instruction'; readonly logical: Logical };

const DIRECTIVE = /^#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=([\s\S]*)$/;
const FRONTEND = /^(docker\.io\/)?docker\/dockerfile(-upstream)?(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$/;

/** Parser directives: only at the very top, before any comment, blank line or instruction. */
class Directives {
  escape = '\\';
  private done = false;
  private readonly seen = new Set<string>();

  /** Whether the (left-trimmed) line is a directive, so neither a comment nor an instruction. */
  take(token: string, line: number): boolean {
    if (this.done) return false;
    const m = DIRECTIVE.exec(token);
    const key = m?.[1]?.toLowerCase();
    if (!m || (key !== 'syntax' && key !== 'escape' && key !== 'check')) {
      this.done = true;
      return false;
    }
    const value = trimEnd(trimStart(m[2]!, isBlankOrNewline), isBlankOrNewline);
    if (value === '') {
      this.done = true;
      return false;
    }
    const pos = { line, column: 1 };
    if (this.seen.has(key)) throw new SpecError(`only one "# ${key}=" parser directive may be given`, pos);
    this.seen.add(key);
    if (key === 'escape') this.setEscape(value, pos);
    if (key === 'syntax' && !FRONTEND.test(value)) {
      throw new SpecError(`"# syntax=${value}" selects another Dockerfile frontend; only docker/dockerfile can be imported`, pos);
    }
    return true;
  }

  private setEscape(value: string, pos: Position): void {
    if (value !== '\\' && value !== '`') throw new SpecError(`"# escape=${value}": the escape character must be \\ or \``, pos);
    this.escape = value;
  }
}

const isBlankOrNewline = (c: string | undefined) => c === ' ' || c === '\t' || c === '\n' || c === '\f' || c === '\r';

function physicalLines(text: string): string[] {
  const lines = text.split('\n').map((l) => trimEnd(l, (c) => c === '\r'));
  if (lines[0]?.startsWith('\uFEFF')) lines[0] = lines[0].slice(1);
  return lines;
}

/** Strips the escape character that continues a line, with the blanks after it. */
function cutContinuation(line: string, escape: string): [string, boolean] {
  const body = trimEnd(line, isBlank);
  return body.endsWith(escape) ? [body.slice(0, -1), true] : [line, false];
}

const isCommentLine = (line: string) => trimStart(line, isGoSpace).startsWith('#');

function readEntries(text: string): { entries: Entry[]; directives: Directives } {
  const directives = new Directives();
  const lines = physicalLines(text);
  const entries: Entry[] = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const token = trimStart(raw, isGoSpace);
    if (directives.take(token, i + 1)) continue;
    if (token.startsWith('#')) {
      entries.push({ kind: 'comment', text: goTrim(token.slice(1)) });
      continue;
    }
    let [piece, more] = cutContinuation(token, directives.escape);
    if (!more && piece === '') continue;
    const pieces: Piece[] = [{ text: piece, start: 0, line: i + 1, column: raw.length - token.length + 1 }];
    let length = piece.length;
    // Docker drops comment lines and blank lines inside a continued instruction.
    while (more && i + 1 < lines.length) {
      const next = lines[++i]!;
      if (isCommentLine(next) || trimStart(next, isGoSpace) === '') continue;
      [piece, more] = cutContinuation(next, directives.escape);
      pieces.push({ text: piece, start: length, line: i + 1, column: 1 });
      length += piece.length;
    }
    entries.push({ kind: 'instruction', logical: new Logical(pieces) });
  }
  return { entries, directives };
}

// ---------------------------------------------------------------------------------------
// Instructions and their flags

interface RawFlag {
  readonly word: string;
  readonly start: number;
}

interface Instruction {
  /** A known instruction in upper case, as messages name it; an unknown one as written. */
  readonly keyword: string;
  readonly pos: Position;
  readonly logical: Logical;
  readonly rawFlags: readonly RawFlag[];
  /** The arguments after the flags, trimmed. */
  readonly args: string;
  readonly argsStart: number;
}

function parseInstruction(logical: Logical): Instruction | undefined {
  const text = logical.text;
  let start = 0;
  let end = text.length;
  while (start < end && isGoSpace(text[start])) start++;
  while (end > start && isGoSpace(text[end - 1])) end--;
  if (start === end) return undefined;
  let k = start;
  while (k < end && !isTokenSpace(text[k])) k++;
  let rest = k;
  while (rest < end && isTokenSpace(text[rest])) rest++;
  const { flags, argsStart } = extractFlags(text, rest, end);
  let a = argsStart;
  while (a < end && isGoSpace(text[a])) a++;
  return {
    keyword: canonicalKeyword(text.slice(start, k)),
    pos: logical.pos(start),
    logical,
    rawFlags: flags,
    args: text.slice(a, end),
    argsStart: a,
  };
}

/** Upper case for a known instruction, matched as BuildKit does (lower-cased); else as written. */
function canonicalKeyword(written: string): string {
  const lower = written.toLowerCase();
  return INSTRUCTIONS.find((name) => name.toLowerCase() === lower) ?? written;
}

/** BuildKit's extractBuilderFlags: leading `--name[=value]` words, quotes and `\` removed. */
function extractFlags(text: string, from: number, to: number): { flags: RawFlag[]; argsStart: number } {
  const flags: RawFlag[] = [];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let wordStart = from;
  let quote = '';
  let blankOK = false;
  for (let pos = from; pos <= to; pos++) {
    const ch = text[pos] ?? '';
    if (phase === 'spaces') {
      if (pos === to) break;
      if (isGoSpace(ch)) continue;
      if (ch !== '-' || pos + 1 === to || text[pos + 1] !== '-') return { flags, argsStart: pos };
      phase = 'word';
      wordStart = pos;
    }
    if (pos === to) {
      if (word !== '--' && (blankOK || word.length > 0)) flags.push({ word, start: wordStart });
      break;
    }
    if (phase === 'word' && isGoSpace(ch)) {
      phase = 'spaces';
      if (word === '--') return { flags, argsStart: pos };
      if (blankOK || word.length > 0) flags.push({ word, start: wordStart });
      word = '';
      blankOK = false;
    } else if (phase === 'word' && (ch === '"' || ch === "'")) {
      quote = ch;
      blankOK = true;
      phase = 'quote';
    } else if (phase === 'quote' && ch === quote) {
      phase = 'word';
    } else if (ch === '\\') {
      if (pos + 1 === to) {
        phase = 'word';
        continue;
      }
      word += text[++pos];
    } else word += ch;
  }
  return { flags, argsStart: to };
}

type FlagKind = 'string' | 'strings' | 'bool';

interface FlagValue {
  readonly value: string;
  readonly pos: Position;
}

/** Every flag BuildKit knows per instruction; those a spec cannot express are rejected later. */
const FLAGS: Readonly<Record<string, Readonly<Record<string, FlagKind>>>> = {
  FROM: { platform: 'string' },
  RUN: { mount: 'strings', network: 'string', security: 'string', device: 'strings' },
  COPY: { from: 'string', chown: 'string', chmod: 'string', link: 'bool', parents: 'bool', exclude: 'strings' },
  ADD: {
    chown: 'string', chmod: 'string', link: 'bool', 'keep-git-dir': 'bool', checksum: 'string', unpack: 'bool', exclude: 'strings',
  },
};

const UNSUPPORTED_FLAGS: Readonly<Record<string, string>> = {
  security: 'runs the step with extra privileges, which a spec cannot grant',
  device: 'gives the step a device, which a spec cannot grant',
  chmod: 'sets file modes, while a spec copy keeps each file\'s own mode (0755 or 0644)',
  link: 'copies into an independent layer, which a spec cannot record',
  parents: 'keeps the parent directories of each source, which a spec copy cannot do',
  'keep-git-dir': 'fetches a Git repository, which a spec cannot do',
  checksum: 'verifies a download, which a spec cannot do',
  unpack: 'controls archive extraction, which a spec cannot do',
};

function parseFlags(ins: Instruction, supported: readonly string[]): Map<string, FlagValue[]> {
  const kinds = FLAGS[ins.keyword] ?? {};
  const found = new Map<string, FlagValue[]>();
  for (const raw of ins.rawFlags) {
    const pos = ins.logical.pos(raw.start);
    const eq = raw.word.indexOf('=');
    const name = (eq < 0 ? raw.word : raw.word.slice(0, eq)).slice(2);
    const kind = Object.hasOwn(kinds, name) ? kinds[name] : undefined;
    if (kind === undefined) {
      const hint = closest(name, Object.keys(kinds));
      throw new SpecError(`unknown flag --${name} for ${ins.keyword}${hint ? `; did you mean --${hint}?` : ''}`, pos);
    }
    if (!supported.includes(name)) {
      throw new SpecError(`${ins.keyword} --${name} cannot be imported: it ${UNSUPPORTED_FLAGS[name] ?? 'has no spec equivalent'}`, pos);
    }
    if (found.has(name) && kind !== 'strings') throw new SpecError(`${ins.keyword} --${name} is given twice`, pos);
    if (eq < 0 && kind !== 'bool') throw new SpecError(`${ins.keyword} --${name} needs a value (--${name}=VALUE)`, pos);
    const values = found.get(name) ?? [];
    values.push({ value: eq < 0 ? 'true' : raw.word.slice(eq + 1), pos });
    found.set(name, values);
  }
  return found;
}

/** Go's strconv.ParseBool. */
function parseBool(value: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Argument forms: JSON arrays, BuildKit's words, heredocs

interface JsonArray {
  readonly values: readonly unknown[];
  /** Text after the array: Docker ignores it silently, so the import rejects it. */
  readonly trailing: boolean;
}

/** The first JSON value of the text, if it is an array, as Go's json.Decoder reads it. */
function readJsonArray(text: string): JsonArray | undefined {
  if (!text.startsWith('[')) return undefined;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '[' || c === '{') depth++;
    else if ((c === ']' || c === '}') && --depth === 0) return parsedArray(text.slice(0, i + 1), text.slice(i + 1));
  }
  return undefined;
}

function parsedArray(json: string, rest: string): JsonArray | undefined {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return undefined;
  }
  return Array.isArray(value) ? { values: value, trailing: goTrim(rest) !== '' } : undefined;
}

function jsonStrings(array: JsonArray, ins: Instruction): readonly string[] {
  if (!array.values.every((v): v is string => typeof v === 'string')) {
    throw new SpecError(`${ins.keyword} in JSON form takes an array of strings only`, ins.pos);
  }
  if (array.trailing) throw new SpecError(`${ins.keyword} has text after its JSON array, which Docker would ignore; remove it`, ins.pos);
  return array.values;
}

/** BuildKit's parseWords (ENV, ARG): words split at blanks, quotes and escapes kept. */
function parseWords(rest: string, escape: string): string[] {
  const words: string[] = [];
  const chars = Array.from(rest);
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let quote = '';
  let blankOK = false;
  for (let pos = 0; pos <= chars.length; pos++) {
    let ch = chars[pos] ?? '';
    if (phase === 'spaces') {
      if (pos === chars.length) break;
      if (isGoSpace(ch)) continue;
      phase = 'word';
    }
    if (pos === chars.length) {
      if (blankOK || word) words.push(word);
      break;
    }
    if (phase === 'word' && isGoSpace(ch)) {
      if (blankOK || word) words.push(word);
      phase = 'spaces';
      word = '';
      blankOK = false;
      continue;
    }
    if (phase === 'word' && (ch === '"' || ch === "'")) {
      quote = ch;
      blankOK = true;
      phase = 'quote';
    } else if (phase === 'quote' && ch === quote) phase = 'word';
    else if (ch === escape && (phase === 'word' || quote !== "'")) {
      if (pos + 1 === chars.length) {
        phase = 'word';
        continue;
      }
      word += ch;
      ch = chars[++pos]!;
    }
    word += ch;
  }
  return words;
}

/** Shell words with quotes kept, as BuildKit splits a line to look for heredocs. */
function rawShellWords(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let quote = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (!quote && isGoSpace(c)) {
      if (word) words.push(word);
      word = '';
      continue;
    }
    if (c === '\\' && quote !== "'") word += c + (text[++i] ?? '');
    else {
      if (quote === c) quote = '';
      else if (!quote && (c === '"' || c === "'")) quote = c;
      word += c;
    }
  }
  if (quote) return [];
  if (word) words.push(word);
  return words;
}

const HEREDOC = /^\d*<<-?[^<]+$/;

function rejectHeredoc(ins: Instruction): void {
  if (!ins.args.includes('<<') || !rawShellWords(ins.args).some((w) => HEREDOC.test(w))) return;
  throw new SpecError(`${ins.keyword} with a heredoc (<<EOF) cannot be imported; write the content to a file in the context instead`, ins.pos);
}

// ---------------------------------------------------------------------------------------
// Variable substitution, as BuildKit's shell lexer does it in FROM, COPY, ENV, ...

/** A variable's value; undefined when unset. May throw when the value cannot be known. */
type Lookup = (name: string) => string | undefined;

const MAX_NESTING = 64;

class WordExpander {
  private i = 0;
  private depth = 0;
  private readonly c: readonly string[];

  constructor(word: string, private readonly escape: string, private readonly lookup: Lookup, private readonly fail: (reason: string) => never) {
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

const isSpecialParameter = (name: string) => /^(\p{Nd}+|[@*#?\-$!0])$/u.test(name);

// ---------------------------------------------------------------------------------------
// RUN commands: shell form continuations, exec form

/**
 * Follows just enough of sh's lexing to know whether the text so far ends outside any
 * quote, escape, comment or `${...}`, and after a list operator (`&&`, `||`, `|`, `;`,
 * `&`) after which a newline means the same as blanks. Anything it does not follow
 * (backquotes, `$'...'`, `((`, `<<`, `case`) makes it answer no from then on.
 */
class ShellScan {
  private quote = '';
  private escaped = false;
  private params = 0;
  private opaque = false;
  private prev = '';
  private operator = '';
  private beforeOperator = '';
  private token = '';

  feed(text: string): void {
    for (const c of text) this.step(c);
  }

  /** Outside quotes, escapes, comments and `${...}`: blanks here are only separators. */
  plain(): boolean {
    return !this.opaque && !this.quote && !this.escaped && this.params === 0;
  }

  /** At a point where sh takes a newline the same as blanks. */
  afterListOperator(): boolean {
    if (!this.plain() || this.operator === '') return false;
    if (this.operator === '&' && (this.beforeOperator === '>' || this.beforeOperator === '<')) return false;
    return !(this.operator === '|' && this.beforeOperator === '>');
  }

  private step(c: string): void {
    if (this.opaque) return;
    const prev = this.prev;
    this.prev = c;
    if (!this.quote && !this.escaped && isBlank(c)) {
      this.endToken();
      return;
    }
    this.operator = '';
    const separates = !this.quote && !this.escaped && '();&|<>'.includes(c);
    if (this.escaped) this.escaped = false;
    else if (this.quote === "'") this.quote = c === "'" ? '' : "'";
    else if (c === '\\') this.escaped = true;
    else if (this.quote === '"') this.doubleQuoted(c, prev);
    else this.unquoted(c, prev);
    this.token = separates ? '' : this.token + c;
  }

  private doubleQuoted(c: string, prev: string): void {
    if (c === '"') this.quote = '';
    else if (c === '`') this.opaque = true;
    else this.brace(c, prev);
  }

  private unquoted(c: string, prev: string): void {
    if (c === "'" || c === '"') {
      this.quote = c;
      if (c === "'" && prev === '$') this.opaque = true;
    } else if (c === '`' || (c === '(' && prev === '(') || (c === '<' && prev === '<')) this.opaque = true;
    else if (c === '#' && (prev === '' || isBlank(prev) || ';&|()<>'.includes(prev))) this.opaque = true;
    else if (c === ';' || c === '&' || c === '|') {
      this.endToken();
      this.operator = c;
      this.beforeOperator = prev;
    } else this.brace(c, prev);
  }

  private brace(c: string, prev: string): void {
    if (c === '{' && prev === '$') this.params++;
    else if (c === '}' && this.params > 0) this.params--;
  }

  /** A `case` pattern list may not break at `|`, so stop following at the keyword. */
  private endToken(): void {
    if (this.token === 'case') this.opaque = true;
    this.token = '';
  }
}

/**
 * The command of a shell-form RUN. Docker joins continued lines as they are; a spec keeps
 * a newline where sh reads it the same as blanks (after `&&`, `;`, `|`...), so that
 * `dockerfileOfSpec` prints the lines back, and collapses blanks at other joins outside
 * quotes. Inside quotes, or with a shell this does not know, the lines join as in Docker.
 */
function shellCommand(segments: readonly string[], posix: boolean): string {
  if (!posix) return segments.join('');
  const scan = new ShellScan();
  const out = new Pieces();
  for (const [k, seg] of segments.entries()) {
    const body = trimStart(seg, isBlank);
    if (k === 0 || !scan.plain()) out.add(seg);
    else if (scan.afterListOperator() && body !== '' && !isBlankOrNewline(body[0])) out.trimEnd().add('\n', body);
    else if (isBlank(out.last()) || isBlank(seg[0])) out.trimEnd().add(' ', body);
    else out.add(seg);
    scan.feed(seg);
  }
  return out.join();
}

/** A string built by appending, whose end can be trimmed without copying the whole. */
class Pieces {
  private readonly parts: string[] = [];

  add(...texts: string[]): this {
    for (const t of texts) if (t !== '') this.parts.push(t);
    return this;
  }

  last(): string | undefined {
    return this.parts.at(-1)?.at(-1);
  }

  trimEnd(): this {
    while (this.parts.length > 0) {
      const trimmed = trimEnd(this.parts.at(-1)!, isBlank);
      if (trimmed !== '') {
        this.parts[this.parts.length - 1] = trimmed;
        break;
      }
      this.parts.pop();
    }
    return this;
  }

  join(): string {
    return this.parts.join('');
  }
}

const POSIX_SHELLS = new Set(['sh', 'bash', 'dash', 'ash', 'ksh', 'mksh', 'zsh', 'yash', 'posh']);

/** `sh -c`, `/bin/bash -o pipefail -c`, `/usr/bin/env bash -ec`...: a shell that reads sh syntax. */
function isPosixShell(args: readonly string[]): boolean {
  const base = (p: string | undefined) => p?.slice(p.lastIndexOf('/') + 1);
  const program = base(args[0]) === 'env' ? base(args.slice(1).find((a) => !a.startsWith('-') && !a.includes('='))) : base(args[0]);
  return program !== undefined && POSIX_SHELLS.has(program) && /^-[a-z]*c$/.test(args.at(-1) ?? '');
}

function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * Exec form runs its program without a shell. A spec only runs commands through its
 * shell, so the import quotes each argument for sh and lets the shell `exec` the
 * program: the same program gets the same arguments and nothing is expanded.
 */
function execCommand(args: readonly string[], shell: readonly string[], ins: Instruction): string {
  if (args.length === 0) throw new SpecError('RUN [] has no command to run', ins.pos);
  if (!isPosixShell(shell)) {
    throw new SpecError(`RUN in exec form is imported as "exec ARGS..." for a POSIX shell, but the current SHELL is ${JSON.stringify(shell)}; use the shell form`, ins.pos);
  }
  if (args.some((a) => a.includes('\n'))) throw new SpecError('RUN in exec form has an argument with a newline, which cannot be imported', ins.pos);
  if (args[0]!.startsWith('-')) throw new SpecError(`RUN in exec form names the program "${args[0]}", which starts with "-"`, ins.pos);
  return ['exec', ...args.map(shellQuote)].join(' ');
}

// ---------------------------------------------------------------------------------------
// Users

function numericId(text: string | undefined): number | undefined {
  if (text === 'root') return 0;
  if (text === undefined || !/^\d{1,10}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 0xffffffff ? n : undefined;
}

/** `U:G` with numeric ids (or root). A lone `U` means `U:U` for --chown, but for USER the
 * group comes from the image's /etc/passwd, which the import cannot read. */
function parseOwner(text: string, what: 'USER' | 'COPY --chown' | 'ADD --chown', pos: Position): User {
  const parts = text.split(':');
  const uid = numericId(parts[0]);
  const gid = parts.length === 1 && (what !== 'USER' || uid === 0) ? uid : numericId(parts[1]);
  if (parts.length <= 2 && uid !== undefined && gid !== undefined) return { kind: 'unix', uid, gid };
  const why = parts.length === 1 && uid !== undefined
    ? `Docker takes the group of uid ${uid} from the image's /etc/passwd, which the import cannot read`
    : 'a user or group name needs the image\'s /etc/passwd, which the import cannot read';
  throw new SpecError(`${what} ${text}: ${why}; write numeric ids as UID:GID`, pos);
}

const sameArgs = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

const sameUser = (a: User, b: User) =>
  a.kind === 'unix' ? b.kind === 'unix' && a.uid === b.uid && a.gid === b.gid : b.kind === 'windows' && a.name === b.name;

// ---------------------------------------------------------------------------------------
// RUN --mount

/** Go's encoding/csv reading one record, as BuildKit reads a --mount value. */
function csvFields(text: string, fail: (reason: string) => never): string[] {
  if (text === '') fail('is empty');
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let field = '';
    if (text[i] === '"') {
      for (i++; ; i++) {
        if (i >= text.length) fail('has a quoted field without its closing quote');
        if (text[i] === '"' && text[i + 1] === '"') field += text[i++];
        else if (text[i] === '"') break;
        else field += text[i];
      }
      i++;
      if (i < text.length && text[i] !== ',') fail('has text after a quoted field');
    } else {
      const end = text.indexOf(',', i);
      field = text.slice(i, end < 0 ? text.length : end);
      if (field.includes('"')) fail('has a bare " in a field');
      i += field.length;
    }
    fields.push(field);
    if (i >= text.length) return fields;
    i++;
  }
}

const MOUNT_KEYS: Readonly<Record<string, string>> = {
  type: 'type', from: 'from', source: 'source', src: 'source', target: 'target', dst: 'target', destination: 'target',
  readonly: 'readonly', ro: 'readonly', readwrite: 'readwrite', rw: 'readwrite', id: 'id', sharing: 'sharing',
  required: 'required', mode: 'mode', uid: 'uid', gid: 'gid', size: 'size', env: 'env',
};

type MountOptions = Map<string, string>;

const isAbsolute = (p: string) => p.startsWith('/');
const basename = (p: string) => trimEnd(p, (c) => c === '/').split('/').at(-1) ?? '';

// ---------------------------------------------------------------------------------------
// COPY and ADD sources

/** Names ADD would unpack if the file is the archive its name says (BuildKit checks the content). */
const ARCHIVE = /\.(tar|tgz|tbz2?|txz|tzst|tlz|taz|tar\.(gz|bz2|xz|zst|lz|lzma|z))$/i;
const REMOTE = /^(https?:\/\/|git:\/\/|ssh:\/\/|git@)/i;

function checkSource(src: string, ins: Instruction): void {
  const fail = (why: string) => {
    throw new SpecError(`${ins.keyword} ${src}: ${why}`, ins.pos);
  };
  if (src === '') fail('a source path is empty');
  if (ins.keyword === 'ADD' && REMOTE.test(src)) fail('ADD of a URL downloads at build time, which a spec cannot do; download it in a RUN instead');
  if (ins.keyword === 'ADD' && ARCHIVE.test(src)) fail('ADD would unpack this archive, which a spec copy cannot do; COPY it and unpack it in a RUN');
  if (/[*?[]/.test(src)) fail('wildcards cannot be imported: a spec copy names each source; list the files');
  if (src.split('/').includes('..')) fail('".." cannot be imported: a spec source stays inside the build context or stage');
}

/** `src/` names a directory by its syntax: Docker copies its contents, a spec copies it by name. */
function namesDirectory(src: string): boolean {
  const parts = src.split('/');
  return (src.endsWith('/') || src.endsWith('/.')) && !parts.every((p) => p === '' || p === '.');
}

// ---------------------------------------------------------------------------------------
// .dockerignore

/**
 * A spec `exclude` is a base name matched at any depth, so the import takes only
 * patterns that say that: `NAME`, `NAME/`, `/NAME` or `**\/NAME` without wildcards.
 */
function excludesOfDockerignore(text: string): string[] {
  const out: string[] = [];
  physicalLines(text).forEach((line, i) => {
    if (line.startsWith('#')) return;
    const pattern = goTrim(line);
    if (pattern === '') return;
    const name = excludeName(pattern, () => {
      throw new SpecError(
        `.dockerignore pattern "${pattern}" cannot be imported: a spec excludes a plain file or directory name at any depth (like node_modules or **/.git)`,
        { line: i + 1, column: line.indexOf(pattern) + 1 },
        '.dockerignore',
      );
    });
    if (!out.includes(name)) out.push(name);
  });
  return out;
}

function excludeName(pattern: string, fail: () => never): string {
  if (pattern.startsWith('!')) fail();
  let p = trimEnd(pattern, (c) => c === '/');
  p = trimStart(p, (c) => c === '/');
  while (p.startsWith('./')) p = p.slice(2);
  if (p.startsWith('**/')) p = p.slice(3);
  if (p === '' || p === '.' || p === '..' || /[/*?[\\]/.test(p)) fail();
  return p;
}

// ---------------------------------------------------------------------------------------
// The import itself

const INSTRUCTIONS = [
  'FROM', 'RUN', 'CMD', 'LABEL', 'MAINTAINER', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER',
  'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL',
];

const METADATA: Readonly<Record<string, string>> = {
  CMD: 'sets the default command of the image',
  ENTRYPOINT: 'sets the entrypoint of the image',
  LABEL: 'sets image labels',
  MAINTAINER: 'sets the image author',
  EXPOSE: 'declares the ports of the image',
  VOLUME: 'declares a volume of the image',
  STOPSIGNAL: 'sets the stop signal of the image',
  HEALTHCHECK: 'sets the health check of the image',
  ONBUILD: 'registers instructions for images built from this one',
};

/** Set by BuildKit from the platforms it builds on and for, which a spec cannot know. */
const PLATFORM_ARGS = new Set([
  'TARGETPLATFORM', 'TARGETOS', 'TARGETARCH', 'TARGETVARIANT', 'BUILDPLATFORM', 'BUILDOS', 'BUILDARCH', 'BUILDVARIANT',
]);
/** BuildKit reads these ARGs itself and keeps them out of the environment. */
const NON_ENV_ARGS = new Set(['BUILDKIT_SBOM_SCAN_CONTEXT', 'BUILDKIT_SBOM_SCAN_STAGE']);
/** Cairn builds for the platform it runs on, which is what these select. */
const NATIVE_PLATFORMS = new Set(['$BUILDPLATFORM', '${BUILDPLATFORM}', '$TARGETPLATFORM', '${TARGETPLATFORM}']);
const STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;
const DOCKER_SHELL = ['/bin/sh', '-c'];
/** A spec's default shell (SPEC-LANGUAGE.md): RUN needs Docker's, so it is set when they differ. */
const SPEC_SHELL = ['/usr/bin/env', 'bash', '-c'];
/** Docker's RUN reaches the network unless told otherwise; a spec's only with (network host). */
const DOCKER_DEFAULT_NETWORK = ['host'];

interface Stage {
  readonly name: string;
  readonly image: string;
  readonly ops: Op[];
  /** Values a later instruction may expand: this stage's ARGs with a value, and ENVs. */
  readonly vars: Map<string, string>;
  /** ARGs declared without any value: unset, unless a later ARG or ENV sets them. */
  readonly valueless: Set<string>;
  dockerShell: readonly string[];
  specShell: readonly string[];
  user: User;
}

class Importer {
  private readonly stages: Stage[] = [];
  private readonly globalArgs = new Map<string, string>();
  private comments: string[] = [];

  constructor(
    private readonly escape: string,
    private readonly ignored: readonly string[],
    private readonly buildArgs: Readonly<Record<string, string>>,
  ) {}

  add(entry: Entry): void {
    if (entry.kind === 'comment') {
      if (entry.text !== '') this.comments.push(entry.text);
      return;
    }
    const ins = parseInstruction(entry.logical);
    if (ins !== undefined) this.instruction(ins);
  }

  finish(): Spec {
    const main = this.stages.at(-1);
    if (main === undefined) throw new SpecError('the Dockerfile has no FROM instruction, so there is no base image', { line: 1, column: 1 });
    this.flushComments(main);
    const childBuilds = this.stages.slice(0, -1).map((s) => ({ name: s.name, spec: { childBuilds: [], from: s.image, ops: s.ops } }));
    return { childBuilds, from: main.image, ops: main.ops };
  }

  private instruction(ins: Instruction): void {
    const kw = ins.keyword;
    if (!INSTRUCTIONS.includes(kw)) {
      const hint = closest(kw, INSTRUCTIONS);
      throw new SpecError(`unknown instruction "${kw}"${hint ? `; did you mean "${hint}"?` : ''}`, ins.pos);
    }
    const metadata = METADATA[kw];
    if (metadata !== undefined) {
      throw new SpecError(`${kw} ${metadata}: image metadata, which a Cairn spec does not record; remove it, or keep it only in a Dockerfile that is not imported`, ins.pos);
    }
    if (kw === 'FROM') return this.from(ins);
    const stage = this.stages.at(-1);
    if (kw === 'ARG' && stage === undefined) return this.globalArg(ins);
    if (stage === undefined) throw new SpecError(`${kw} comes before the first FROM; only ARG may`, ins.pos);
    this.flushComments(stage);
    this.dispatch(ins, stage);
  }

  private dispatch(ins: Instruction, stage: Stage): void {
    switch (ins.keyword) {
      case 'RUN': return this.run(ins, stage);
      case 'COPY':
      case 'ADD': return this.copy(ins, stage);
      case 'ENV': return this.env(ins, stage);
      case 'ARG': return this.stageArg(ins, stage);
      case 'WORKDIR': return this.workdir(ins, stage);
      case 'USER': return this.user(ins, stage);
      case 'SHELL': return this.shell(ins, stage);
    }
  }

  private flushComments(stage: Stage): void {
    for (const text of this.comments) stage.ops.push({ op: 'comment', text });
    this.comments = [];
  }

  private fail(ins: Instruction, reason: string): never {
    throw new SpecError(`${ins.keyword}: ${reason}`, ins.pos);
  }

  private needArgs(ins: Instruction, missing: string): void {
    if (ins.args === '') this.fail(ins, missing);
  }

  // ----- variables

  private expand(word: string, stage: Stage | undefined, ins: Instruction): string {
    const lookup: Lookup = stage === undefined ? (n) => this.globalValue(n, ins) : (n) => this.stageValue(stage, n, ins);
    return new WordExpander(word, this.escape, lookup, (reason) => this.fail(ins, `cannot expand "${word}": ${reason}`)).expand();
  }

  /** Before the first FROM there is no image, so an undeclared variable is simply unset. */
  private globalValue(name: string, ins: Instruction): string | undefined {
    if (this.globalArgs.has(name)) return this.globalArgs.get(name);
    if (Object.hasOwn(this.buildArgs, name) && PLATFORM_ARGS.has(name)) return this.buildArgs[name];
    if (PLATFORM_ARGS.has(name)) this.platformArg(name, ins);
    return undefined;
  }

  private stageValue(stage: Stage, name: string, ins: Instruction): string | undefined {
    if (stage.vars.has(name)) return stage.vars.get(name);
    // A declared ARG names a build argument, not an image variable: without a value it is unset.
    if (isSpecialParameter(name) || stage.valueless.has(name)) return undefined;
    this.fail(ins, `$${name} is set by no ARG or ENV before it in this stage; Docker would take it from the base image's environment, which the import cannot see, so set it in the Dockerfile`);
  }

  private platformArg(name: string, ins: Instruction): never {
    this.fail(ins, `${name} is set by BuildKit from the build platform, which a spec cannot know; pass it in buildArgs or give it a default`);
  }

  // ----- FROM and ARG

  private from(ins: Instruction): void {
    const flags = parseFlags(ins, ['platform']);
    const platform = flags.get('platform')?.[0];
    if (platform !== undefined && !NATIVE_PLATFORMS.has(platform.value)) {
      throw new SpecError(`FROM --platform=${platform.value} selects an image platform, which a spec cannot record; Cairn builds for its own platform`, platform.pos);
    }
    const args = splitTokens(ins.args);
    if (args.length !== 1 && !(args.length === 3 && args[1]!.toLowerCase() === 'as')) {
      this.fail(ins, 'expected FROM IMAGE or FROM IMAGE AS NAME');
    }
    const image = this.expand(args[0]!, undefined, ins);
    if (image === '') this.fail(ins, `the image "${args[0]}" expands to nothing`);
    if (this.stages.some((s) => s.name === image.toLowerCase())) {
      this.fail(ins, `"${image}" is an earlier stage, and a spec cannot build on a stage: a (build ...) always starts from an image. Start this stage from that stage's image and COPY --from it`);
    }
    // Comments go before the instruction they precede, so into the new stage, except
    // where the current one holds nothing else: there they were written inside it.
    const current = this.stages.at(-1);
    if (current?.ops.every((o) => o.op === 'comment')) this.flushComments(current);
    const stage = this.newStage(this.stageName(args[2], ins), image);
    this.stages.push(stage);
    this.flushComments(stage);
  }

  private stageName(written: string | undefined, ins: Instruction): string {
    const index = String(this.stages.length);
    if (written === undefined) return index;
    const name = written.toLowerCase();
    // The exporter names unnamed stages by their index, so accept that back.
    if (!STAGE_NAME.test(name) && name !== index) this.fail(ins, `"${written}" is not a stage name: it must start with a letter and hold only letters, digits, "-", "_" and "."`);
    if (this.stages.some((s) => s.name === name)) this.fail(ins, `a stage named "${name}" is already defined`);
    return name;
  }

  private newStage(name: string, image: string): Stage {
    return { name, image, ops: [], vars: new Map(), valueless: new Set(), dockerShell: DOCKER_SHELL, specShell: SPEC_SHELL, user: ROOT_UNIX };
  }

  private argPairs(ins: Instruction): [string, string | undefined][] {
    parseFlags(ins, []);
    const words = parseWords(ins.args, this.escape);
    if (words.length === 0) this.fail(ins, 'a NAME[=DEFAULT] is missing');
    return words.map((w) => {
      const eq = w.indexOf('=');
      const pair: [string, string | undefined] = eq < 0 ? [w, undefined] : [w.slice(0, eq), w.slice(eq + 1)];
      if (pair[0] === '') this.fail(ins, `"${w}" has no name`);
      return pair;
    });
  }

  private globalArg(ins: Instruction): void {
    for (const [name, fallback] of this.argPairs(ins)) {
      if (Object.hasOwn(this.buildArgs, name)) this.globalArgs.set(name, this.buildArgs[name]!);
      else if (fallback !== undefined) this.globalArgs.set(name, this.expand(fallback, undefined, ins));
      // BuildKit leaves a platform ARG without a default to the platform; others are empty.
      else if (!PLATFORM_ARGS.has(name)) this.globalArgs.set(name, '');
    }
  }

  /** BuildKit adds an ARG's value to the environment of the stage, as `(env NAME VALUE)` does. */
  private stageArg(ins: Instruction, stage: Stage): void {
    for (const [name, fallback] of this.argPairs(ins)) {
      const value = this.argValue(name, fallback, stage, ins);
      if (value === undefined) {
        stage.valueless.add(name);
        continue;
      }
      if (!NON_ENV_ARGS.has(name)) stage.ops.push({ op: 'env', name, value });
      stage.vars.set(name, value);
    }
  }

  private argValue(name: string, fallback: string | undefined, stage: Stage, ins: Instruction): string | undefined {
    if (Object.hasOwn(this.buildArgs, name)) return this.buildArgs[name];
    if (fallback !== undefined) return this.expand(fallback, stage, ins);
    if (this.globalArgs.has(name)) return this.globalArgs.get(name);
    if (PLATFORM_ARGS.has(name)) this.platformArg(name, ins);
    return undefined;
  }

  // ----- ENV, WORKDIR, USER, SHELL

  private env(ins: Instruction, stage: Stage): void {
    parseFlags(ins, []);
    // Every pair expands with the variables as they were before this ENV, as in Docker.
    const pairs = this.envPairs(ins).map(([k, v]) => [this.expand(k, stage, ins), this.expand(v, stage, ins)] as const);
    for (const [name, value] of pairs) {
      if (name === '') this.fail(ins, 'a variable name is empty');
      stage.ops.push({ op: 'env', name, value });
      stage.vars.set(name, value);
    }
  }

  /** `ENV NAME VALUE...` (the rest of the line) or `ENV NAME=VALUE ...`. */
  private envPairs(ins: Instruction): [string, string][] {
    const words = parseWords(ins.args, this.escape);
    if (words.length === 0) this.fail(ins, 'a NAME=VALUE is missing');
    if (!words[0]!.includes('=')) {
      let k = 0;
      while (k < ins.args.length && !isTokenSpace(ins.args[k])) k++;
      if (k === ins.args.length) this.fail(ins, `"${ins.args}" has no value; write ENV NAME=VALUE`);
      return [[ins.args.slice(0, k), trimStart(ins.args.slice(k), isTokenSpace)]];
    }
    return words.map((w) => {
      const eq = w.indexOf('=');
      if (eq < 0) this.fail(ins, `"${w}" has no "="; write NAME=VALUE`);
      return [w.slice(0, eq), w.slice(eq + 1)];
    });
  }

  private workdir(ins: Instruction, stage: Stage): void {
    parseFlags(ins, []);
    this.needArgs(ins, 'the directory is missing');
    const path = this.expand(ins.args, stage, ins);
    if (path === '') this.fail(ins, `"${ins.args}" expands to nothing`);
    stage.ops.push({ op: 'workdir', path });
  }

  private user(ins: Instruction, stage: Stage): void {
    parseFlags(ins, []);
    this.needArgs(ins, 'the user is missing');
    stage.user = parseOwner(this.expand(ins.args, stage, ins), 'USER', ins.pos);
    stage.ops.push({ op: 'user', user: stage.user });
  }

  private shell(ins: Instruction, stage: Stage): void {
    parseFlags(ins, []);
    const json = readJsonArray(ins.args);
    if (json === undefined) this.fail(ins, 'the shell must be a JSON array, like SHELL ["/bin/bash", "-c"]');
    const args = jsonStrings(json, ins);
    if (args.length === 0) this.fail(ins, 'the JSON array names no shell');
    stage.dockerShell = args;
    stage.specShell = args;
    stage.ops.push({ op: 'shell', args });
  }

  // ----- COPY and ADD

  private copy(ins: Instruction, stage: Stage): void {
    const flags = parseFlags(ins, ['from', 'chown', 'exclude']);
    this.needArgs(ins, 'the sources and destination are missing');
    rejectHeredoc(ins);
    const json = readJsonArray(ins.args);
    const words = (json === undefined ? splitTokens(ins.args) : jsonStrings(json, ins)).map((w) => this.expand(w, stage, ins));
    if (words.length < 2) this.fail(ins, 'at least one source and a destination are needed');
    const src = words.slice(0, -1);
    const dst = directoryDestination(words.at(-1)!, ins);
    src.forEach((s) => checkSource(s, ins));
    checkDestination(src, dst, ins);
    const from = copySource(flags.get('from')?.[0], this.stages, stage, ins);
    const excludes = [...(from.kind === 'context' ? this.ignored : []), ...copyExcludes(flags.get('exclude') ?? [], ins)];
    const op: CopyOp = { op: 'copy', from, src, dst, exclude: [...new Set(excludes)] };
    const owner = this.copyOwner(flags.get('chown')?.[0], stage, ins);
    if (sameUser(owner, stage.user)) stage.ops.push(op);
    else stage.ops.push({ op: 'user', user: owner }, op, { op: 'user', user: stage.user });
  }

  /** Docker's COPY writes files as root unless --chown says otherwise, whatever USER says. */
  private copyOwner(chown: FlagValue | undefined, stage: Stage, ins: Instruction): User {
    if (chown === undefined) return ROOT_UNIX;
    return parseOwner(this.expand(chown.value, stage, ins), ins.keyword === 'ADD' ? 'ADD --chown' : 'COPY --chown', chown.pos);
  }

  // ----- RUN

  private run(ins: Instruction, stage: Stage): void {
    const flags = parseFlags(ins, ['mount', 'network']);
    this.needArgs(ins, 'the command is missing');
    rejectHeredoc(ins);
    const json = readJsonArray(ins.args);
    const shell = json === undefined ? this.shellForm(ins, stage) : execCommand(jsonStrings(json, ins), stage.dockerShell, ins);
    const cache: Mount[] = [];
    const secrets: Mount[] = [];
    for (const flag of flags.get('mount') ?? []) {
      const { kind, mount } = this.mount(flag, ins, stage);
      (kind === 'cache' ? cache : secrets).push(mount);
    }
    const network = this.network(flags.get('network')?.[0]);
    if (!sameArgs(stage.specShell, stage.dockerShell)) {
      stage.ops.push({ op: 'shell', args: [...stage.dockerShell] });
      stage.specShell = stage.dockerShell;
    }
    stage.ops.push({ op: 'run', cache, network, secrets, shell });
  }

  private shellForm(ins: Instruction, stage: Stage): string {
    const segments = ins.logical.segments(ins.argsStart, ins.argsStart + ins.args.length);
    // A newline can split a word like `&<<x`, which BuildKit would then read as a heredoc.
    const posix = this.escape === '\\' && isPosixShell(stage.dockerShell) && !ins.args.includes('<<');
    return shellCommand(segments, posix);
  }

  private network(flag: FlagValue | undefined): string[] {
    if (flag === undefined || flag.value === 'default' || flag.value === 'host') return [...DOCKER_DEFAULT_NETWORK];
    if (flag.value === 'none') return [];
    throw new SpecError(`RUN --network=${flag.value}: the network must be default, host or none`, flag.pos);
  }

  private mount(flag: FlagValue, ins: Instruction, stage: Stage): { kind: 'cache' | 'secret'; mount: Mount } {
    const fail = (reason: string): never => {
      throw new SpecError(`RUN --mount=${flag.value} ${reason}`, flag.pos);
    };
    const options = this.mountOptions(flag, ins, stage, fail);
    const type = (options.get('type') ?? 'bind').toLowerCase();
    options.delete('type');
    if (type === 'cache') return { kind: 'cache', mount: cacheMount(options, stage.user, fail) };
    if (type === 'secret') return { kind: 'secret', mount: secretMount(options, stage.user, fail) };
    if (type === 'bind' || type === 'tmpfs' || type === 'ssh') {
      return fail(`cannot be imported: a spec step mounts only caches and secrets, not ${type === 'bind' ? 'bind mounts (the default type)' : `${type} mounts`}`);
    }
    const hint = closest(type, ['cache', 'secret', 'bind', 'tmpfs', 'ssh']);
    return fail(`has an unknown mount type "${type}"${hint ? `; did you mean "${hint}"?` : ''}`);
  }

  private mountOptions(flag: FlagValue, ins: Instruction, stage: Stage, fail: (reason: string) => never): MountOptions {
    const options: MountOptions = new Map();
    for (const field of csvFields(flag.value, fail)) {
      const eq = field.indexOf('=');
      const written = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
      const key = Object.hasOwn(MOUNT_KEYS, written) ? MOUNT_KEYS[written]! : undefined;
      if (key === undefined) {
        const hint = closest(written, Object.keys(MOUNT_KEYS));
        return fail(`has an unknown option "${written}"${hint ? `; did you mean "${hint}"?` : ''}`);
      }
      if (eq < 0 && !['readonly', 'readwrite', 'required'].includes(key)) fail(`needs a value for "${written}" (${written}=VALUE)`);
      options.set(key, eq < 0 ? 'true' : this.expand(field.slice(eq + 1), stage, ins));
    }
    return options;
  }
}

function rejectMountOptions(options: MountOptions, keys: readonly string[], type: string, fail: (reason: string) => never): void {
  for (const key of keys) if (options.has(key)) fail(`cannot be imported: "${key}" has no spec equivalent for a ${type} mount`);
}

/**
 * A spec mount is owned by the step's user, and `dockerfileOfSpec` writes that uid back;
 * Docker's is owned by `uid` (default 0). They must agree for the import to be faithful.
 */
function checkOwner(options: MountOptions, user: User, fail: (reason: string) => never): void {
  const uid = options.get('uid') ?? '0';
  if (!/^\d{1,10}$/.test(uid)) fail(`has uid "${uid}", which is not a number`);
  const stepUid = user.kind === 'unix' ? user.uid : -1;
  if (Number(uid) !== stepUid) {
    fail(`is owned by uid ${uid}, but a spec mount belongs to the step's user (uid ${stepUid}); add uid=${stepUid} to keep the same meaning`);
  }
}

/** Options a spec keeps for BuildKit as written (the exporter prints them back). */
function buildkitOptions(options: MountOptions, keys: readonly string[], fail: (reason: string) => never): [string, string][] {
  const out: [string, string][] = [];
  for (const [key, value] of options) {
    if (!keys.includes(key)) continue;
    if (key === 'gid' && !/^\d{1,10}$/.test(value)) fail(`has gid "${value}", which is not a number`);
    if (key === 'mode' && !/^[0-7]{1,11}$/.test(value)) fail(`has mode "${value}", which is not an octal number`);
    out.push([key, value]);
  }
  return out;
}

function cacheMount(options: MountOptions, user: User, fail: (reason: string) => never): Mount {
  rejectMountOptions(options, ['from', 'source', 'size', 'required', 'env'], 'cache', fail);
  if (parseBool(options.get('readonly') ?? 'false') !== false) fail('cannot be imported: a spec cache is always writable');
  if (parseBool(options.get('readwrite') ?? 'true') !== true) fail('cannot be imported: a spec cache is always writable');
  const target = options.get('target');
  if (target === undefined || !isAbsolute(target)) fail('needs an absolute target=PATH');
  const sharing = options.get('sharing')?.toLowerCase();
  if (sharing !== undefined && !['shared', 'private', 'locked'].includes(sharing)) fail(`has sharing "${sharing}"; it must be shared, private or locked`);
  if (sharing !== undefined) options.set('sharing', sharing);
  checkOwner(options, user, fail);
  // BuildKit names a cache after its target when it has no id.
  return { id: options.get('id') || target!, target: target!, buildkitOptions: buildkitOptions(options, ['sharing', 'mode', 'gid'], fail) };
}

function secretMount(options: MountOptions, user: User, fail: (reason: string) => never): Mount {
  rejectMountOptions(options, ['from', 'sharing', 'size', 'env', 'readwrite'], 'secret', fail);
  const required = options.get('required');
  if (required !== undefined) {
    const value = parseBool(required);
    if (value === undefined) fail(`has required "${required}", which is not true or false`);
    options.set('required', String(value));
  }
  if (options.has('id') && options.has('source')) fail('gives both id and source, which name the same thing');
  const written = options.get('target');
  const id = options.get('id') || options.get('source') || (written ? basename(written) : '');
  if (id === '') fail('needs id=ID or target=PATH');
  if (written !== undefined && !isAbsolute(written)) fail('needs an absolute target=PATH');
  checkOwner(options, user, fail);
  const target = written ?? `/run/secrets/${basename(id)}`;
  return { id, target, buildkitOptions: buildkitOptions(options, ['required', 'mode', 'gid'], fail) };
}

// ----- COPY and ADD helpers

/** `.` (or `x/.`) always names a directory to Docker; a spec needs the trailing `/` to say so. */
function directoryDestination(dst: string, ins: Instruction): string {
  if (dst === '') throw new SpecError(`${ins.keyword}: the destination is empty`, ins.pos);
  return dst === '.' || dst === '..' || dst.endsWith('/.') || dst.endsWith('/..') ? `${dst}/` : dst;
}

function checkDestination(src: readonly string[], dst: string, ins: Instruction): void {
  if (src.length > 1 && !dst.endsWith('/')) {
    throw new SpecError(`${ins.keyword} with several sources needs a destination directory ending in "/", not "${dst}"`, ins.pos);
  }
  const dir = src.find(namesDirectory);
  if (dst.endsWith('/') && dir !== undefined) {
    const fix = src.length === 1 ? `write the destination without the trailing "/" (${ins.keyword} ${dir} ${trimEnd(dst, (c) => c === '/') || '/'})` : 'copy each directory in its own instruction, to a destination without a trailing "/"';
    throw new SpecError(`${ins.keyword} ${dir} ${dst}: Docker copies the contents of ${dir} into ${dst}, while a spec copies it into ${dst} by name; ${fix}`, ins.pos);
  }
}

function copySource(flag: FlagValue | undefined, stages: readonly Stage[], current: Stage, ins: Instruction): CopySource {
  if (flag === undefined) return { kind: 'context' };
  const fail = (reason: string): never => {
    throw new SpecError(`${ins.keyword} --from=${flag.value} ${reason}`, flag.pos);
  };
  if (flag.value.includes('$')) fail('uses a variable, which Docker does not expand in --from');
  const earlier = stages.slice(0, stages.indexOf(current));
  const stage = /^\d+$/.test(flag.value) ? stages[Number(flag.value)] : stages.find((s) => s.name === flag.value.toLowerCase());
  if (stage === current) fail('names the stage it is in');
  if (stage !== undefined && earlier.includes(stage)) return { kind: 'build', name: stage.name };
  if (/^\d+$/.test(flag.value)) fail(`names no earlier stage (there are ${earlier.length})`);
  return fail(`names no earlier stage, so Docker would copy from the image "${flag.value}"; a spec copies only from the context or a stage, so add "FROM ${flag.value} AS some-name" before this stage and copy --from=some-name`);
}

function copyExcludes(flags: readonly FlagValue[], ins: Instruction): string[] {
  return flags.map((f) => excludeName(f.value, () => {
    throw new SpecError(`${ins.keyword} --exclude=${f.value} cannot be imported: a spec excludes a plain file or directory name at any depth`, f.pos);
  }));
}
