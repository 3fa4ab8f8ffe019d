/**
 * The charts pages, made in a worker thread (see chart-pages.ts) with the thread's own
 * connection to the database: reading the rollups, drawing the SVG and compressing it
 * all happen here, none of it on the request thread. Imports nothing of Nest's or
 * TypeORM's, so the worker starts in a few milliseconds.
 */
import { gzipSync } from 'node:zlib';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import pg from 'pg';
import { databaseKind } from '../db/database-kind.js';
import { chartsPage } from './charts-page.js';
import { yieldToRequests } from '../worker-threads.js';
import { ChartData, type Range } from '../rollups/chart-data.js';
import type { SqlReader } from '../rollups/rollup-metrics.js';

export interface ChartWorkerData {
  /** The store's database: SQLite file path or PostgreSQL URL. */
  readonly database: string;
}

export interface ChartTask {
  readonly seq: number;
  readonly range: Range;
  readonly pool?: string;
  readonly now: number;
}

export type ChartReply = { readonly seq: number; readonly body: Uint8Array; readonly gzip: Uint8Array } | { readonly seq: number; readonly error: string };

function openReader(location: string): SqlReader {
  if (databaseKind(location) === 'postgres') {
    // Two: the chart's queries run side by side, and a third would only queue on the server.
    const pool = new pg.Pool({ connectionString: location, max: 2, application_name: 'cairn-results-store-charts' });
    // An idle connection the server closed (a restart): the pool replaces it, and a query under way fails on its own.
    pool.on('error', () => undefined);
    return { options: { type: 'postgres' }, query: async (sql, params) => (await pool.query(sql, params)).rows };
  }
  // The store made the file and runs its migrations; this connection only reads (WAL lets it beside the writer).
  const db = new Database(location, { fileMustExist: true, timeout: 10_000 });
  db.pragma('query_only = ON');
  // Statements are not kept: a page has eight, and one kept across a schema change (a
  // migration, a table renamed back) took the thread down with it.
  return { options: { type: 'better-sqlite3' }, query: async (sql, params = []) => db.prepare(sql).all(...params) };
}

yieldToRequests();

if (parentPort) {
  const port = parentPort;
  const charts = new ChartData(openReader((workerData as ChartWorkerData).database));
  port.on('message', async (task: ChartTask) => {
    try {
      const body = Buffer.from(chartsPage(await charts.charts(task.range, task.now, task.pool)).value, 'utf8');
      // Served for many seconds to every reader: worth the better compression level.
      const gzip = gzipSync(body, { level: 6 });
      port.postMessage({ seq: task.seq, body, gzip } satisfies ChartReply);
    } catch (e) {
      port.postMessage({ seq: task.seq, error: e instanceof Error ? e.message : String(e) } satisfies ChartReply);
    }
  });
}
