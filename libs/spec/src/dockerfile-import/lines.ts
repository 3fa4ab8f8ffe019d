/** Lines: parser directives, comments, continuations; a Dockerfile's text becomes its comments and logical instructions. */
import type { Position } from '../sexp.js';
import { SpecError } from '../spec-error.js';
import { heredocMarkers, type HeredocMarker } from './arguments.js';
import { goTrim, isBlank, isBlankOrNewline, isGoSpace, trimEnd, trimStart } from './characters.js';

interface Piece {
  readonly text: string;
  /** Offset of the piece in the joined logical line. */
  readonly start: number;
  readonly line: number;
  readonly column: number;
}

/** A heredoc's body as BuildKit keeps it: every line with its newline, tabs cut for `<<-`. */
export interface Heredoc extends HeredocMarker {
  readonly body: string;
}

/** One instruction as Docker reads it: its lines joined, each continuation removed. */
export class Logical {
  readonly text: string;

  constructor(
    readonly pieces: readonly Piece[],
    readonly heredocs: readonly Heredoc[] = [],
  ) {
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

export type Entry = { readonly kind: 'comment'; readonly text: string } | { readonly kind: 'instruction'; readonly logical: Logical };

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

export function physicalLines(text: string): string[] {
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

export function readEntries(text: string): { entries: Entry[]; directives: Directives } {
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
    const logical = new Logical(pieces);
    const heredocs: Heredoc[] = [];
    for (const marker of HEREDOC_INSTRUCTIONS.test(logical.text) ? heredocMarkers(logical.text) : []) {
      let body = '';
      for (;;) {
        if (++i >= lines.length)
          throw new SpecError(`the heredoc <<${marker.name} opened here has no line "${marker.name}" to end it`, {
            line: pieces[0]!.line,
            column: pieces[0]!.column,
          });
        const line = marker.chomp ? trimStart(lines[i]!, (c) => c === '\t') : lines[i]!;
        if (line === marker.name) break;
        body += `${line}\n`;
      }
      heredocs.push({ ...marker, body });
    }
    entries.push({ kind: 'instruction', logical: heredocs.length === 0 ? logical : new Logical(pieces, heredocs) });
  }
  return { entries, directives };
}

/** BuildKit reads heredocs after these instructions only. */
const HEREDOC_INSTRUCTIONS = /^[\t\n\v\f\r ]*(run|copy|add)[\t\n\v\f\r ]/i;
