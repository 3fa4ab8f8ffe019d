/**
 * The rollups: what each metric adds per minute and per hour, how the additions are
 * written (one upsert per distinct row, additive, so replicas and batches add up), and
 * how a chart reads them back.
 *
 *   builds    per pool: count = builds stored, part = of them succeeded
 *   steps     per pool: count = steps run, part = of them cache hits
 *   wait      per pool, histogram: submit to start, ms
 *   duration  per job name, histogram: start to finish, ms
 *   queue     per pool, sampled: total = jobs queued (summed over samples), peak = most
 *   oldest    per pool, sampled: total/peak = age of the oldest queued job, ms
 *   busy      per pool, sampled: total = busy slots, part = capacity (summed over samples)
 *
 * Histograms keep 4 bins per doubling (bin = 1 + floor(4 log2 ms)): a percentile read
 * from them is within 19% of the exact one, whatever the range.
 */
import type { BuildResult } from '@cairn/contracts';
import type { DataSource, EntityManager } from 'typeorm';

export type Period = 'minute' | 'hour';
export const PERIOD_MS: Record<Period, number> = { minute: 60_000, hour: 3_600_000 };
export type Metric = 'builds' | 'steps' | 'wait' | 'duration' | 'queue' | 'oldest' | 'busy';

export interface RollupRow {
  readonly period: Period;
  readonly metric: Metric;
  readonly subject: string;
  readonly bucket: number;
  readonly bin: number;
  count: number;
  total: number;
  peak: number;
  part: number;
}

export function binOf(ms: number): number {
  return ms < 1 ? 0 : 1 + Math.floor(4 * Math.log2(ms));
}

/** The middle of a bin, in ms. */
export function binValue(bin: number): number {
  return bin === 0 ? 0 : Math.round(2 ** ((bin - 0.5) / 4));
}

/** Merges additions to the same row (same period, metric, subject, bucket, bin). */
export class RollupBatch {
  private readonly rows = new Map<string, RollupRow>();

  add(at: number, metric: Metric, subject: string, value: { bin?: number; count?: number; total?: number; peak?: number; part?: number }): void {
    for (const period of ['minute', 'hour'] as const) {
      const bucket = at - (at % PERIOD_MS[period]);
      const bin = value.bin ?? 0;
      const key = `${period}\0${metric}\0${subject}\0${bucket}\0${bin}`;
      const row = this.rows.get(key) ?? { period, metric, subject: subject.slice(0, 200), bucket, bin, count: 0, total: 0, peak: 0, part: 0 };
      row.count += value.count ?? 1;
      row.total += Math.round(value.total ?? 0);
      row.peak = Math.max(row.peak, Math.round(value.peak ?? 0));
      row.part += value.part ?? 0;
      this.rows.set(key, row);
    }
  }

  addBuild(r: Pick<BuildResult, 'pool' | 'name' | 'state' | 'steps' | 'submittedAt' | 'startedAt' | 'finishedAt'>): void {
    const wait = Math.max(0, r.startedAt - r.submittedAt);
    const duration = Math.max(0, r.finishedAt - r.startedAt);
    this.add(r.finishedAt, 'builds', r.pool, { part: r.state === 'succeeded' ? 1 : 0 });
    if (r.steps.length) this.add(r.finishedAt, 'steps', r.pool, { count: r.steps.length, part: r.steps.filter((s) => s.cached).length });
    this.add(r.finishedAt, 'wait', r.pool, { bin: binOf(wait), total: wait, peak: wait });
    this.add(r.finishedAt, 'duration', r.name, { bin: binOf(duration), total: duration, peak: duration });
  }

  get size(): number {
    return this.rows.size;
  }

  /** Adds the batch to the database (inside the caller's transaction when given one). */
  async write(db: DataSource | EntityManager): Promise<void> {
    const postgres = ('connection' in db ? db.connection : db).options.type === 'postgres';
    for (const [sql, params] of this.statements(postgres)) await db.query(sql, params);
  }

  /** The upserts that add the batch, 100 rows each, for a driver of the dialect. */
  *statements(postgres: boolean): Generator<[string, unknown[]]> {
    const rows = [...this.rows.values()];
    for (let i = 0; i < rows.length; i += 100) {
      const params: unknown[] = [];
      const values = rows
        .slice(i, i + 100)
        .map((r) => {
          const at = params.length;
          params.push(r.period, r.metric, r.subject, r.bucket, r.bin, r.count, r.total, r.peak, r.part);
          return `(${Array.from({ length: 9 }, (_, k) => (postgres ? `$${at + k + 1}` : '?')).join(', ')})`;
        })
        .join(', ');
      yield [
        `INSERT INTO rollups (period, metric, subject, bucket, bin, count, total, peak, part) VALUES ${values}
         ON CONFLICT (period, metric, subject, bucket, bin) DO UPDATE SET count = rollups.count + excluded.count, total = rollups.total + excluded.total,
         peak = ${postgres ? 'GREATEST' : 'MAX'}(rollups.peak, excluded.peak), part = rollups.part + excluded.part`,
        params,
      ];
    }
  }
}

