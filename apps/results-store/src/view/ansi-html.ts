/**
 * Terminal output to HTML, one line at a time, the way a terminal would show it: SGR
 * escape sequences (`ESC [ ... m`) become spans with classes (`fg1`, `bg12`, `b`, `i`,
 * `u`), a carriage return moves back to the start of the line so that what follows
 * overwrites it (a progress bar ends as its last state, not as a hundred lines), a
 * backspace moves back one cell, `ESC [ K` erases to the end of the line (`2K` all of
 * it). Other control sequences (cursor moves, titles) are dropped and everything else is
 * escaped text. The colours set on one line carry on to the next, as in a terminal.
 */
import { escapeHtml } from './html.js';

interface Style {
  fg?: string;
  bg?: string;
  bold?: boolean;
  italic?: boolean;
  underline?: boolean;
}

/** One character on the screen and the classes it was written with. */
interface Cell {
  ch: string;
  classes: string;
}

/** An escape sequence, or one control character, or a run of plain text. */
const TOKEN = /\x1b\[([0-9;?]*)([@-~])|\x1b[^[]?|[\x00-\x1f\x7f]|[^\x00-\x1f\x7f]+/gu;

export class AnsiRenderer {
  private style: Style = {};

  /** HTML for one line of output, without its line end. */
  line(text: string): string {
    const cells: Cell[] = [];
    let cursor = 0;
    let classes = this.classes();
    for (const m of text.matchAll(TOKEN)) {
      const token = m[0];
      if (m[2] !== undefined) {
        if (m[2] === 'm') {
          this.apply(m[1]!);
          classes = this.classes();
        } else if (m[2] === 'K') {
          // 0 (or none): from the cursor to the end; 1: from the start to the cursor; 2: the whole line.
          const mode = m[1] === '' ? 0 : Number(m[1]);
          if (mode === 0) cells.length = Math.min(cells.length, cursor);
          else if (mode === 1) for (let i = 0; i <= cursor && i < cells.length; i++) cells[i] = { ch: ' ', classes: '' };
          else if (mode === 2) cells.length = 0;
        }
      } else if (token === '\r') cursor = 0;
      else if (token === '\b') cursor = Math.max(0, cursor - 1);
      else if (token === '\t') cursor = write(cells, cursor, ' '.repeat(8 - (cursor % 8)), classes);
      else if (token.charCodeAt(0) >= 0x20 && token !== '\x7f') cursor = write(cells, cursor, token, classes);
    }
    let out = '';
    for (let i = 0; i < cells.length;) {
      const cls = cells[i]!.classes;
      let run = '';
      for (; i < cells.length && cells[i]!.classes === cls; i++) run += cells[i]!.ch;
      out += cls ? `<span class="${cls}">${escapeHtml(run)}</span>` : escapeHtml(run);
    }
    return out;
  }

  private classes(): string {
    return [this.style.fg, this.style.bg, this.style.bold && 'b', this.style.italic && 'i', this.style.underline && 'u'].filter(Boolean).join(' ');
  }

  private apply(params: string): void {
    const codes = params === '' ? [0] : params.split(';').map((p) => Number(p) || 0);
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i]!;
      if (c === 0) this.style = {};
      else if (c === 1) this.style.bold = true;
      else if (c === 3) this.style.italic = true;
      else if (c === 4) this.style.underline = true;
      else if (c === 22) this.style.bold = false;
      else if (c === 23) this.style.italic = false;
      else if (c === 24) this.style.underline = false;
      else if (c >= 30 && c <= 37) this.style.fg = `fg${c - 30}`;
      else if (c >= 90 && c <= 97) this.style.fg = `fg${c - 90 + 8}`;
      else if (c === 39) delete this.style.fg;
      else if (c >= 40 && c <= 47) this.style.bg = `bg${c - 40}`;
      else if (c >= 100 && c <= 107) this.style.bg = `bg${c - 100 + 8}`;
      else if (c === 49) delete this.style.bg;
      else if ((c === 38 || c === 48) && codes[i + 1] === 5) {
        const cls = `${c === 38 ? 'fg' : 'bg'}${nearestBasic(codes[i + 2] ?? 0)}`;
        if (c === 38) this.style.fg = cls;
        else this.style.bg = cls;
        i += 2;
      } else if ((c === 38 || c === 48) && codes[i + 1] === 2) {
        const cls = `${c === 38 ? 'fg' : 'bg'}${nearestOf(codes[i + 2] ?? 0, codes[i + 3] ?? 0, codes[i + 4] ?? 0)}`;
        if (c === 38) this.style.fg = cls;
        else this.style.bg = cls;
        i += 4;
      }
    }
  }
}

/** Writes `text` over the cells from `cursor` on (a terminal overwrites, it does not insert); returns the new cursor. */
function write(cells: Cell[], cursor: number, text: string, classes: string): number {
  for (const ch of text) {
    while (cells.length < cursor) cells.push({ ch: ' ', classes: '' });
    cells[cursor++] = { ch, classes };
  }
  return cursor;
}

/**
 * The 16 basic colours as xterm draws them, to find the nearest of them for a colour of
 * the 256-colour palette or a 24-bit one: the page has classes (and a dark-mode palette)
 * for these 16 only.
 */
const BASIC: readonly (readonly [number, number, number])[] = [
  [0, 0, 0],
  [205, 0, 0],
  [0, 205, 0],
  [205, 205, 0],
  [0, 0, 238],
  [205, 0, 205],
  [0, 205, 205],
  [229, 229, 229],
  [127, 127, 127],
  [255, 0, 0],
  [0, 255, 0],
  [255, 255, 0],
  [92, 92, 255],
  [255, 0, 255],
  [0, 255, 255],
  [255, 255, 255],
];

/** Index 0-15 for colour `n` of the 256: itself below 16, else the nearest to its 6x6x6 cube cell or grey. */
export function nearestBasic(n: number): number {
  if (n < 16) return Math.max(0, n);
  if (n >= 232) {
    const grey = 8 + (Math.min(n, 255) - 232) * 10;
    return nearestOf(grey, grey, grey);
  }
  const level = (v: number) => (v === 0 ? 0 : 55 + v * 40);
  const k = n - 16;
  return nearestOf(level(Math.floor(k / 36)), level(Math.floor(k / 6) % 6), level(k % 6));
}

function nearestOf(r: number, g: number, b: number): number {
  let best = 0;
  let bestDistance = Infinity;
  BASIC.forEach(([br, bg, bb], i) => {
    const d = (r - br) ** 2 + (g - bg) ** 2 + (b - bb) ** 2;
    if (d < bestDistance) {
      bestDistance = d;
      best = i;
    }
  });
  return best;
}
