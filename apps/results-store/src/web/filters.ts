/** Query strings of the list pages and the API, checked: a bad filter is a 400 naming it. */
import { BadRequestException } from '@nestjs/common';
import type { BuildState } from '../db/build.entity.js';
import { parseCursor, STATES, type BuildFilter } from '../queries/build-queries.js';

type Query = Record<string, unknown>;

function text(query: Query, name: string, max = 200): string | undefined {
  const v = query[name];
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string' || v.length > max) throw new BadRequestException(`query parameter ${name}: expected text of at most ${max} characters`);
  return v;
}

export function stateParam(query: Query): BuildState | undefined {
  const state = text(query, 'state', 16);
  if (state !== undefined && !(STATES as readonly string[]).includes(state)) throw new BadRequestException(`query parameter state: expected one of ${STATES.join(', ')}`);
  return state as BuildState | undefined;
}

export function limitParam(query: Query, fallback: number): number {
  const raw = text(query, 'limit', 5);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 200) throw new BadRequestException('query parameter limit: expected a whole number from 1 to 200');
  return n;
}

export function buildFilter(query: Query): BuildFilter {
  const before = text(query, 'before', 80);
  if (before !== undefined && !parseCursor(before)) throw new BadRequestException('query parameter before: expected a cursor from a previous page (next)');
  const filter: BuildFilter = {
    pool: text(query, 'pool', 64),
    platform: text(query, 'platform', 64),
    state: stateParam(query),
    client: text(query, 'client', 64),
    q: text(query, 'q'),
    tag: text(query, 'tag', 64),
    before,
    limit: limitParam(query, 50),
  };
  return Object.fromEntries(Object.entries(filter).filter(([, v]) => v !== undefined)) as BuildFilter;
}

export { text as textParam };