/** One bucket of one subject, the bins of a histogram merged. */
export interface RollupPoint {
  readonly bucket: number;
  readonly count: number;
  readonly total: number;
  readonly peak: number;
  readonly part: number;
  /** Histogram metrics: count per bin. */
  readonly bins: ReadonlyMap<number, number>;
}

/** What reading the rollups needs of a database: a TypeORM DataSource, or the chart worker's own connection. */
export interface SqlReader {
  readonly options: { readonly type: string };
  query(sql: string, params?: unknown[]): Promise<unknown>;
}

/**
 * Every subject's points of `metric` from `since` on, oldest first: of one subject when
 * given, or of the `top` subjects with the most counted (one aggregate query picks them).
 */
export async function readRollups(
  ds: SqlReader,
  period: Period,
  metric: Metric,
  since: number,
  which: { subject?: string; top?: number } = {},
): Promise<Map<string, RollupPoint[]>> {
  const postgres = ds.options.type === 'postgres';
  const params: unknown[] = [period, metric, since];
  const p = (value: unknown) => (params.push(value), postgres ? `$${params.length}` : '?');
  const range = `period = ${postgres ? '$1' : '?'} AND metric = ${postgres ? '$2' : '?'} AND bucket >= ${postgres ? '$3' : '?'}`;
  let subjects = '';
  if (which.subject !== undefined) subjects = ` AND subject = ${p(which.subject)}`;
  else if (which.top !== undefined) {
    const top = (await ds.query(
      `SELECT subject FROM rollups WHERE ${range} GROUP BY subject ORDER BY SUM(count) DESC, subject LIMIT ${Math.max(1, Math.floor(which.top))}`,
      [...params],
    )) as { subject: string }[];
    if (top.length === 0) return new Map();
    subjects = ` AND subject IN (${top.map((t) => p(t.subject)).join(', ')})`;
  }
  const rows = (await ds.query(
    `SELECT subject, bucket, bin, count, total, peak, part FROM rollups WHERE ${range}${subjects} ORDER BY subject, bucket, bin`,
    params,
  )) as {
    subject: string;
    bucket: string | number;
    bin: number;
    count: string | number;
    total: string | number;
    peak: string | number;
    part: string | number;
  }[];
  const out = new Map<string, RollupPoint[]>();
  for (const row of rows) {
    const points = out.get(row.subject) ?? [];
    out.set(row.subject, points);
    const bucket = Number(row.bucket);
    let last = points[points.length - 1] as { bucket: number; count: number; total: number; peak: number; part: number; bins: Map<number, number> } | undefined;
    if (!last || last.bucket !== bucket) {
      last = { bucket, count: 0, total: 0, peak: 0, part: 0, bins: new Map() };
      points.push(last);
    }
    last.count += Number(row.count);
    last.total += Number(row.total);
    last.peak = Math.max(last.peak, Number(row.peak));
    last.part += Number(row.part);
    if (metric === 'wait' || metric === 'duration') last.bins.set(Number(row.bin), (last.bins.get(Number(row.bin)) ?? 0) + Number(row.count));
  }
  return out;
}

/** The `q` quantile (0-1) of a histogram, as the middle of the bin it falls in. */
export function quantile(bins: ReadonlyMap<number, number>, q: number): number | undefined {
  const sorted = [...bins].sort((a, b) => a[0] - b[0]);
  const n = sorted.reduce((s, [, c]) => s + c, 0);
  if (n === 0) return undefined;
  const rank = Math.max(1, Math.ceil(q * n));
  let seen = 0;
  for (const [bin, count] of sorted) {
    seen += count;
    if (seen >= rank) return binValue(bin);
  }
  return binValue(sorted[sorted.length - 1]![0]);
}

/** Drops minute rows older than `minuteKeepMs` and hour rows older than `hourKeepMs`. */
export async function pruneRollups(ds: DataSource, now: number, minuteKeepMs: number, hourKeepMs: number): Promise<void> {
  const p = (n: number) => (ds.options.type === 'postgres' ? `$${n}` : '?');
  await ds.query(`DELETE FROM rollups WHERE (period = 'minute' AND bucket < ${p(1)}) OR (period = 'hour' AND bucket < ${p(2)})`, [
    now - minuteKeepMs,
    now - hourKeepMs,
  ]);
}
