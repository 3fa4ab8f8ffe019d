import { paint } from '../terminal.js';
import { StepOutput } from './step-output.js';
import { StepTracker, type Step } from './step-tracker.js';
import { seconds, type BuildView, type ViewOutput } from './view.js';

const TAIL_LINES = 5;
/** Lines of a failed step's output kept to show when it fails. */
const FAILURE_LINES = 200;
const FRAMES = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏';
const ANY_ESCAPE = /\x1b\[[0-?]*[ -/]*[@-~]/g;

interface Running {
  readonly step: Step;
  /** Complete lines, the last FAILURE_LINES of them. */
  readonly lines: string[];
  partial: string;
}

/**
 * The build as a live terminal view, as docker buildx draws it: finished steps scroll
 * up as one line each (run or cached, with its time), and below them every running step
 * with its elapsed time and the last lines of its output, redrawn ten times a second. A
 * failed step's last lines stay on the screen; a summary ends the build.
 */
export function ttyView(out: ViewOutput, total: number, now: () => number = Date.now): BuildView {
  const p = paint(out.colors);
  const text = new StepOutput(out.raw);
  const running = new Map<string, Running>();
  const started = now();
  let pending: string[] = [];
  let drawn = 0;
  let frame = 0;

  const width = () => Math.max(20, out.columns - 1);
  // One screen line each, or the redraw would count lines wrong: a multi-line op is folded.
  const fit = (text: string, room = width()) => {
    const s = text.replace(/\s*\n\s*/g, ' ');
    return s.length > room ? `${s.slice(0, room - 1)}…` : s;
  };

  const redraw = (final = false) => {
    let screen = drawn > 0 ? `\x1b[${drawn}F\x1b[J` : '';
    for (const line of pending) screen += `${line}\n`;
    pending = [];
    drawn = 0;
    if (!final) {
      const spinner = FRAMES[frame++ % FRAMES.length];
      for (const r of running.values()) {
        const elapsed = seconds(now() - r.step.started);
        screen += `${p.cyan(spinner ?? '*')} ${fit(`[${r.step.index}/${total}] ${r.step.op}`, width() - elapsed.length - 3)} ${p.dim(elapsed)}\n`;
        drawn++;
        const tail = [...r.lines.slice(-TAIL_LINES), ...(r.partial ? [r.partial] : [])].slice(-TAIL_LINES);
        for (const line of tail) {
          screen += `${p.dim(fit(`  │ ${line}`))}\n`;
          drawn++;
        }
      }
    }
    if (screen) out.write(screen);
  };
  const timer = setInterval(() => redraw(), 100);
  timer.unref();
  out.write('\x1b[?25l');
  const showCursor = () => out.write('\x1b[?25h');
  process.once('exit', showCursor);

  const tracker = new StepTracker(total, {
    started: (step) => {
      if (step.index > 0) running.set(step.stage, { step, lines: [], partial: '' });
    },
    output: (step, data) => {
      const r = running.get(step?.stage ?? '');
      if (!r) return;
      // A terminal shows the last state of a line that \r rewrote (a progress bar), not every state.
      const chunks = (r.partial + text.decode(r.step.stage, data)).replace(ANY_ESCAPE, '').replace(/\t/g, '    ').split('\n');
      r.partial = lastState(chunks.pop() ?? '').slice(-4096);
      for (const c of chunks) r.lines.push(lastState(c));
      if (r.lines.length > FAILURE_LINES) r.lines.splice(0, r.lines.length - FAILURE_LINES);
    },
    finished: (step) => {
      running.delete(step.stage);
      const label = fit(`[${step.index}/${total}] ${step.op}`, width() - 12);
      pending.push(step.cached ? p.dim(`✓ ${label}  cached`) : `${p.green('✓')} ${label}  ${p.dim(seconds(step.ms ?? 0))}`);
    },
    note: (_step, s) => {
      if (s.startsWith('--> finished ')) return;
      pending.push(p.dim(fit(s)));
    },
  });

  const close = () => {
    clearInterval(timer);
    redraw(true);
    showCursor();
    process.off('exit', showCursor);
  };
  const summary = (ms: number) => {
    const run = tracker.steps.filter((s) => !s.cached);
    const cached = tracker.steps.length - run.length;
    const runMs = run.reduce((n, s) => n + (s.ms ?? 0), 0);
    return `${run.length} step${run.length === 1 ? '' : 's'} run (${seconds(runMs)}), ${cached} from cache, in ${seconds(ms)}`;
  };
  return {
    log: tracker.log,
    steps: tracker.steps,
    succeeded: (id, ms) => {
      close();
      out.write(`${p.green('Built')}: ${summary(ms ?? now() - started)}\nGot: ${JSON.stringify(id)}\n`);
    },
    failed: (_message, ms) => {
      for (const r of running.values()) {
        pending.push(`${p.red('✗')} [${r.step.index}/${total}] ${r.step.op}`);
        for (const line of [...r.lines, ...(r.partial ? [r.partial] : [])]) pending.push(`  │ ${line}`);
      }
      running.clear();
      close();
      out.write(`${p.red('Failed')}: ${summary(ms ?? now() - started)}\n`);
    },
  };
}

const lastState = (line: string) => {
  const cr = line.lastIndexOf('\r', line.length - 2);
  return (cr < 0 ? line : line.slice(cr + 1)).replace(/\r$/, '');
};
