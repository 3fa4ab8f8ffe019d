/**
 * `GET /api/v1/services`: the processes `cairn up` supervises, with their state,
 * restarts and recent events ("worker-1 exited (signal SIGKILL); restarting in 1 s"),
 * as `cairn admin services` shows them. Readable like the scheduler's views.
 */
import { Controller, Get, Inject, Req, Res, UseGuards } from '@nestjs/common';
import type { Request, Response } from 'express';
import { AccessGuard } from '../auth/access-guard.js';
import { SchedulerViews } from '../live/scheduler-views.js';
import { sendJson } from '../http/respond.js';

@Controller()
@UseGuards(AccessGuard)
export class ServicesController {
  constructor(@Inject(SchedulerViews) private readonly views: SchedulerViews) {}

  @Get('api/v1/services')
  async services(@Req() req: Request, @Res() res: Response): Promise<void> {
    const view = await this.views.services();
    if (view.ok) sendJson(req, res, view.value);
    else sendJson(req, res, { statusCode: 503, message: view.error }, 503);
  }
}
