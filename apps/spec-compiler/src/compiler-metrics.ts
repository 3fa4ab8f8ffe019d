import { Inject, Injectable } from '@nestjs/common';
import { Ops } from '@cairn/service-kit';
import type { ErrorCode, Reply } from '@cairn/contracts';
import { Counter, Histogram } from 'prom-client';

/** What /metrics shows of the spec-compiler: compiles, rejections by code, compile time. */
@Injectable()
export class CompilerMetrics {
  private readonly compiles: Counter<'request'>;
  private readonly rejections: Counter<'request' | 'code'>;
  private readonly latency: Histogram<'request'>;

  constructor(@Inject(Ops) ops: Ops) {
    const registers = [ops.metrics];
    this.compiles = new Counter({ name: 'cairn_spec_compiler_compiles_total', help: 'Specs compiled', labelNames: ['request'], registers });
    this.rejections = new Counter({
      name: 'cairn_spec_compiler_rejections_total',
      help: 'Requests rejected, by error code',
      labelNames: ['request', 'code'],
      registers,
    });
    this.latency = new Histogram({
      name: 'cairn_spec_compiler_compile_seconds',
      help: 'Time to parse, pin base images and plan a spec',
      labelNames: ['request'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
  }

  /** Times `compile` and counts it once it succeeds. */
  async timed<T>(request: 'compile' | 'submit', compile: () => Promise<T>): Promise<T> {
    const end = this.latency.startTimer({ request });
    const value = await compile();
    end();
    this.compiles.inc({ request });
    return value;
  }

  /** Counts the reply's rejection, if it is one, and passes it on. */
  counted<T>(request: 'compile' | 'submit', reply: Reply<T>): Reply<T> {
    if (!reply.ok) this.rejections.inc({ request, code: reply.error.code satisfies ErrorCode });
    return reply;
  }
}
