/** A compare asked for by a request, and the answer when the compare queue is full. */
import { ServiceUnavailableException } from '@nestjs/common';
import type { Response } from 'express';
import { CompareBusyError } from '../pages/comparer.js';

/** Runs a compare for a request; when the queue is full, answers 503 with Retry-After. */
export async function compareOrBusy<T>(res: Response, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    if (!(e instanceof CompareBusyError)) throw e;
    res.setHeader('Retry-After', String(e.retryAfterS));
    throw new ServiceUnavailableException(e.message);
  }
}
