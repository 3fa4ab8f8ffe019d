/**
 * Server-sent event connections (live board, live logs). Each is registered here so
 * that shutdown can end them: an open event stream would otherwise hold the HTTP server
 * open forever.
 */
import type { Request, Response } from 'express';

export interface SseChannel {
  send(event: string, data: unknown): void;
  readonly signal: AbortSignal;
  close(): void;
}

const KEEPALIVE_MS = 15_000;

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
    const abort = new AbortController();
    const keepalive = setInterval(() => res.write(': keep-alive\n\n'), KEEPALIVE_MS);
    const channel: SseChannel = {
      send: (event, data) => {
        if (!abort.signal.aborted) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
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
