import { queues, type CallOptions } from '@cairn/contracts';
import type { Fetcher } from '@cairn/fetcher';
import { startService, type RunningService } from '@cairn/service-kit';
import { SpecCompilerModule } from './spec-compiler.module.js';

export interface SpecCompilerOptions {
  /** Resolves `(from IMAGE)` tags to digests; the workers' fetcher should see the same images. */
  readonly fetcher: Fetcher;
  /** CAIRN_NATS, CAIRN_NATS_USER..., CAIRN_HTTP_PORT (see busFromEnv and startService). */
  readonly env?: NodeJS.ProcessEnv;
  readonly enqueue?: CallOptions;
  readonly maxContextBytes?: number;
}

/** Default forwarding: 10 s per attempt, retries spanning ~5 s of "no responders". */
export const DEFAULT_ENQUEUE: CallOptions = { timeoutMs: 10_000, retries: 6 };

export function startSpecCompiler(options: SpecCompilerOptions): Promise<RunningService> {
  const { fetcher } = options;
  return startService({
    name: 'spec-compiler',
    queue: queues.specCompiler,
    module: (bus) =>
      SpecCompilerModule.forRoot(bus, {
        resolve: (image) => fetcher.resolve(image),
        enqueue: options.enqueue ?? DEFAULT_ENQUEUE,
        ...(options.maxContextBytes === undefined ? {} : { maxContextBytes: options.maxContextBytes }),
      }),
    ...(options.env === undefined ? {} : { env: options.env }),
  });
}
