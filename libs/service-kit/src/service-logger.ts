/**
 * Every service's log: one JSON object per line (CAIRN_LOG_FORMAT=text for people at a
 * terminal), each line carrying the service's own fields (`service`, and a worker's
 * `worker` and `pool`), and the fields a call site passes as a plain object after the
 * message (`logger.log('started', { job, client })`) spread into the line, so that a log
 * store can select every line of a job, a worker, a pool or a client, and a request's
 * lines by its `trace`.
 */
import { ConsoleLogger, type LogLevel } from '@nestjs/common';
import { currentTrace } from '@cairn/contracts';

export type LogFields = Readonly<Record<string, string>>;

export class ServiceLogger extends ConsoleLogger {
  private readonly fields: LogFields;

  constructor(service: string, fields: LogFields = {}, json = true) {
    super({ json, prefix: service, flattenParams: true });
    this.fields = { service, ...fields };
  }

  // The service's fields first: the framework's (level, message, ...) and the call's win.
  // The trace ID of the request being handled, when there is one (contracts' trace.ts).
  protected override getJsonLogObject(
    message: unknown,
    options: {
      context: string;
      logLevel: LogLevel;
      writeStreamType?: 'stdout' | 'stderr';
      errorStack?: unknown;
      params?: Record<string, unknown>;
      error?: Error;
    },
  ) {
    const trace = currentTrace();
    return { ...this.fields, ...(trace === undefined ? {} : { trace }), ...super.getJsonLogObject(message, options) };
  }
}

/** The logger of a service started from `env` (CAIRN_LOG_FORMAT=text: plain lines). */
export function serviceLogger(service: string, env: NodeJS.ProcessEnv, fields: LogFields = {}): ServiceLogger {
  return new ServiceLogger(service, fields, env.CAIRN_LOG_FORMAT !== 'text');
}
