/**
 * Logs as a terminal shows them (issue 15): bright backgrounds and 256 colours get
 * classes the stylesheet colours (in light and dark), a carriage return overwrites its
 * line instead of starting a new one, every line is numbered with a link to itself, and
 * every event says where in the log it ends (the live stream's event IDs). Steps fold
 * by the boundaries the stream carries (issue 12), never by what the text looks like,
 * and a stored log keeps its chunks' times and its steps beside it.
 */
import { describe, expect, it } from 'vitest';
import { AnsiRenderer, nearestBasic } from '../src/view/ansi-html.js';
import { assets } from '../src/view/assets.js';
import type { LogStep } from '@cairn/contracts';
import { decodeLogIndex, LogIndexer, replayLog, type LogIndex } from '../src/log-index.js';
import { LogSectioner, type LogEvent, type LogPiece } from '../src/view/log-sections.js';
import { renderLog } from '../src/view/log-view.js';
import { stepFinished, stepStarted } from '../../../test/support/results-store.js';

/** The text of each numbered line of some log HTML, markup removed. */
function lines(html: string): string[] {
  return [...html.matchAll(/<span class="l" id="L\d+">(.*?)<\/span>(?=<span class="l"|<\/pre>|<\/summary>| <span class="hit">|$)/g)].map((m) =>
    m[1]!
      .replace(/<[^>]*>/g, '')
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&quot;/g, '"')
      .replace(/&amp;/g, '&'),
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

/** Pieces as the stream carries them: text, and step boundaries between it. */
const piecesOf = (parts: readonly (string | LogStep)[]): LogPiece[] => parts.map((p) => (typeof p === 'string' ? { text: p } : { text: '', step: p }));

/** A log stored from `parts`, the n-th written at 1 s + n ms: its text and index. */
function stored(parts: readonly (string | LogStep)[]): { text: string; index: LogIndex } {
  const indexer = new LogIndexer();
  const pieces = piecesOf(parts);
  pieces.forEach((piece, n) => indexer.add(piece, 1000 + n));
  const text = pieces.map((p) => p.text).join('');
  return { text, index: decodeLogIndex(indexer.encode(), Buffer.byteLength(text), 'the test log') };
}

describe('the log sectioner', () => {
  it('folds steps at the boundaries in the stream, marks cache hits and durations, numbers every line', () => {
    const { text, index } = stored([
      'preamble\n',
      stepStarted('[1/2] (from busybox)'),
      '[1/2] (from busybox)\n---> using "abc" from cache\n',
      stepFinished(true),
      stepStarted('[2/2] /: (run (shell "make"))'),
      '[2/2] /: (run (shell "make"))\nout\n',
    ]);
    const html = renderLog(text, { index }).value;
    expect(html.match(/<details/g)).toHaveLength(2);
    expect(html).toContain(
      '<details class="step cached"><summary><span class="l" id="L2"><a class="n" href="#L2" data-n="2" data-ts="00:00:01.002" aria-hidden="true" tabindex="-1"></a>[1/2] (from busybox)</span> <span class="hit">cache hit</span> <span class="took">1.50 s</span></summary>',
    );
    expect(html).toContain('<details class="step" open><summary><span class="l" id="L4">');
    expect(lines(html)).toEqual(['preamble', '[1/2] (from busybox)', '---> using "abc" from cache', '[2/2] /: (run (shell "make"))', 'out']);
  });

  it('takes output that looks like a heading for output: only a boundary starts a step', () => {
    const text = '/: (run (shell "make"))\n(from busybox)\n---> using "abc" from cache\n';
    const html = renderLog(text).value;
    expect(html).not.toContain('<details');
    expect(lines(html)).toEqual(['/: (run (shell "make"))', '(from busybox)', '---> using "abc" from cache']);
    // Nor inside a step: the output stays in it.
    const inStep = stored([stepStarted('(from busybox)'), '(from busybox)\n', `[2/2] /: (run (shell "fake"))\n`]);
    expect(renderLog(inStep.text, { index: inStep.index }).value.match(/<details/g)).toHaveLength(1);
  });

  it('marks the step of the child build that finished, not the newest step', () => {
    const { text, index } = stored([
      stepStarted('(from alpine)', 'a'),
      '(from alpine)\n',
      stepStarted('(from busybox)', 'b'),
      '(from busybox)\n',
      stepFinished(true, 'a'.repeat(64), 'a'),
      stepFinished(false, 'b'.repeat(64), 'b', 20),
    ]);
    const html = renderLog(text, { index }).value;
    expect(html).toContain('<details class="step cached"><summary><span class="l" id="L1">');
    expect(html).toMatch(/<details class="step" open><summary><span class="l" id="L2">.*<span class="took">20 ms<\/span><\/summary>/);
  });

  it('marks the failed step of a failed build', () => {
    const { text, index } = stored([
      stepStarted('(from busybox)'),
      '(from busybox)\n',
      stepFinished(true),
      stepStarted('/: (run (shell "false"))'),
      '/: (run (shell "false"))\nboom\n',
    ]);
    const html = renderLog(text, { failed: true, index }).value;
    expect(html).toContain('<details class="step failing" id="failed-step" open>');
    expect(html.match(/failed-step/g)).toHaveLength(1);
  });

  it('ends every event at its place in the log, bytes plus one per boundary, the same whichever way the text is cut', () => {
    const parts = [
      'héllo\n',
      stepStarted('(from busybox)'),
      '(from busybox)\n✓ one\r\ntwo\n',
      stepFinished(false),
      stepStarted('/: (run (shell "x"))'),
      '/: (run (shell "x"))\nlast',
    ];
    const whole = new LogSectioner();
    const all: LogEvent[] = [...piecesOf(parts).flatMap((p) => whole.feed(p)), ...whole.flush()];
    expect(all.map((e) => [e.t, e.end])).toEqual([
      ['text', 7],
      ['step', 23],
      ['text', 36],
      ['done', 37],
      ['step', 59],
      ['text', 63],
    ]);
    expect(all.at(-1)!.end).toBe(Buffer.byteLength(parts.filter((p) => typeof p === 'string').join('')) + 3);
    // Fed in smaller pieces, events group lines by piece; the same pieces give the same
    // events (what a replay after a reconnect relies on), ending at growing places.
    const inPieces = () => {
      const sectioner = new LogSectioner();
      const events: LogEvent[] = [];
      let at = 1000;
      for (const piece of piecesOf(parts)) {
        if (piece.step) events.push(...sectioner.feed(piece, at));
        for (let i = 0; i < piece.text.length; i += 5) events.push(...sectioner.feed({ text: piece.text.slice(i, i + 5) }, (at += 5)));
      }
      return [...events, ...sectioner.flush()];
    };
    const cut = inPieces();
    expect(inPieces()).toEqual(cut);
    const ends = cut.map((e) => e.end);
    expect(ends).toEqual([...new Set(ends)].sort((a, b) => a - b));
    expect(ends.at(-1)).toBe(63);
    // Lines carry the time of the piece they began in.
    expect(cut[0]!.t === 'text' && cut[0]!.html).toContain('data-ts="00:00:01.005"');
  });
});

describe("a stored log's index", () => {
  it("keeps each chunk's time compactly, so the stored page shows per-line times", () => {
    const t0 = Date.UTC(2026, 0, 2, 3, 4, 5, 6);
    const indexer = new LogIndexer();
    indexer.add({ text: 'one\ntwo\n' }, t0);
    indexer.add({ text: '', step: stepStarted('(from busybox)') }, t0 + 1000);
    indexer.add({ text: '(from busybox)\nthr' }, t0 + 2494);
    indexer.add({ text: 'ee\nfour\n' }, t0 + 3000);
    const json = indexer.encode();
    // Differences from the chunk before: a long log's times cost a few bytes a chunk.
    expect(JSON.parse(json)).toEqual({ v: 1, t: [0, t0, 8, 2494, 18, 506], s: [[8, stepStarted('(from busybox)')]] });
    const text = 'one\ntwo\n(from busybox)\nthree\nfour\n';
    const index = decodeLogIndex(json, Buffer.byteLength(text), 'build j-1');
    expect([...replayLog(text, index)]).toEqual([
      { piece: { text: 'one\ntwo\n' }, at: t0 },
      { piece: { text: '', step: stepStarted('(from busybox)') } },
      { piece: { text: '(from busybox)\nthr' }, at: t0 + 2494 },
      { piece: { text: 'ee\nfour\n' }, at: t0 + 3000 },
    ]);
    const html = renderLog(text, { index }).value;
    // A line's time is that of the chunk it began in.
    expect([...html.matchAll(/data-ts="([^"]+)"/g)].map((m) => m[1])).toEqual(['03:04:05.006', '03:04:05.006', '03:04:07.500', '03:04:07.500', '03:04:08.006']);
    expect(html.match(/<details/g)).toHaveLength(1);
    // Without an index (stored before it existed, or uploaded): numbered lines, no times.
    expect(renderLog(text).value).not.toContain('data-ts');
  });

  it('refuses an index that does not fit its log, saying which and why', () => {
    expect(() => decodeLogIndex('{"v":1,"t":[0,5,100,1],"s":[]}', 50, 'build j-1')).toThrow(
      "build j-1: the log index places something at byte 100, out of order or past the log's 50 bytes",
    );
    expect(() => decodeLogIndex('{"v":2}', 50, 'build j-1')).toThrow(/^build j-1: the log index is malformed/);
    expect(() => decodeLogIndex('nope', 50, 'build j-1')).toThrow(/^build j-1: the log index is not JSON/);
  });
});
