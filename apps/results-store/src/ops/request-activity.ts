/**
 * When readers last had something from the HTTP side, for background work that should
 * give way to them. Requests are seen where they enter and leave the HTTP server, so
 * every page and API route counts; a long-lived one (a live log's event stream) counts
 * only when it opens and closes, not for as long as it stays open. Monitoring
 * (/metrics, /livez, /readyz, /healthz) does not count: a scraper is not a reader, and one polling every
 * second would otherwise hold the backfill at its slow pace for good.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Injectable } from '@nestjs/common';

const MONITORING = /^\/(metrics|livez|readyz|healthz)(\?|$)/;

@Injectable()
export class RequestActivity {
  private last = 0;

  watch(server: Server): void {
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (MONITORING.test(req.url ?? '')) return;
      this.last = Date.now();
      res.once('close', () => (this.last = Date.now()));
    });
  }

  /** Whether a reader's request began or ended less than `quietMs` ago. */
  busy(quietMs: number, now = Date.now()): boolean {
    return now - this.last < quietMs;
  }
}
