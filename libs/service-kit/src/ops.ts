/**
 * `/healthz` and `/metrics`, the same on every service. A service registers its health
 * checks (is NATS connected, is the database answering) and its own metrics on the
 * shared registry; the controller only reports them.
 */
import { Controller, Get, Global, Inject, Injectable, Module, Res } from '@nestjs/common';
import type { Response } from 'express';
import { collectDefaultMetrics, Registry } from 'prom-client';

/** Resolves to undefined when healthy, else to the reason it is not. */
export type HealthCheck = () => Promise<string | undefined> | string | undefined;

@Injectable()
export class Ops {
  readonly metrics = new Registry();
  private readonly checks = new Map<string, HealthCheck>();

  constructor() {
    collectDefaultMetrics({ register: this.metrics });
  }

  addCheck(name: string, check: HealthCheck): void {
    this.checks.set(name, check);
  }

  async health(): Promise<{ ok: boolean; checks: Record<string, string> }> {
    const checks: Record<string, string> = {};
    let ok = true;
    for (const [name, check] of this.checks) {
      let problem: string | undefined;
      try {
        problem = await check();
      } catch (e) {
        problem = e instanceof Error ? e.message : String(e);
      }
      checks[name] = problem ?? 'ok';
      if (problem !== undefined) ok = false;
    }
    return { ok, checks };
  }
}

@Controller()
export class OpsController {
  constructor(@Inject(Ops) private readonly ops: Ops) {}

  @Get('healthz')
  async healthz(@Res() res: Response): Promise<void> {
    const health = await this.ops.health();
    res.status(health.ok ? 200 : 503).json(health);
  }

  @Get('metrics')
  async metrics(@Res() res: Response): Promise<void> {
    res.type(this.ops.metrics.contentType).send(await this.ops.metrics.metrics());
  }
}

@Global()
@Module({ controllers: [OpsController], providers: [Ops], exports: [Ops] })
export class OpsModule {}
