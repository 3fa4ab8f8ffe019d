/**
 * What the JSON API answers and takes, as zod schemas: api/openapi.ts makes the OpenAPI
 * document's components from them, and test/api-contract.test.ts checks every route's
 * answers against them. Objects are strict, so a field the code adds and the document
 * does not name fails that test.
 */
import { JobEvent, PoolInfo, QueueInfo, ServiceStatus, WorkerInfo } from '@cairn/contracts';
import { z } from 'zod';
import { ROLES } from '../roles.js';

/** The named schemas, each a component of the document. */
export const components = z.registry<{ id: string; description?: string }>();

const int = z.number().int();
const epochMs = int.describe('epoch ms');

export const ApiError = z
  .strictObject({ statusCode: int, message: z.string(), error: z.string().optional() })
  .register(components, { id: 'Error', description: 'Why a request failed' });

export const State = z.enum(['succeeded', 'failed', 'cancelled']).register(components, { id: 'State' });

export const BuildSummary = z
  .strictObject({
    id: z.string(),
    job: z.string(),
    pool: z.string(),
    platform: z.string(),
    client: z.string(),
    worker: z.string(),
    state: State,
    startedAt: epochMs,
    finishedAt: epochMs,
    durationMs: int,
    stepsTotal: int,
    stepsCached: int,
    failure: z.string().nullable(),
  })
  .register(components, { id: 'BuildSummary' });

export const BuildPage = z
  .strictObject({ items: z.array(BuildSummary), next: z.string().optional(), prev: z.string().optional() })
  .register(components, { id: 'BuildPage' });

export const Step = z
  .strictObject({ position: int, stage: z.string(), op: z.string(), stepId: z.string(), cached: z.boolean(), ms: int })
  .register(components, { id: 'Step' });

export const Artifact = z.strictObject({ path: z.string(), size: int, sha256: z.string().regex(/^[0-9a-f]{64}$/) }).register(components, { id: 'Artifact' });

export const Build = BuildSummary.extend({
  spec: z.string(),
  contextDigest: z.string().nullable(),
  cacheHint: z.string(),
  snapshotId: z.string().nullable(),
  attempts: int,
  submittedAt: epochMs,
  storedAt: epochMs,
  source: z.enum(['cluster', 'upload']),
  note: z.string().nullable(),
  logSha256: z.string().nullable(),
  logBytes: int.nullable(),
  trace: z.string().nullable().describe("The trace ID of the submission: the services' log lines about it carry it as `trace`"),
  steps: z.array(Step),
  artifacts: z.array(Artifact),
  tags: z.array(z.string()),
  reproduce: z.strictObject({ fetch: z.string(), local: z.string(), submit: z.string() }).describe('Commands that build it again'),
  links: z.strictObject({ page: z.string(), log: z.string().nullable(), spec: z.string(), artifacts: z.array(z.string()) }),
}).register(components, { id: 'Build', description: 'One build in full' });

export const JobSummary = z
  .strictObject({
    name: z.string(),
    lastBuild: z.string().nullable(),
    lastState: State.nullable(),
    lastFinishedAt: epochMs.nullable(),
    lastPool: z.string().nullable(),
  })
  .register(components, { id: 'JobSummary' });

export const JobPage = z.strictObject({ items: z.array(JobSummary), next: z.string().optional() }).register(components, { id: 'JobPage' });

export const Job = JobSummary.extend({ history: z.array(BuildSummary), successRate: z.number().nullable() }).register(components, {
  id: 'Job',
  description: "A job's last 100 builds",
});

export const Comparison = z
  .strictObject({
    a: z.string(),
    b: z.string(),
    specChanged: z.boolean(),
    specDiff: z.array(z.strictObject({ kind: z.enum(['same', 'removed', 'added']), line: z.string() })),
    steps: z.array(
      z.strictObject({
        stage: z.string(),
        op: z.string(),
        opBefore: z.string().nullable(),
        a: z.string().nullable().describe("A's step ID"),
        b: z.string().nullable().describe("B's step ID"),
        changed: z.boolean(),
        msA: int.nullable(),
        msB: int.nullable(),
        deltaMs: int.nullable(),
      }),
    ),
    firstChange: int.nullable().describe('Index in steps of the first changed step'),
    durationDeltaMs: int,
  })
  .register(components, { id: 'Comparison' });

export const LiveJobs = z.strictObject({ jobs: z.array(z.strictObject({ ...JobEvent.shape, since: epochMs })) }).register(components, { id: 'LiveJobs' });
export const Pools = z.array(PoolInfo).register(components, { id: 'Pools' });
export const Workers = z.array(WorkerInfo).register(components, { id: 'Workers' });
export const Queues = z.array(QueueInfo).register(components, { id: 'Queues' });
export const Services = z.array(ServiceStatus).register(components, { id: 'Services' });

export const Stored = z.strictObject({ build: z.string(), url: z.string() }).register(components, { id: 'Stored', description: 'An upload, stored' });

export const TokenRequest = z
  .object(
    {
      user: z
        .string({ error: 'body.user: 1-100 characters, no spaces' })
        .regex(/^\S{1,100}$/, { error: 'body.user: 1-100 characters, no spaces' })
        .describe('Who the token is for'),
      role: z.enum(ROLES, { error: `body.role: one of ${ROLES.join(', ')}` }).describe('What it may do'),
      label: z.string().optional().catch(undefined).describe('Shown beside the token (first 100 characters)'),
      changeRole: z
        .boolean({ error: "body.changeRole: true to change an existing user's role" })
        .optional()
        .describe('Give an existing user this role (otherwise a different role is refused with 409)'),
    },
    // A body that is no object names the first field it lacks.
    { error: 'body.user: 1-100 characters, no spaces' },
  )
  .register(components, { id: 'TokenRequest' });

export const Token = z
  .strictObject({ id: int, user: z.string(), role: z.enum(ROLES), token: z.string() })
  .register(components, { id: 'Token', description: 'Shown only in this answer' });
