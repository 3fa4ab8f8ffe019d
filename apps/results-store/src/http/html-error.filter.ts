/** Errors on the HTML pages shown as pages (with a way to sign in when a token is needed), not as JSON. */
import { Catch, HttpException, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { Request, Response } from 'express';
import { errorPage } from '../pages/error-page.js';
import { HTML, send } from './respond.js';

@Catch()
export class HtmlErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger('results-store');

  catch(error: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const req = http.getRequest<Request>();
    const res = http.getResponse<Response>();
    const status = error instanceof HttpException ? error.getStatus() : 500;
    const message = error instanceof HttpException ? error.message : 'The results-store failed to answer; the failure is in its log.';
    if (!(error instanceof HttpException))
      this.logger.error(`${req.method} ${req.originalUrl}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    if (res.headersSent) {
      res.end();
      return;
    }
    send(req, res, errorPage(status, message).value, { type: HTML, status });
  }
}
