/**
 * One JSON object per log line, with the service's fields (a worker's worker and pool) and
 * the fields a call passes (job, client) on the line itself, where a log store selects by them.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ServiceLogger, serviceLogger } from '@cairn/service-kit';

function linesOf(write: { mock: { calls: unknown[][] } }): Record<string, unknown>[] {
  return write.mock.calls.map((args) => JSON.parse(String(args[0])) as Record<string, unknown>);
}

describe('ServiceLogger', () => {
  afterEach(() => vi.restoreAllMocks());

  it("writes JSON lines with the service's fields and the call's", () => {
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const logger = new ServiceLogger('worker-agent-w1', { worker: 'w1', pool: 'linux-x86_64' });
    logger.log('started', { job: 'j-1', client: 'alice' }, 'JobRunner');
    logger.log('idle');
    const [first, second] = linesOf(write);
    expect(first).toMatchObject({
      service: 'worker-agent-w1',
      worker: 'w1',
      pool: 'linux-x86_64',
      job: 'j-1',
      client: 'alice',
      level: 'log',
      message: 'started',
      context: 'JobRunner',
    });
    expect(second).toMatchObject({ service: 'worker-agent-w1', worker: 'w1', pool: 'linux-x86_64', message: 'idle' });
    expect(second).not.toHaveProperty('job');
  });

  it('keeps the level and message when a field is named like them', () => {
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    new ServiceLogger('scheduler', { message: 'not this' }).warn('queue long', { level: 'debug' });
    expect(linesOf(write)[0]).toMatchObject({ service: 'scheduler', level: 'warn', message: 'queue long' });
  });

  it('writes plain lines with CAIRN_LOG_FORMAT=text', () => {
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    serviceLogger('spec-compiler', { CAIRN_LOG_FORMAT: 'text' }).log('ready');
    const line = String(write.mock.calls[0]![0]);
    expect(line).toMatch(/\[spec-compiler\].* LOG.*ready/);
    expect(() => JSON.parse(line)).toThrow();
  });
});
