/**
 * Terminal colours to HTML: SGR escape sequences (`ESC [ ... m`) become spans with
 * classes (`fg1`, `bg4`, `b`, `i`, `u`), everything else is escaped text; other
 * control sequences (cursor moves, erase) are dropped. The renderer keeps its state
 * between chunks, so a colour set in one log chunk carries on in the next, and a
 * sequence cut in two by a chunk boundary is completed by the next chunk.
 */
import { escapeHtml } from './html.js';

interface Style {
  fg?: string;
  bg?: string;
  bold?: boolean;
  italic?: boolean;
  underline?: boolean;
}

const CSI = /\x1b\[([0-9;?]*)([@-~])/g;

export class AnsiRenderer {
  private style: Style = {};
  private pending = '';

  /** HTML for `text`; an incomplete escape sequence at its end waits for the next call. */
  render(text: string): string {
    let input = this.pending + text;
    this.pending = '';
    const cut = input.lastIndexOf('\x1b');
    if (cut >= 0 && !/^\x1b\[[0-9;?]*[@-~]/.test(input.slice(cut)) && input.length - cut < 32) {
      this.pending = input.slice(cut);
      input = input.slice(0, cut);
    }
    let out = '';
    let last = 0;
    for (const m of input.matchAll(CSI)) {
      out += this.span(input.slice(last, m.index));
      last = m.index + m[0].length;
      if (m[2] === 'm') this.apply(m[1]!);
    }
    out += this.span(input.slice(last));
    return out;
  }

  private span(text: string): string {
    // Lone escapes and other C0 controls (bar tab, newline) are not text.
    const clean = text.replace(/\x1b[^[]?|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, '').replace(/\r\n/g, '\n').replace(/\r/g, '\n');
    if (!clean) return '';
    const classes = [this.style.fg, this.style.bg, this.style.bold && 'b', this.style.italic && 'i', this.style.underline && 'u'].filter(Boolean);
    return classes.length ? `<span class="${classes.join(' ')}">${escapeHtml(clean)}</span>` : escapeHtml(clean);
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
        // 256-colour: the 16 basic ones map to classes, the rest to the nearest basic one.
        const n = codes[i + 2] ?? 0;
        const cls = `${c === 38 ? 'fg' : 'bg'}${n < 16 ? n : 7}`;
        if (c === 38) this.style.fg = cls;
        else this.style.bg = cls;
        i += 2;
      } else if ((c === 38 || c === 48) && codes[i + 1] === 2) i += 4;
    }
  }
}
