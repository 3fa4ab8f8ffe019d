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
import { LogSectioner } from '../web/log-sections.js';
import { SseHub } from '../web/sse-hub.js';
import { LiveBoard } from './live-board.js';
import { logExists, tailLog } from './log-stream.js';

@Controller()
@UseGuards(AccessGuard)
export class LiveController {
  constructor(
    @Inject(LiveBoard) private readonly live: LiveBoard,
    @Inject(SseHub) private readonly hub: SseHub,
    @Inject(BuildQueries) private readonly queries: BuildQueries,
    @Inject(BUS) private readonly bus: NatsConnection,
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
    let sectioner = new LogSectioner();
    let attempt = 0;
    const client = this.live.get(id)?.client;
    try {
      for await (const chunk of tailLog(this.bus, id, { signal: channel.signal, ...(client ? { client } : {}) })) {
        if (chunk.attempt !== attempt) {
          // The job was requeued: its new run's log replaces what the page shows.
          if (attempt !== 0) channel.send('reset', { attempt: chunk.attempt });
          attempt = chunk.attempt;
          sectioner = new LogSectioner();
        }
        for (const event of sectioner.feed(chunk.text)) channel.send('log', event);
        if (chunk.end) {
          for (const event of sectioner.flush()) channel.send('log', event);
          channel.send('end', { state: chunk.end });
        }
      }
    } catch (e) {
      channel.send('failure', { message: `following the log of ${id}: ${e instanceof Error ? e.message : String(e)}` });
    }
    // The page closes the stream once it has seen the end; keep it open until then.
  }
}
