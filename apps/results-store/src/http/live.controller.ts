/**
 * Server-sent events for the live parts of the pages: job state changes for the
 * dashboard, and one build's log as it is written (already cut into steps and turned
 * into HTML, so the page's script only places it).
 */
import { Controller, Get, Inject, NotFoundException, Param, Req, Res, UseGuards } from '@nestjs/common';
import type { Request, Response } from 'express';
import { AccessGuard } from '../auth/access-guard.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUS } from '@cairn/service-kit';
import { parseBuildId } from '../ids.js';
import { BuildQueries } from '../queries/build-queries.js';
import { LogSectioner } from '../view/log-sections.js';
import { resumeFrom, SseHub } from '../live/sse-hub.js';
import { LiveBoard } from '../live/live-board.js';
import { logExists, tailLog } from '../live/log-stream.js';
import { SchedulerViews } from '../live/scheduler-views.js';

@Controller()
@UseGuards(AccessGuard)
export class LiveController {
  constructor(
    @Inject(LiveBoard) private readonly live: LiveBoard,
    @Inject(SseHub) private readonly hub: SseHub,
    @Inject(BuildQueries) private readonly queries: BuildQueries,
    @Inject(BUS) private readonly bus: NatsConnection,
    @Inject(SchedulerViews) private readonly scheduler: SchedulerViews,
  ) {}

  @Get('live/events')
  events(@Req() req: Request, @Res() res: Response): void {
    const channel = this.hub.start(req, res);
    const stop = this.live.listen((notice) => channel.send(notice.kind, notice.kind === 'job' ? notice.job : { build: notice.build }));
    channel.signal.addEventListener('abort', stop, { once: true });
  }

  @Get('builds/:id/log/events')
  async log(@Param('id') raw: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    const id = parseBuildId(raw);
    if (!id) throw new NotFoundException(`build ${JSON.stringify(raw)}: not a build ID`);
    const stored = await this.queries.getBuild(id).then(Boolean, () => false);
    // Following a log costs a consumer on the server: only for a build that is queued,
    // running or has logged something, never for any ID a client makes up.
    if (!stored && !this.live.get(id) && !(await logExists(this.bus, id).catch(() => false))) {
      throw new NotFoundException(`build ${id}: not stored, not queued or running`);
    }
    const channel = this.hub.start(req, res);
    if (stored) {
      channel.send('stored', { build: id });
      channel.close();
      return;
    }
    const stop = this.live.listen((notice) => {
      if (notice.kind === 'stored' && notice.build === id) channel.send('stored', { build: id });
      if (notice.kind === 'job' && notice.job.job === id) channel.send('state', { state: notice.job.state });
    });
    channel.signal.addEventListener('abort', stop, { once: true });
    // Where the page's log stands: it gets only what comes after (events are numbered by attempt and byte, `logEventId`).
    const from = resumeFrom(req, parseLogEventId);
    let shown = from?.attempt ?? 0;
    let sectioner = new LogSectioner();
    let attempt = 0;
    const client = this.live.get(id)?.client;
    try {
      const history = (of: string) => this.scheduler.runsOf(of, id);
      for await (const chunk of tailLog(this.bus, id, { signal: channel.signal, history, ...(client ? { client } : {}) })) {
        if (chunk.attempt < shown) continue;
        if (chunk.attempt !== attempt) {
          // The job was requeued: its new run's log replaces what the page shows.
          if (shown !== 0 && chunk.attempt > shown) channel.send('reset', { attempt: chunk.attempt });
          attempt = shown = chunk.attempt;
          sectioner = new LogSectioner();
        }
        const events = [...sectioner.feed(chunk, chunk.at), ...(chunk.end ? sectioner.flush() : [])];
        for (const event of events) {
          if (from?.attempt === attempt && event.end <= from.offset) continue;
          channel.send('log', event, logEventId(attempt, event.end));
        }
        if (chunk.end) channel.send('end', { state: chunk.end });
      }
    } catch (e) {
      channel.send('failure', { message: `following the log of ${id}: ${e instanceof Error ? e.message : String(e)}` });
    }
    // The page closes the stream once it has seen the end; keep it open until then.
  }
}

/**
 * A log event's ID: the run (attempt) and where in its log the event ends (its bytes,
 * plus one per step boundary: LogSectioner), `2:1024`.
 */
export function logEventId(attempt: number, end: number): string {
  return `${attempt}:${end}`;
}

export function parseLogEventId(id: string): { attempt: number; offset: number } | undefined {
  const m = /^(\d{1,6}):(\d{1,15})$/.exec(id);
  return m ? { attempt: Number(m[1]), offset: Number(m[2]) } : undefined;
}
