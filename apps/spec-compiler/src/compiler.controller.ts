import { randomUUID } from 'node:crypto';
import { Controller, Inject } from '@nestjs/common';
import {
  call,
  CompileRequest,
  limits,
  reject,
  RejectedError,
  SubmitRequest,
  subjects,
  type CallOptions,
  type Compiled,
  type JobSubmission,
  type Reply,
  type Submitted,
} from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUS, Handles, type MessageOf } from '@cairn/service-kit';
import { compileSpec, type SpecFormat } from './compile.js';
import { CompilerMetrics } from './compiler-metrics.js';
import { ContextStore } from './context-store.js';
import type { ImageResolver } from './pin-images.js';

export const COMPILER_OPTIONS = Symbol('COMPILER_OPTIONS');

export interface CompilerOptions {
  /** Tag -> digest for `(from IMAGE)`: the configured fetcher's `resolve`. */
  readonly resolve: ImageResolver;
  /**
   * How a submission is forwarded to the scheduler: retried while no scheduler answers
   * (one restarting), so a client's submit outlives a short scheduler outage.
   */
  readonly enqueue: CallOptions;
  /** Default limits.maxContextBytes; smaller in tests, which cannot upload 256 MiB cheaply. */
  readonly maxContextBytes?: number;
}

/**
 * The spec-compiler's two requests. `compile` is for tools (`cairn plan` against the
 * cluster); `submit` is how every job enters the cluster: compiled, its context checked,
 * then handed to the scheduler, whose reply (the job ID, or why not) goes back as is.
 */
@Controller()
export class CompilerController {
  private readonly contexts: ContextStore;

  constructor(
    @Inject(BUS) private readonly bus: NatsConnection,
    @Inject(COMPILER_OPTIONS) private readonly options: CompilerOptions,
    @Inject(CompilerMetrics) private readonly metrics: CompilerMetrics,
  ) {
    this.contexts = new ContextStore(bus, options.maxContextBytes);
  }

  @Handles(subjects.compile, CompileRequest, 'compile', { around: (c: CompilerController, data, next) => c.guarded('compile', data, next) })
  compile(request: CompileRequest): Promise<Compiled> {
    return this.compileTimed('compile', request.spec, request.format);
  }

  @Handles(subjects.clientPattern('submit'), SubmitRequest, 'submit', { around: (c: CompilerController, data, next) => c.guarded('submit', data, next) })
  async submit(request: MessageOf<typeof SubmitRequest>, speaker: string, subject: string): Promise<Submitted> {
    const client = clientOf(speaker, subject);
    const compiled = await this.compileTimed('submit', request.spec, request.format);
    if (request.contextDigest !== undefined) await this.contexts.check(client, request.contextDigest);
    const submission: JobSubmission = {
      client,
      pool: request.pool,
      name: request.name,
      spec: compiled.canonical,
      ...(request.contextDigest === undefined ? {} : { contextDigest: request.contextDigest }),
      urgent: request.urgent,
      // Sealed for the scheduler by the client; passed on untouched, never opened here.
      secrets: request.secrets,
      outputs: request.outputs,
      timeoutSeconds: request.timeoutSeconds,
      ...(request.limits === undefined ? {} : { limits: request.limits }),
      ...(request.stepTimeoutMs === undefined ? {} : { stepTimeoutMs: request.stepTimeoutMs }),
      cacheHint: request.cacheHint ?? compiled.cacheHint,
      steps: compiled.steps.length,
      // Without a key of the client's, one per request: the enqueue retries below
      // (a scheduler restarting) then cannot make a second job.
      idempotencyKey: request.idempotencyKey ?? randomUUID(),
    };
    // The scheduler's rejection is the client's, code and message unchanged.
    const enqueued = await call<Submitted>(this.bus, subjects.enqueue, submission, this.options.enqueue);
    if (!enqueued.ok) throw new RejectedError(enqueued.error.code, enqueued.error.message);
    return enqueued.value;
  }

  /** Every request: a spec over the size limit refused before the schema sees it, every rejection counted. */
  private async guarded(request: 'compile' | 'submit', data: unknown, next: () => Promise<Reply<unknown>>): Promise<Reply<unknown>> {
    return this.metrics.counted(request, oversized(data, request) ?? (await next()));
  }

  private compileTimed(request: 'compile' | 'submit', spec: string, format: SpecFormat): Promise<Compiled> {
    return this.metrics.timed(request, () => compileSpec(spec, format, this.options.resolve));
  }
}

/**
 * A spec over the size limit is `too-large` rather than the schema's `malformed`: the
 * sender can act on that (split it, drop generated parts) where "malformed" says nothing.
 */
function oversized(data: unknown, what: string): Reply<never> | undefined {
  const spec = data !== null && typeof data === 'object' && 'spec' in data ? data.spec : undefined;
  if (typeof spec !== 'string') return undefined;
  const bytes = Buffer.byteLength(spec);
  return bytes > limits.maxSpecBytes ? reject('too-large', `${what}: the spec is ${bytes} bytes, more than the limit of ${limits.maxSpecBytes}`) : undefined;
}

/**
 * The client a submit speaks for: the token after `client.` in its subject, which the
 * NATS permissions of tools/nats-config.mjs pin to the sender's own ID.
 */
function clientOf(speaker: string, subject: string): string {
  if (speaker === '') throw new RejectedError('malformed', `submit: no client ID in subject ${subject}`);
  return speaker;
}
