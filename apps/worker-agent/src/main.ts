#!/usr/bin/env node
/**
 * `node dist/main.js [--http-host H] [--http-port P]`: a worker-agent configured from the
 * environment (see config.ts and worker-agent.ts); /livez, /readyz and /metrics on
 * 127.0.0.1:8083 by default (service-kit's http-listen.ts). SIGTERM or SIGINT drains it (no new jobs, running ones finish and
 * report) and it exits 0; a second signal cancels what still runs. SIGUSR2 hands the
 * running builds back to the scheduler (queued again, to run elsewhere or after a
 * restart) and exits 0: what `cairn up` sends when a drain takes too long, and what a
 * drain does by itself after CAIRN_DRAIN_TIMEOUT_MS (so that a Kubernetes pod hands its
 * builds back before its grace period ends and it is killed).
 */
import 'reflect-metadata';
import { settleHttpListen } from '@cairn/service-kit';
import { startWorkerAgent } from './worker-agent.js';

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;

try {
  const before = new Set(SIGNALS.flatMap((s) => process.listeners(s)));
  const running = await startWorkerAgent(settleHttpListen('worker-agent', process.argv.slice(2)).env);
  // Nest's own shutdown hooks re-raise the signal after closing, so the process would
  // die of it; a drained worker exits 0, so the signals are handled here instead.
  for (const signal of SIGNALS) {
    for (const listener of process.listeners(signal)) if (!before.has(listener)) process.off(signal, listener);
  }
  let signalled = false;
  let cancelled = false;
  const handBack = (why: string) => {
    signalled = true;
    console.error(`worker-agent: ${why}: handing the running builds back to the scheduler`);
    running.release('the worker was stopped before the build ended').then(
      () => process.exit(0),
      (e: unknown) => {
        console.error(`worker-agent: hand-back failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        process.exit(1);
      },
    );
  };
  const onSignal = (signal: string) => {
    if (signalled) {
      console.error(`worker-agent: second ${signal}: cancelling running jobs`);
      cancelled = true;
      void running.abort().then(() => process.exit(1));
      return;
    }
    signalled = true;
    console.error(`worker-agent: ${signal}: draining`);
    const { drainTimeoutMs } = running.config;
    if (drainTimeoutMs > 0) setTimeout(() => handBack(`the drain took over ${drainTimeoutMs} ms`), drainTimeoutMs).unref();
    running.drain().then(
      // The drain may end first once the cancelled builds stop; it did not finish them.
      () => process.exit(cancelled ? 1 : 0),
      (e: unknown) => {
        console.error(`worker-agent: drain failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        process.exit(1);
      },
    );
  };
  for (const signal of SIGNALS) process.on(signal, onSignal);
  process.on('SIGUSR2', () => handBack('SIGUSR2'));
} catch (e) {
  console.error(`worker-agent: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
