import { randomUUID } from 'node:crypto';
import { Controller, Inject } from '@nestjs/common';
import { Ctx, MessagePattern, NatsContext, Payload } from '@nestjs/microservices';
import {
  call,
  CompileRequest,
  limits,
  reject,
  RejectedError,
  serve,
  SubmitRequest,
  subjects,
  identityOf,
  type CallOptions,
  type Compiled,
  type JobSubmission,
  type Reply,
  type Submitted,
} from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUS } from '@cairn/service-kit';
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

  @MessagePattern(subjects.compile)
  async compile(@Payload() data: unknown): Promise<Reply<Compiled>> {
    const reply = oversized(data, 'compile') ?? await serve(CompileRequest, data, 'compile', async (request) => {
      const compiled = await this.compileTimed('compile', request.spec, request.format);
      if (request.contextDigest !== undefined) await this.contexts.check(request.contextDigest);
      return compiled;
    });
    return this.metrics.counted('compile', reply);
  }

  @MessagePattern(subjects.clientPattern('submit'))
  async submit(@Payload() data: unknown, @Ctx() ctx: NatsContext): Promise<Reply<Submitted>> {
    const prepared = oversized(data, 'submit') ?? await serve(SubmitRequest, data, 'submit', async (request): Promise<JobSubmission> => {
      const client = clientOf(ctx.getSubject());
      const compiled = await this.compileTimed('submit', request.spec, request.format);
      if (request.contextDigest !== undefined) await this.contexts.check(request.contextDigest);
      return {
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
        cacheHint: request.cacheHint ?? compiled.cacheHint,
        steps: compiled.steps.length,
        // Without a key of the client's, one per request: the enqueue retries below
        // (a scheduler restarting) then cannot make a second job.
        idempotencyKey: request.idempotencyKey ?? randomUUID(),
      };
    });
    if (!prepared.ok) return this.metrics.counted('submit', prepared);
    const enqueued = await call<Submitted>(this.bus, subjects.enqueue, prepared.value, this.options.enqueue);
    return this.metrics.counted('submit', enqueued);
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
function clientOf(subject: string): string {
  const client = identityOf(subject);
  if (client === undefined) throw new RejectedError('malformed', `submit: no client ID in subject ${subject}`);
  return client;
}
