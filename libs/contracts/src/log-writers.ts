/**
 * Whose log chunks are a job's log. A chunk's subject names the worker that published it
 * (NATS lets a worker publish under its own name only, nats-auth.ts), and the scheduler
 * records which worker ran each attempt: a chunk belongs to the job's log only when the
 * worker in its subject ran the chunk's attempt. Without this check any worker could
 * write into any job's log: a forged "all tests passed", a forged end.
 */
import type { Requeue } from './schemas.js';
import { subjects } from './subjects.js';

/** What the scheduler says about a job's runs (a JobStatus, a logs page). */
export interface RunHistory {
  /** Runs so far; the last one is `worker`'s. */
  readonly attempts: number;
  readonly worker?: string | undefined;
  /** Each lost run, with the worker it was lost on. */
  readonly requeues?: readonly Requeue[] | undefined;
}

/** The worker that ran `attempt`, when the history says. */
export function writerOf(history: RunHistory, attempt: number): string | undefined {
  const lost = history.requeues?.find((r) => r.attempt === attempt);
  if (lost) return lost.worker;
  return attempt === history.attempts ? history.worker : undefined;
}

/** `cairn.v1.logs.` */
const LOG_PREFIX = subjects.logsAll.slice(0, -1);

/** The client, job and worker a log subject names; undefined for any other subject. */
export function parseLogSubject(subject: string): { client: string; job: string; worker: string } | undefined {
  if (!subject.startsWith(LOG_PREFIX)) return undefined;
  const tokens = subject.slice(LOG_PREFIX.length).split('.');
  if (tokens.length !== 3) return undefined;
  const [client, job, worker] = tokens as [string, string, string];
  return { client, job, worker };
}

/** Lookups of a job's history at most this often, however many chunks of unknown runs arrive. */
const LOOKUP_EVERY_MS = 250;

/**
 * Checks chunks as they arrive live, by the history of the job for the client its subject
 * names. A chunk of a run the history does not know yet (the job was requeued since)
 * waits for a fresh history from the scheduler; lookups are spaced, so a worker
 * publishing chunks of made-up runs or clients cannot flood the scheduler.
 */
export class LogWriters {
  private readonly histories = new Map<string, RunHistory>();
  private readonly looking = new Map<string, Promise<void>>();
  private nextLookup = 0;

  constructor(private readonly lookup: (client: string) => Promise<RunHistory | undefined>) {}

  /** A history read elsewhere (a logs page): newer runs replace older knowledge. */
  learn(client: string, history: RunHistory): void {
    const known = this.histories.get(client);
    if (!known || history.attempts >= known.attempts) this.histories.set(client, history);
  }

  /** Whether the chunk of `attempt` on `subject` was written by the worker that ran that attempt. */
  async wrote(subject: string, attempt: number): Promise<boolean> {
    const from = parseLogSubject(subject);
    if (!from) return false;
    const known = this.histories.get(from.client);
    if (!known || (writerOf(known, attempt) === undefined && attempt >= known.attempts)) {
      let looking = this.looking.get(from.client);
      if (!looking) {
        looking = this.refresh(from.client).finally(() => this.looking.delete(from.client));
        this.looking.set(from.client, looking);
      }
      await looking;
    }
    const history = this.histories.get(from.client);
    return history !== undefined && writerOf(history, attempt) === from.worker;
  }

  private async refresh(client: string): Promise<void> {
    const at = Math.max(Date.now(), this.nextLookup);
    this.nextLookup = at + LOOKUP_EVERY_MS;
    if (at > Date.now()) await new Promise((r) => setTimeout(r, at - Date.now()));
    const history = await this.lookup(client).catch(() => undefined);
    if (history) this.learn(client, history);
  }
}
