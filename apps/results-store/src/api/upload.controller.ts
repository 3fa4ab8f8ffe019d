/**
 * `POST /api/v1/uploads`: results built outside the cluster (format in
 * ingest/upload-format.ts). Needs a writer token. Answers 201 only once the build and
 * every artifact are durably stored; any refusal keeps nothing.
 */
import { Controller, HttpException, Inject, Post, Req, Res, UseGuards, type LoggerService } from '@nestjs/common';
import type { Request, Response } from 'express';
import { AccessGuard, Needs, type AuthedRequest } from '../auth/access-guard.js';
import type { ResultsConfig } from '../config.js';
import { FramingError, TruncatedError } from '../ingest/byte-reader.js';
import { Ingest, UploadRejectedError } from '../ingest/ingest.js';
import { UPLOAD_CONTENT_TYPE } from '../ingest/upload-format.js';
import { ResultsMetrics } from '../ops/results-metrics.js';
import { CONFIG, LOGGER } from '../tokens.js';
import { baseUrl } from '../http/base-url.js';
import { sendJson } from '../http/respond.js';

/**
 * The request body as bytes; a connection closed before the end is a truncated body,
 * and a body past `maxBytes` is refused as it arrives (a chunked body declares no length).
 */
async function* bodyOf(req: Request, maxBytes: number): AsyncIterable<Uint8Array> {
  const iterator = req[Symbol.asyncIterator]();
  let received = 0;
  for (;;) {
    let next: IteratorResult<unknown>;
    try {
      next = await iterator.next();
    } catch (e) {
      throw new TruncatedError(`upload: the connection closed before the body ended (${e instanceof Error ? e.message : String(e)})`);
    }
    if (next.done) break;
    const chunk = next.value as Buffer;
    received += chunk.length;
    if (received > maxBytes) throw new FramingError('too-long', `upload: the body is over the limit of ${maxBytes} bytes (CAIRN_RESULTS_MAX_UPLOAD_BYTES)`);
    yield chunk;
  }
  if (req.readableAborted || !req.complete) throw new TruncatedError('upload: the connection closed before the body ended');
}

/** How much of a refused body is read and thrown away before the connection is cut. */
const LINGER_BYTES = 64 * 1024 * 1024;
const LINGER_MS = 10_000;

/**
 * Reads what is left of a refused body and throws it away, so that a client still sending
 * reads the refusal instead of a reset: closing a socket with unread bytes makes the kernel
 * send RST, which discards the answer on the client's side before it is read (nginx's
 * "lingering close"). Past LINGER_BYTES or LINGER_MS the connection is cut all the same.
 */
function discardRest(req: Request): void {
  if (req.complete) return;
  let left = LINGER_BYTES;
  const cut = () => req.socket.destroy();
  const timer = setTimeout(cut, LINGER_MS).unref();
  const stop = () => clearTimeout(timer);
  // bodyOf read through the async iterator, whose 'readable' listener keeps the stream paused.
  req.removeAllListeners('readable');
  req.on('data', (chunk: Buffer) => {
    left -= chunk.length;
    if (left < 0) {
      stop();
      cut();
    }
  });
  req.once('end', stop);
  req.once('close', stop);
  req.resume();
}

@Controller()
@UseGuards(AccessGuard)
export class UploadController {
  constructor(
    @Inject(Ingest) private readonly ingest: Ingest,
    @Inject(ResultsMetrics) private readonly metrics: ResultsMetrics,
    @Inject(CONFIG) private readonly config: ResultsConfig,
    @Inject(LOGGER) private readonly logger: LoggerService,
  ) {}

  @Post('api/v1/uploads')
  @Needs('write')
  async upload(@Req() req: AuthedRequest, @Res() res: Response): Promise<void> {
    const type = String(req.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim();
    if (type !== UPLOAD_CONTENT_TYPE) {
      throw new HttpException(`upload: Content-Type must be ${UPLOAD_CONTENT_TYPE} (a JSON manifest line, then the artifacts' bytes)`, 415);
    }
    const max = this.config.maxUploadBytes;
    try {
      const declared = Number(req.headers['content-length'] ?? NaN);
      if (declared > max) throw new UploadRejectedError(413, `upload: ${declared} bytes is over the limit of ${max} (CAIRN_RESULTS_MAX_UPLOAD_BYTES)`);
      const stored = await this.ingest.fromUpload(bodyOf(req, max), { maxBytes: max });
      this.logger.log(`upload of ${stored.build} by ${req.principal?.user ?? '?'} stored`);
      sendJson(req, res, { build: stored.build, url: `${baseUrl(this.config, req)}/builds/${stored.build}` }, 201);
    } catch (e) {
      this.metrics.ingestFailures.inc({ source: 'upload' });
      if (e instanceof UploadRejectedError) {
        this.logger.warn(`upload by ${req.principal?.user ?? '?'} refused (${e.status}): ${e.message}`);
        discardRest(req);
        sendJson(req, res, { statusCode: e.status, message: e.message }, e.status);
        return;
      }
      throw e;
    }
  }
}
