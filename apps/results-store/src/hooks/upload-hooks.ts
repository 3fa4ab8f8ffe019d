/**
 * Upload hooks: every executable file in the hooks directory runs after a build is
 * stored (in name order, one build at a time), with the build's facts as arguments and
 * environment. A hook that fails or outlives its timeout is logged and counted; the
 * build is already committed, so nothing a hook does can lose it.
 *
 * Hooks get a minimal environment, not the service's, so that no secret the service
 * holds (database password, tokens) leaks into them.
 */
import { spawn } from 'node:child_process';
import { access, constants, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Inject, Injectable, Optional, type LoggerService } from '@nestjs/common';
import type { ResultsConfig } from '../config.js';
import { ResultsMetrics } from '../ops/results-metrics.js';
import { LOGGER, CONFIG } from '../tokens.js';

export interface StoredBuildFacts {
  readonly build: string;
  readonly job: string;
  readonly state: string;
  readonly pool: string;
  readonly platform: string;
  readonly client: string;
  readonly worker: string;
  readonly finishedAt: number;
  readonly durationMs: number;
  readonly artifacts: number;
  readonly url?: string;
}

export interface HookRun {
  readonly hook: string;
  readonly outcome: 'ok' | 'failed' | 'timeout';
  readonly exitCode: number | null;
  readonly output: string;
}

const MAX_OUTPUT = 64 * 1024;

@Injectable()
export class UploadHooks {
  private queue: Promise<unknown> = Promise.resolve();

  private readonly dir: string | undefined;
  private readonly timeoutMs: number;

  constructor(
    @Inject(CONFIG) settings: Pick<ResultsConfig, 'hooksDir' | 'hookTimeoutMs'>,
    @Inject(LOGGER) private readonly logger: Pick<LoggerService, 'log' | 'warn' | 'error'>,
    @Optional() @Inject(ResultsMetrics) private readonly metrics?: ResultsMetrics,
  ) {
    this.dir = settings.hooksDir;
    this.timeoutMs = settings.hookTimeoutMs;
  }

  /** Queues the hooks for a stored build; resolves when they have all run. */
  afterStored(facts: StoredBuildFacts): Promise<HookRun[]> {
    const run = this.queue.then(() => this.runAll(facts));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Resolves once every queued hook has run (for shutdown and tests). */
  idle(): Promise<unknown> {
    return this.queue;
  }

  private async runAll(facts: StoredBuildFacts): Promise<HookRun[]> {
    if (!this.dir) return [];
    const runs: HookRun[] = [];
    for (const hook of await executables(this.dir)) {
      const run = await this.runOne(hook, facts).catch((e: unknown): HookRun => ({
        hook,
        outcome: 'failed',
        exitCode: null,
        output: e instanceof Error ? e.message : String(e),
      }));
      runs.push(run);
      this.metrics?.hookRuns.inc({ outcome: run.outcome });
      const line = { hook, build: facts.build, outcome: run.outcome, exitCode: run.exitCode, output: run.output };
      if (run.outcome === 'ok') this.logger.log(`upload hook ${JSON.stringify(line)}`);
      else this.logger.warn(`upload hook ${JSON.stringify(line)}`);
    }
    return runs;
  }

  private runOne(hook: string, facts: StoredBuildFacts): Promise<HookRun> {
    const args = [facts.build, facts.job, facts.state, facts.pool, facts.platform];
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      CAIRN_BUILD: facts.build,
      CAIRN_JOB: facts.job,
      CAIRN_STATE: facts.state,
      CAIRN_POOL: facts.pool,
      CAIRN_PLATFORM: facts.platform,
      CAIRN_CLIENT: facts.client,
      CAIRN_WORKER: facts.worker,
      CAIRN_FINISHED_AT: String(facts.finishedAt),
      CAIRN_DURATION_MS: String(facts.durationMs),
      CAIRN_ARTIFACTS: String(facts.artifacts),
      ...(facts.url ? { CAIRN_BUILD_URL: facts.url } : {}),
    };
    return new Promise((resolve) => {
      const child = spawn(hook, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      let output = '';
      const collect = (d: Buffer) => {
        if (output.length < MAX_OUTPUT) output += d.toString().slice(0, MAX_OUTPUT - output.length);
      };
      child.stdout.on('data', collect);
      child.stderr.on('data', collect);
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        // The hook's whole process group, so a shell's children die with it.
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }, this.timeoutMs);
      child.once('error', (e) => {
        clearTimeout(timer);
        resolve({ hook, outcome: 'failed', exitCode: null, output: `${output}${e.message}` });
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ hook, outcome: timedOut ? 'timeout' : code === 0 ? 'ok' : 'failed', exitCode: code, output: output.trimEnd() });
      });
    });
  }
}

async function executables(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (e) {
    throw new Error(`upload hooks directory ${dir}: ${(e as Error).message}`, { cause: e });
  }
  const found: string[] = [];
  for (const name of names) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) continue;
    if (
      await access(path, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      found.push(path);
  }
  return found;
}
