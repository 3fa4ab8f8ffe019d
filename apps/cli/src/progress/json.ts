import { StepOutput } from './step-output.js';
import { StepTracker, type Step } from './step-tracker.js';
import type { BuildView, ViewOutput } from './view.js';

/**
 * The build as JSON lines that a script can follow, one event per line:
 *   {"event":"step-started","stage":"","index":1,"total":3,"op":"(from busybox)","time":"..."}
 *   {"event":"log","stage":"","index":1,"data":"..."}
 *   {"event":"step-finished","stage":"","index":1,"op":"...","id":"<64 hex>","cached":true,"durationMs":3}
 *   {"event":"note","stage":"","text":"..."}
 *   {"event":"result","id":"<64 hex>","durationMs":120,"stepsRun":1,"stepsCached":2}
 *   {"event":"error","message":"...","durationMs":120}
 * Context ops (env, workdir, user, shell, comment) start with index 0 and never finish.
 */
export function jsonView(out: ViewOutput, total: number): BuildView {
  const emit = (event: Record<string, unknown>) => out.write(`${JSON.stringify(event)}\n`);
  const text = new StepOutput(out.raw);
  const tracker = new StepTracker(total, {
    started: (step: Step) =>
      emit({ event: 'step-started', stage: step.stage, index: step.index, total, op: step.op, time: new Date(step.started).toISOString() }),
    output: (step, data) => {
      const s = text.decode(step?.stage ?? '', data);
      if (s.length > 0) emit({ event: 'log', stage: step?.stage ?? '', index: step?.index ?? 0, data: s });
    },
    finished: (step) =>
      emit({ event: 'step-finished', stage: step.stage, index: step.index, op: step.op, id: step.id, cached: step.cached, durationMs: step.ms }),
    note: (step, s) => emit({ event: 'note', stage: step?.stage ?? '', text: s }),
  });
  const counts = () => ({
    stepsRun: tracker.steps.filter((s) => !s.cached).length,
    stepsCached: tracker.steps.filter((s) => s.cached).length,
  });
  return {
    log: tracker.log,
    steps: tracker.steps,
    succeeded: (id, ms) => emit({ event: 'result', id, durationMs: ms, ...counts() }),
    failed: (message, ms) => emit({ event: 'error', message, durationMs: ms, ...counts() }),
  };
}
