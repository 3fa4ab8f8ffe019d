/**
 * Logs as a terminal shows them (issue 15): bright backgrounds and 256 colours get
 * classes the stylesheet colours (in light and dark), a carriage return overwrites its
 * line instead of starting a new one, every line is numbered with a link to itself, and
 * every event says at which byte of the log it ends (the live stream's event IDs).
 */
import { describe, expect, it } from 'vitest';
import { AnsiRenderer, nearestBasic } from '../src/view/ansi-html.js';
import { assets } from '../src/view/assets.js';
import { LogSectioner, type LogEvent } from '../src/view/log-sections.js';
import { renderLog } from '../src/view/log-view.js';

/** The text of each numbered line of some log HTML, markup removed. */
function lines(html: string): string[] {
  return [...html.matchAll(/<span class="l" id="L\d+">(.*?)<\/span>(?=<span class="l"|<\/pre>|<\/summary>| <span class="hit">|$)/g)].map((m) =>
    m[1]!.replace(/<[^>]*>/g, '').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&amp;/g, '&'),
  );
}

describe('ANSI to HTML', () => {
  it('keeps colours as classes from line to line, escapes the text, drops other controls', () => {
    const r = new AnsiRenderer();
    expect(r.line('\x1b[1;31mred <b>')).toBe('<span class="fg1 b">red &lt;b&gt;</span>');
    expect(r.line(' still red\x1b[0m plain\x07')).toBe('<span class="fg1 b"> still red</span> plain');
  });

  it('gives bright backgrounds (100-107) classes the stylesheet colours', () => {
    expect(new AnsiRenderer().line('\x1b[101mB\x1b[107mW')).toBe('<span class="bg9">B</span><span class="bg15">W</span>');
    for (let i = 0; i < 16; i++) expect(assets.css.body).toContain(`.bg${i}{background:var(--bg${i})}`);
  });

  it('maps 256 colours to the nearest basic colour: the cube and the greys, not all grey', () => {
    expect(nearestBasic(196)).toBe(9); // 255,0,0
    expect(nearestBasic(46)).toBe(10); // 0,255,0
    expect(nearestBasic(21)).toBe(4); // 0,0,255: xterm's blue is 0,0,238, its bright blue 92,92,255
    expect(nearestBasic(226)).toBe(11); // 255,255,0
    expect(nearestBasic(88)).toBe(1); // 135,0,0
    expect(nearestBasic(232)).toBe(0); // grey 8
    expect(nearestBasic(244)).toBe(8); // grey 128
    expect(nearestBasic(255)).toBe(7); // grey 238
    expect(nearestBasic(3)).toBe(3);
    expect(new AnsiRenderer().line('\x1b[38;5;196mred\x1b[48;5;21mon blue')).toBe('<span class="fg9">red</span><span class="fg9 bg4">on blue</span>');
    expect(new AnsiRenderer().line('\x1b[38;2;0;200;0mgreen')).toBe('<span class="fg2">green</span>');
  });

  it('draws a carriage return as a terminal does: the last state of the line', () => {
    const bar = Array.from({ length: 11 }, (_, i) => `\r[${'#'.repeat(i).padEnd(10)}] ${i * 10}%`).join('') + '\n';
    const html = renderLog(`before\n${bar}after\n`).value;
    expect(lines(html)).toEqual(['before', '[##########] 100%', 'after']);
    // Overwriting keeps what the new text does not cover; erase-to-end (ESC [ K) clears it.
    expect(new AnsiRenderer().line('abcdef\rXY')).toBe('XYcdef');
    expect(new AnsiRenderer().line('abcdef\rXY\x1b[K')).toBe('XY');
    expect(new AnsiRenderer().line('\x1b[32mdone\x1b[0m\r\n'.replace('\r\n', ''))).toBe('<span class="fg2">done</span>');
    expect(lines(renderLog('windows\r\nline\r\n').value)).toEqual(['windows', 'line']);
  });

  it('follows the dark scheme, chosen by the system or by the switch', () => {
    const css = assets.css.body;
    const dark = /:root\[data-theme=dark\]\{([^}]*)\}/.exec(css)?.[1] ?? '';
    const system = /@media \(prefers-color-scheme:dark\)\{:root:not\(\[data-theme=light\]\)\{([^}]*)\}\}/.exec(css)?.[1] ?? '';
    expect(dark).toContain('--fg1:');
    expect(system).toBe(dark);
    const light = /:root\{([^}]*)\}/.exec(css)?.[1] ?? '';
    // Each of the 16 colours differs between the schemes (dark text on dark ground is unreadable).
    for (let i = 0; i < 16; i++) expect(new RegExp(`--fg${i}:([^;]+)`).exec(dark)?.[1]).not.toBe(new RegExp(`--fg${i}:([^;]+)`).exec(light)?.[1]);
  });
});

describe('the log sectioner', () => {
  it('folds steps, marks cache hits and numbers every line with a link to itself', () => {
    const html = renderLog('preamble\n[1/2] (from busybox)\n---> using "abc" from cache\n[2/2] /: (run (shell "make"))\nout\n').value;
    expect(html.match(/<details/g)).toHaveLength(2);
    expect(html).toContain('<details class="step cached"><summary><span class="l" id="L2"><a class="n" href="#L2" data-n="2" aria-hidden="true" tabindex="-1"></a>[1/2] (from busybox)</span> <span class="hit">cache hit</span>');
    expect(html).toContain('<details class="step" open><summary><span class="l" id="L4">');
    expect(lines(html)).toEqual(['preamble', '[1/2] (from busybox)', '---> using "abc" from cache', '[2/2] /: (run (shell "make"))', 'out']);
  });

  it('marks the failed step of a failed build', () => {
    const html = renderLog('(from busybox)\n/: (run (shell "false"))\nboom\n', { failed: true }).value;
    expect(html).toContain('<details class="step failing" id="failed-step" open>');
    expect(html.match(/failed-step/g)).toHaveLength(1);
  });

  it('ends every event at its byte in the log, the same whichever way the text is cut', () => {
    const text = 'héllo\n(from busybox)\n✓ one\r\ntwo\n/: (run (shell "x"))\nlast';
    const whole = new LogSectioner();
    const all: LogEvent[] = [...whole.feed(text), ...whole.flush()];
    expect(all.map((e) => e.end)).toEqual([7, 22, 35, 56, 60]);
    expect(all.at(-1)!.end).toBe(Buffer.byteLength(text));
    // Fed in pieces, events group lines by piece; the same pieces give the same events
    // (what a replay after a reconnect relies on), ending on growing line ends.
    const inPieces = () => {
      const pieces = new LogSectioner();
      const events: LogEvent[] = [];
      for (let i = 0; i < text.length; i += 5) events.push(...pieces.feed(text.slice(i, i + 5), 1000 + i));
      return [...events, ...pieces.flush()];
    };
    const cut = inPieces();
    expect(inPieces()).toEqual(cut);
    const ends = cut.map((e) => e.end);
    expect(ends).toEqual([...new Set(ends)].sort((a, b) => a - b));
    expect(ends.at(-1)).toBe(60);
    // Lines carry the time of the chunk they began in.
    expect(cut[0]!.t === 'text' && cut[0]!.html).toContain('data-ts="00:00:01.000"');
  });
});
