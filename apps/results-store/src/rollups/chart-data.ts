/** The charts' series for a time range, read from the rollups (never from the builds). */
import { PERIOD_MS, quantile, readRollups, type Metric, type Period, type RollupPoint, type SqlReader } from './rollup-metrics.js';

export const RANGES = {
  '1h': { ms: 3600_000, period: 'minute' },
  '24h': { ms: 24 * 3600_000, period: 'hour' },
  '7d': { ms: 7 * 24 * 3600_000, period: 'hour' },
  '30d': { ms: 30 * 24 * 3600_000, period: 'hour' },
} as const satisfies Record<string, { ms: number; period: Period }>;
export type Range = keyof typeof RANGES;
export const isRange = (value: unknown): value is Range => typeof value === 'string' && Object.hasOwn(RANGES, value);

export interface Series {
  readonly name: string;
  /** Bucket start (epoch ms) and value. */
  readonly points: readonly (readonly [number, number])[];
  /** Over the whole range: how many (builds, steps, samples) and, for rates, how many of them counted (succeeded, cached). */
  readonly count: number;
  readonly part?: number;
}

export interface Chart {
  readonly id: string;
  readonly title: string;
  readonly unit: 'jobs' | 'ms' | '%';
  readonly series: readonly Series[];
}

export interface Charts {
  readonly range: Range;
  readonly from: number;
  readonly to: number;
  readonly bucketMs: number;
  readonly pool?: string;
  readonly charts: readonly Chart[];
}

/** Job names shown on the duration chart: the ones built most in the range. */
const TOP_JOBS = 5;

type Points = Map<string, RollupPoint[]>;

function series(points: Points, value: (p: RollupPoint) => number | undefined, suffix = ''): Series[] {
  return [...points].map(([name, list]) => {
    const values = list.flatMap((p): [number, number][] => {
      const v = value(p);
      return v === undefined || !Number.isFinite(v) ? [] : [[p.bucket, Math.round(v * 10) / 10]];
    });
    return { name: name + suffix, points: values, count: list.reduce((n, p) => n + p.count, 0), part: list.reduce((n, p) => n + p.part, 0) };
  });
}

const ratio = (p: RollupPoint, of: number) => (of > 0 ? (100 * p.part) / of : undefined);

/** Read on the chart worker's thread (chart-pages.ts), and by tests straight from a DataSource. */
export class ChartData {
  constructor(private readonly ds: SqlReader) {}

  async charts(range: Range, now: number, pool?: string): Promise<Charts> {
    const { ms, period } = RANGES[range];
    const bucketMs = PERIOD_MS[period];
    const from = now - ms - ((now - ms) % bucketMs);
    const read = (metric: Metric, subject?: string) => readRollups(this.ds, period, metric, from, subject === undefined ? {} : { subject });
    const [queue, oldest, wait, duration, builds, steps, busy] = await Promise.all([
      read('queue', pool),
      read('oldest', pool),
      read('wait', pool),
      readRollups(this.ds, period, 'duration', from, { top: TOP_JOBS }),
      read('builds', pool),
      read('steps', pool),
      read('busy', pool),
    ]);
    // Most built first, as the query picked them.
    const topJobs = new Map([...duration].sort((a, b) => total(b[1]) - total(a[1]) || a[0].localeCompare(b[0])));
    const percentiles = (points: Points) =>
      [...points].flatMap(([name, list]) => [
        ...series(new Map([[name, list]]), (p) => quantile(p.bins, 0.5), ' p50'),
        ...series(new Map([[name, list]]), (p) => quantile(p.bins, 0.95), ' p95'),
      ]);
    return {
      range,
      from,
      to: now,
      bucketMs,
      ...(pool ? { pool } : {}),
      charts: [
        { id: 'queue-length', title: 'Queue length (mean of samples)', unit: 'jobs', series: series(queue, (p) => (p.count ? p.total / p.count : undefined)) },
        { id: 'oldest-queued', title: 'Oldest queued job (age, most)', unit: 'ms', series: series(oldest, (p) => p.peak) },
        { id: 'wait', title: 'Wait, submit to start (p50, p95)', unit: 'ms', series: percentiles(wait) },
        { id: 'duration', title: `Build duration (p50, p95), the ${TOP_JOBS} jobs built most`, unit: 'ms', series: percentiles(topJobs) },
        { id: 'success-rate', title: 'Success rate', unit: '%', series: series(builds, (p) => ratio(p, p.count)) },
        { id: 'cache-hit', title: 'Step cache-hit rate', unit: '%', series: series(steps, (p) => ratio(p, p.count)) },
        {
          id: 'utilisation',
          title: 'Worker utilisation (busy slots / capacity)',
          unit: '%',
          series: series(busy, (p) => (p.part > 0 ? (100 * p.total) / p.part : undefined)),
        },
      ],
    };
  }
}

function total(points: readonly RollupPoint[]): number {
  return points.reduce((n, p) => n + p.count, 0);
}
