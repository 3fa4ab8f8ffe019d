import { paint } from '../terminal.js';
import { StepOutput } from './step-output.js';
import { StepTracker, type Step } from './step-tracker.js';
import { seconds, type BuildView, type ViewOutput } from './view.js';

/**
 * The build as a log: each op heading as `[n/N] heading`, the step's output streamed
 * beneath it, the engine's notes, and the time each step took. What CI logs keep.
 */
export function plainView(out: ViewOutput, total: number): BuildView {
  const p = paint(out.colors);
  const text = new StepOutput(out.raw);
  let atLineStart = true;
  const line = (s: string) => {
    out.write(`${atLineStart ? '' : '\n'}${s}\n`);
    atLineStart = true;
  };
  const tracker = new StepTracker(total, {
    started: (step: Step) => line(p.bold(step.index ? `[${step.index}/${total}] ${step.op}` : step.op)),
    output: (step, data) => {
      const s = text.decode(step?.stage ?? '', data);
      if (s.length === 0) return;
      out.write(s);
      atLineStart = s.endsWith('\n');
    },
    finished: (step) => {
      const what = step.cached ? p.dim(`---> using ${JSON.stringify(step.id)} from cache`) : p.green(`---> saved as ${JSON.stringify(step.id)}`);
      line(`${what} (${seconds(step.ms ?? 0)})`);
    },
    note: (_step, s) => line(s),
  });
  return {
    log: tracker.log,
    steps: tracker.steps,
    succeeded: (id) => out.write(`Got: ${JSON.stringify(id)}\n`),
    failed: () => undefined,
  };
}
