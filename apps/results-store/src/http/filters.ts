/**
 * Query strings of the list pages and the API, checked: a bad filter is a 400 naming it.
 * The schemas describe their parameters too: api/openapi.ts documents them from here.
 */
import { BadRequestException } from '@nestjs/common';
import { z } from 'zod';
import type { BuildState } from '../db/build.entity.js';
import { parseListCursor, SORTS, STATES, type BuildFilter } from '../queries/build-queries.js';

/** Text of at most `max` characters (an empty parameter is no filter: see `parse`). */
function text(name: string, max = 200) {
  const error = `query parameter ${name}: expected text of at most ${max} characters`;
  return z.string({ error }).max(max, { error });
}

const state = text('state', 16).pipe(z.enum(STATES as [BuildState, ...BuildState[]], { error: `query parameter state: expected one of ${STATES.join(', ')}` }));

const limitError = 'query parameter limit: expected a whole number from 1 to 200';
const limit = text('limit', 5).pipe(
  z.coerce.number<string>({ error: limitError }).int({ error: limitError }).min(1, { error: limitError }).max(200, { error: limitError }),
);

const cursor = (name: string) => text(name, 450);

/** A day, `2026-12-06` (UTC). */
function day(name: string) {
  const error = `query parameter ${name}: expected a date as YYYY-MM-DD`;
  return text(name, 10)
    .regex(/^\d{4}-\d\d-\d\d$/, { error })
    .refine((d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`)), { error });
}

const DAY_MS = 86_400_000;

export const BuildQuery = z.object({
  pool: text('pool', 64).optional().describe('Only builds on this pool'),
  platform: text('platform', 64).optional().describe('Only builds on this platform'),
  state: state.optional().describe('Only builds that ended so'),
  client: text('client', 64).optional().describe('Only builds submitted by this client'),
  q: text('q').optional().describe('Part of the job name, or a whole build ID'),
  tag: text('tag', 64).optional().describe('Only builds with this tag'),
  sort: text('sort', 16)
    .pipe(z.enum(SORTS, { error: `query parameter sort: expected one of ${SORTS.join(', ')}` }))
    .optional()
    .describe('Order: finished (newest first, the default), started, duration (longest first) or name'),
  from: day('from').optional().describe('Only builds finished on or after this day (YYYY-MM-DD, UTC)'),
  to: day('to').optional().describe('Only builds finished on or before this day (YYYY-MM-DD, UTC)'),
  before: cursor('before').optional().describe('Cursor: the `next` of the previous page (older builds)'),
  after: cursor('after').optional().describe('Cursor: the `prev` of the previous page (newer builds)'),
  limit: limit.optional().default(50).describe('Page size'),
});

export const JobQuery = z.object({
  q: text('q').optional().describe('Part of the name'),
  state: state.optional().describe('Latest build ended so'),
  after: text('after').optional().describe('Cursor: the `next` of the previous page'),
});

function parse<S extends z.ZodObject>(schema: S, query: Record<string, unknown>): z.output<S> {
  const given = Object.fromEntries(Object.entries(query).filter(([, v]) => v !== ''));
  const result = schema.safeParse(given);
  if (!result.success) throw new BadRequestException(result.error.issues[0]?.message);
  return Object.fromEntries(Object.entries(result.data).filter(([, v]) => v !== undefined)) as z.output<S>;
}

export function buildFilter(query: Record<string, unknown>): BuildFilter {
  const { from, to, ...filter } = parse(BuildQuery, query);
  for (const name of ['before', 'after'] as const) {
    const given = filter[name];
    if (given !== undefined && !parseListCursor(filter.sort ?? 'finished', given))
      throw new BadRequestException(`query parameter ${name}: expected a cursor from a previous page of this order`);
  }
  const dayStart = (d: string) => Date.parse(`${d}T00:00:00Z`);
  // `to` names the last day included.
  return { ...filter, ...(from === undefined ? {} : { from: dayStart(from) }), ...(to === undefined ? {} : { to: dayStart(to) + DAY_MS }) };
}

export function jobFilter(query: Record<string, unknown>): z.output<typeof JobQuery> {
  return parse(JobQuery, query);
}
