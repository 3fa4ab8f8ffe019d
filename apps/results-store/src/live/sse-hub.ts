/**
 * Server-sent event connections (live board, live logs). Each is registered here so
 * that shutdown can end them: an open event stream would otherwise hold the HTTP server
 * open forever.
 */
import { Injectable } from '@nestjs/common';
import type { Request, Response } from 'express';

export interface SseChannel {
  /**
   * `id`: where the event leaves the client, sent back by its browser as `Last-Event-ID`
   * when it reconnects (see `resumeFrom`), so that the stream can go on from there.
   */
  send(event: string, data: unknown, id?: string): void;
  readonly signal: AbortSignal;
  close(): void;
}

const KEEPALIVE_MS = 15_000;
/** How soon a browser reconnects after a stream is cut (its default is about 3 s). */
const RETRY_MS = 1000;

@Injectable()
export class SseHub {
  private readonly open = new Set<SseChannel>();

  start(req: Request, res: Response): SseChannel {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      'X-Accel-Buffering': 'no',
      Connection: 'keep-alive',
    });
    res.flushHeaders();
    res.write(`retry: ${RETRY_MS}\n\n`);
    const abort = new AbortController();
    const keepalive = setInterval(() => res.write(': keep-alive\n\n'), KEEPALIVE_MS);
    const channel: SseChannel = {
      send: (event, data, id) => {
        if (!abort.signal.aborted) res.write(`event: ${event}\n${id === undefined ? '' : `id: ${id}\n`}data: ${JSON.stringify(data)}\n\n`);
      },
      signal: abort.signal,
      close: () => {
        if (abort.signal.aborted) return;
        abort.abort();
        clearInterval(keepalive);
        this.open.delete(channel);
        res.end();
      },
    };
    this.open.add(channel);
    req.on('close', () => channel.close());
    return channel;
  }

  closeAll(): void {
    for (const channel of [...this.open]) channel.close();
  }

  get size(): number {
    return this.open.size;
  }
}

/**
 * Where a client's event stream left off: the `Last-Event-ID` its browser sends when it
 * reconnects, else the `from` query parameter a page gives on its first connection;
 * undefined for neither (or a value that is not one of ours).
 */
export function resumeFrom<T>(req: Request, parse: (id: string) => T | undefined): T | undefined {
  const header = req.headers['last-event-id'];
  const from = typeof header === 'string' && header !== '' ? header : typeof req.query['from'] === 'string' ? req.query['from'] : undefined;
  return from === undefined ? undefined : parse(from);
}
