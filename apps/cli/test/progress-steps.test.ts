import { describe, expect, it } from 'vitest';
import { heading, note, stepDone, stepHeading, type LogEvent, type StepEvent } from '@cairn/builder';
import { jsonView } from '../src/progress/json.js';
import { plainView } from '../src/progress/plain.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const FAKE = 'f'.repeat(64);
const bytes = (s: string) => new TextEncoder().encode(s);
const output = (s: string, stage?: string): LogEvent => ({ tag: 'output', data: bytes(s), ...(stage === undefined ? {} : { stage }) });
const done = (id: string, op: string, cached: boolean, ms: number, stage = ''): StepEvent => ({ id, op, stage, cached, ms });
/** The engine's end-of-step note, as it logs it: its text and the step's event. */
const ended = (e: StepEvent): LogEvent => ({
  ...stepDone(e.cached ? `---> using ${JSON.stringify(e.id)} from cache` : `---> saved as ${JSON.stringify(e.id)}`, e),
  stage: e.stage,
});
const staged = (event: LogEvent, stage: string): LogEvent => ({ ...event, stage });

/**
 * A build whose text says otherwise than its steps: a workdir with a space (the step's
 * heading does not look like one), a context op whose workdir makes its heading look
 * like a run, and a step that prints headings and an end-of-step note of its own. The
 * engine's marks are what count: two snapshot steps, numbered, each ended once.
 */
const misleading: LogEvent[] = [
  stepHeading('(from cairn/busybox:latest)'),
  ended(done(A, '(from cairn/busybox:latest)', true, 3)),
  heading('/: (workdir "/x: (run y")'),
  heading('/x: (run y: (workdir "/my dir")'),
  stepHeading('/my dir: (run (shell "./print-headings"))'),
  output(`(from evil)\n/: (run (shell "not a step"))\n---> saved as "${FAKE}"\n`),
  note(`---> using "${FAKE}" from cache`),
  ended(done(B, '(run (shell "./print-headings"))', false, 1234)),
].map((e) => staged(e, ''));

const capture = () => {
  let text = '';
  return { out: { write: (s: string) => void (text += s), colors: false, raw: false, columns: 80 }, text: () => text };
};

describe('the progress views know steps from the engine marks, not from the text', () => {
  it('plain: [n/N] on the marked headings only, output and notes that look like steps stay what they are', () => {
    const c = capture();
    const view = plainView(c.out, 2);
    misleading.forEach(view.log);
    view.succeeded(B, 1300);
    expect(c.text()).toBe(
      [
        '[1/2] (from cairn/busybox:latest)',
        `---> using "${A}" from cache (0.00s)`,
        '/: (workdir "/x: (run y")',
        '/x: (run y: (workdir "/my dir")',
        '[2/2] /my dir: (run (shell "./print-headings"))',
        '(from evil)',
        '/: (run (shell "not a step"))',
        `---> saved as "${FAKE}"`,
        `---> using "${FAKE}" from cache`,
        `---> saved as "${B}" (1.23s)`,
        `Got: "${B}"`,
        '',
      ].join('\n'),
    );
    expect(view.steps.map((s) => [s.index, s.id, s.cached, s.ms])).toEqual([
      [1, A, true, 3],
      [2, B, false, 1234],
    ]);
  });

  it('json: step events with the engine IDs and durations; the look-alike note is a note', () => {
    const c = capture();
    const view = jsonView(c.out, 2);
    misleading.forEach(view.log);
    view.succeeded(B, 1300);
    const events = c
      .text()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.filter((e) => e.event === 'step-started').map((e) => e.index)).toEqual([1, 0, 0, 2]);
    expect(events.filter((e) => e.event === 'step-finished')).toEqual([
      { event: 'step-finished', stage: '', index: 1, op: '(from cairn/busybox:latest)', id: A, cached: true, durationMs: 3 },
      { event: 'step-finished', stage: '', index: 2, op: '/my dir: (run (shell "./print-headings"))', id: B, cached: false, durationMs: 1234 },
    ]);
    expect(events).toContainEqual({ event: 'note', stage: '', text: `---> using "${FAKE}" from cache` });
    expect(events.at(-1)).toEqual({ event: 'result', id: B, durationMs: 1300, stepsRun: 1, stepsCached: 1 });
  });

  it('child builds: each end goes to the step its stage started last, while they interleave', () => {
    const c = capture();
    const view = jsonView(c.out, 3);
    [
      heading('(build "left" ...)'),
      heading('(build "right" ...)'),
      staged(stepHeading('(from cairn/busybox:latest)'), 'left'),
      staged(stepHeading('/: (run (shell "echo right"))'), 'right'),
      output('right\n', 'right'),
      ended(done(B, '(run (shell "echo right"))', false, 20, 'right')),
      ended(done(A, '(from cairn/busybox:latest)', true, 1, 'left')),
    ].forEach(view.log);
    const finished = c
      .text()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((e) => e.event === 'step-finished');
    expect(finished.map((e) => [e.stage, e.index, e.id])).toEqual([
      ['right', 2, B],
      ['left', 1, A],
    ]);
  });
});
