/** Argument forms: JSON arrays, BuildKit's words, heredoc markers. */
import { SpecError } from '../spec-error.js';
import { goTrim, isGoSpace } from './characters.js';
import type { Instruction } from './instructions.js';

interface JsonArray {
  readonly values: readonly unknown[];
  /** Text after the array: Docker ignores it silently, so the import rejects it. */
  readonly trailing: boolean;
}

/** The first JSON value of the text, if it is an array, as Go's json.Decoder reads it. */
export function readJsonArray(text: string): JsonArray | undefined {
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

export function jsonStrings(array: JsonArray, ins: Instruction): readonly string[] {
  if (!array.values.every((v): v is string => typeof v === 'string')) {
    throw new SpecError(`${ins.keyword} in JSON form takes an array of strings only`, ins.pos);
  }
  if (array.trailing) throw new SpecError(`${ins.keyword} has text after its JSON array, which Docker would ignore; remove it`, ins.pos);
  return array.values;
}

/** BuildKit's parseWords (ENV, ARG): words split at blanks, quotes and escapes kept. */
export function parseWords(rest: string, escape: string): string[] {
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

const HEREDOC = /^\d*<<(-?)([^<]+)$/;

/** A heredoc `<<EOF` or `<<-"EOF"` that an instruction's line opens, in order. */
export interface HeredocMarker {
  /** The terminator, unquoted. */
  readonly name: string;
  /** `<<-`: leading tabs are removed from each line of the body and from the terminator. */
  readonly chomp: boolean;
  /** `<<"EOF"` or `<<'EOF'`: BuildKit expands no variable in a COPY of the body. */
  readonly quoted: boolean;
}

export function heredocMarkers(text: string): HeredocMarker[] {
  if (!text.includes('<<')) return [];
  return rawShellWords(text).flatMap((w) => {
    const m = HEREDOC.exec(w);
    return m === null ? [] : [{ name: m[2]!.replace(/["'\\]/g, ''), chomp: m[1] === '-', quoted: /["'\\]/.test(m[2]!) }];
  });
}
