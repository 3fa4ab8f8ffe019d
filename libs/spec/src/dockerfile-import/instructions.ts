/** Instructions and their flags, read as BuildKit reads them; a flag a spec cannot express is a SpecError. */
import { closest } from '../did-you-mean.js';
import type { Position } from '../sexp.js';
import { SpecError } from '../spec-error.js';
import { isGoSpace, isTokenSpace } from './characters.js';
import type { Logical } from './lines.js';

export const INSTRUCTIONS = [
  'FROM',
  'RUN',
  'CMD',
  'LABEL',
  'MAINTAINER',
  'EXPOSE',
  'ENV',
  'ADD',
  'COPY',
  'ENTRYPOINT',
  'VOLUME',
  'USER',
  'WORKDIR',
  'ARG',
  'ONBUILD',
  'STOPSIGNAL',
  'HEALTHCHECK',
  'SHELL',
];

interface RawFlag {
  readonly word: string;
  readonly start: number;
}

export interface Instruction {
  /** A known instruction in upper case, as messages name it; an unknown one as written. */
  readonly keyword: string;
  readonly pos: Position;
  readonly logical: Logical;
  readonly rawFlags: readonly RawFlag[];
  /** The arguments after the flags, trimmed. */
  readonly args: string;
  readonly argsStart: number;
}

export function parseInstruction(logical: Logical): Instruction | undefined {
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

export interface FlagValue {
  readonly value: string;
  readonly pos: Position;
}

/** Every flag BuildKit knows per instruction; those a spec cannot express are rejected later. */
const FLAGS: Readonly<Record<string, Readonly<Record<string, FlagKind>>>> = {
  FROM: { platform: 'string' },
  RUN: { mount: 'strings', network: 'string', security: 'string', device: 'strings' },
  COPY: { from: 'string', chown: 'string', chmod: 'string', link: 'bool', parents: 'bool', exclude: 'strings' },
  ADD: {
    chown: 'string',
    chmod: 'string',
    link: 'bool',
    'keep-git-dir': 'bool',
    checksum: 'string',
    unpack: 'bool',
    exclude: 'strings',
  },
};

const UNSUPPORTED_FLAGS: Readonly<Record<string, string>> = {
  security: 'runs the step with extra privileges, which a spec cannot grant',
  device: 'gives the step a device, which a spec cannot grant',
  parents: 'keeps the parent directories of each source, which a spec copy cannot do',
  'keep-git-dir': 'fetches a Git repository, which a spec cannot do',
  checksum: 'verifies a download, which a spec cannot do',
  unpack: 'controls archive extraction, which a spec cannot do',
};

export function parseFlags(ins: Instruction, supported: readonly string[]): Map<string, FlagValue[]> {
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
export function parseBool(value: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}
