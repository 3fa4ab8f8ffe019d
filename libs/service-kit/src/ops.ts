/**
 * `/livez`, `/readyz` (and `/healthz`, the same as /readyz, which `cairn up` polls) and
 * `/metrics`, the same on every service. A service registers its checks (is NATS
 * connected, is the database answering) and its own metrics on the shared registry; the
 * controller only reports them. A readiness check failing takes the service out of
 * rotation (a reconnecting NATS connection); a liveness check failing asks for a restart
 * (a connection closed for good), so it fails readiness too.
 */
import { Controller, Get, Global, Inject, Injectable, Module, Res } from '@nestjs/common';
import type { Response } from 'express';
import { collectDefaultMetrics, Registry } from 'prom-client';

/** Resolves to undefined when healthy, else to the reason it is not. */
export type HealthCheck = () => Promise<string | undefined> | string | undefined;

/** `live`: failing means the process should be restarted; `ready`: it should get no work for now. */
export type CheckKind = 'live' | 'ready';

export interface Health {
  readonly ok: boolean;
  readonly checks: Record<string, string>;
}

@Injectable()
export class Ops {
  readonly metrics = new Registry();
  private readonly checks = new Map<string, { check: HealthCheck; kind: CheckKind }>();

  constructor() {
    collectDefaultMetrics({ register: this.metrics });
  }

  addCheck(name: string, check: HealthCheck, kind: CheckKind = 'ready'): void {
    this.checks.set(name, { check, kind });
  }

  /** The liveness checks only (`live`), or every check (`ready`). */
  async health(kind: CheckKind = 'ready'): Promise<Health> {
    const checks: Record<string, string> = {};
    let ok = true;
    for (const [name, { check, kind: checkKind }] of this.checks) {
      if (kind === 'live' && checkKind !== 'live') continue;
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

  @Get('livez')
  async livez(@Res() res: Response): Promise<void> {
    const health = await this.ops.health('live');
    res.status(health.ok ? 200 : 503).json(health);
  }

  @Get(['readyz', 'healthz'])
  async readyz(@Res() res: Response): Promise<void> {
    const health = await this.ops.health('ready');
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
