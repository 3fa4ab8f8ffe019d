/**
 * Every NATS subject Cairn uses, in one place. The version is part of each subject so
 * that two protocol versions can share a bus during an upgrade.
 *
 * Who may publish what is the point of the layout: a token that names a client or a
 * worker sits where NATS permissions can pin it (see tools/nats-config.mjs), so a client
 * cannot speak for another client and a worker cannot speak for another worker.
 */
export const PROTOCOL_VERSION = 'v1';
const P = `cairn.${PROTOCOL_VERSION}`;

/** A name usable as one subject token: no dots, wildcards or spaces. */
export const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

export const subjects = {
  /** Stateless: spec text in, canonical spec + plan + pinned images + cache hint out. */
  compile: `${P}.compile`,
  /** The scheduler's public key, to seal secrets for it. */
  schedulerKey: `${P}.scheduler.key`,

  /** Client requests; the client ID is the token NATS permissions pin. */
  client: (client: string, verb: ClientVerb) => `${P}.client.${client}.${verb}`,
  clientPattern: (verb: ClientVerb) => `${P}.client.*.${verb}`,

  /** spec-compiler -> scheduler: a compiled job (services only). */
  enqueue: `${P}.scheduler.enqueue`,

  /** worker -> scheduler; the worker ID is the pinned token. */
  toScheduler: (worker: string, verb: WorkerVerb) => `${P}.sched.${worker}.${verb}`,
  toSchedulerPattern: (verb: WorkerVerb) => `${P}.sched.*.${verb}`,
  /** scheduler -> worker. */
  toWorker: (worker: string, verb: AgentVerb) => `${P}.agent.${worker}.${verb}`,

  /**
   * Build log chunks of one job as one worker wrote them; the log stream captures them.
   * The worker is the pinned token: a worker can write only under its own name, and a
   * reader keeps only the chunks of the worker that ran that attempt (log-writers.ts).
   */
  log: (client: string, job: string, worker: string) => `${P}.logs.${client}.${job}.${worker}`,
  /** Every worker's chunks of one job (the readers check who wrote each). */
  jobLog: (client: string, job: string) => `${P}.logs.${client}.${job}.*`,
  logsOfClient: (client: string) => `${P}.logs.${client}.>`,
  logsAll: `${P}.logs.>`,

  /** Final results, one per job, for the results-store (JetStream, deduplicated by job). */
  result: (pool: string) => `${P}.results.${pool}`,
  resultsAll: `${P}.results.>`,

  /** Job state changes as they happen (core NATS, for dashboards). */
  jobEvent: (pool: string, state: string) => `${P}.events.job.${pool}.${state}`,
  jobEventsAll: `${P}.events.job.>`,
  /** Supervision events of `cairn up` (a process exited, restarts, gives up). */
  serviceEvent: (name: string) => `${P}.events.service.${name}`,

  /** A client's contexts or a worker's artifacts (see blob-store.ts); the owner is the pinned token. */
  blobsOf: (store: 'contexts' | 'artifacts', owner: string) => `${P}.${store}.${owner}`,
  blobsAll: (store: 'contexts' | 'artifacts') => `${P}.${store}.>`,

  /** Operator requests (admin role only). */
  admin: (verb: AdminVerb) => `${P}.admin.${verb}`,
} as const;

export type ClientVerb = 'submit' | 'status' | 'cancel' | 'logs';
export type WorkerVerb = 'register' | 'heartbeat' | 'started' | 'complete';
export type AgentVerb = 'assign' | 'assign-batch' | 'cancel';
export type AdminVerb =
  | 'pools'
  | 'jobs'
  | 'workers'
  | 'queues'
  | 'clients'
  | 'worker-pause'
  | 'worker-unpause'
  | 'worker-drain'
  | 'worker-forget'
  | 'pool-pause'
  | 'pool-unpause'
  | 'pool-drain'
  | 'job-cancel'
  | 'client-rate'
  // The base-image-builder's: every image's state; a rebuild asked for.
  | 'images'
  | 'images-rebuild';

/**
 * Who a client or worker request speaks for: the token after `client.` or `sched.` in
 * its subject (`cairn.v1.client.<id>.<verb>`, `cairn.v1.sched.<id>.<verb>`), the one the
 * NATS permissions pin to the sender; undefined when the subject has none.
 */
export function identityOf(subject: string): string | undefined {
  const id = subject.split('.')[3];
  return id !== undefined && TOKEN.test(id) ? id : undefined;
}

/** Queue groups, so that several replicas of a service share the work. */
export const queues = {
  specCompiler: 'cairn-spec-compiler',
  scheduler: 'cairn-scheduler',
} as const;
