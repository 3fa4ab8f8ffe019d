/**
 * The database: SQLite by default (one replica), PostgreSQL when several replicas share
 * the history. The schema comes only from the migrations, which run at start; the
 * entities never synchronise it.
 */
import { createHash } from 'node:crypto';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { ArtifactEntity } from './artifact.entity.js';
import { databaseKind } from './database-kind.js';
import { BuildEntity } from './build.entity.js';
import { JobEntity } from './job.entity.js';
import { InitialSchema1732400000000 } from './migrations/0001-initial-schema.js';
import { FilteredListIndexes1796342400000 } from './migrations/0002-filtered-list-indexes.js';
import { OperatorActions1796860800000 } from './migrations/0003-operator-actions.js';
import { Rollups1796864400000 } from './migrations/0004-rollups.js';
import { LogIndex1796868000000 } from './migrations/0005-log-index.js';
import { BuildTrace1796871600000 } from './migrations/0006-build-trace.js';
import { RollupEntity } from './rollup.entity.js';
import { AuditEntity } from './audit.entity.js';
import { RetryEntity } from './retry.entity.js';
import { StepEntity } from './step.entity.js';
import { BuildTagEntity, TagEntity } from './tag.entity.js';
import { TokenEntity } from './token.entity.js';
import { UserEntity } from './user.entity.js';

export const ENTITIES = [
  JobEntity,
  BuildEntity,
  StepEntity,
  ArtifactEntity,
  UserEntity,
  TokenEntity,
  TagEntity,
  BuildTagEntity,
  AuditEntity,
  RetryEntity,
  RollupEntity,
];
export const MIGRATIONS = [
  InitialSchema1732400000000,
  FilteredListIndexes1796342400000,
  OperatorActions1796860800000,
  Rollups1796864400000,
  LogIndex1796868000000,
  BuildTrace1796871600000,
];

/** `location` is a PostgreSQL URL or a SQLite file path. */
export function dataSourceOptions(location: string): DataSourceOptions {
  const common = { entities: ENTITIES, migrations: MIGRATIONS, synchronize: false, migrationsRun: false, logging: false } as const;
  if (databaseKind(location) === 'postgres') {
    return { ...common, type: 'postgres', url: location, applicationName: 'cairn-results-store', extra: { max: 10 } };
  }
  return {
    ...common,
    type: 'better-sqlite3',
    database: location,
    // WAL lets the pages read while a result is being written.
    enableWAL: true,
    timeout: 10_000,
    prepareDatabase: (db: { pragma(s: string): unknown }) => {
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      // SQLite runs on the event loop: with the default 2 MiB page cache, a build page
      // read from a large store copied its index pages in from the OS on every request
      // (most of a page's CPU at 100,000 builds). 64 MiB keeps the hot indexes in the process.
      db.pragma('cache_size = -65536');
    },
  };
}

/** Opens the database and brings its schema up to date. */
export async function openDatabase(location: string): Promise<DataSource> {
  const ds = new DataSource(dataSourceOptions(location));
  try {
    await ds.initialize();
  } catch (e) {
    throw new Error(`results database ${redact(location)}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  try {
    await migrate(ds);
  } catch (e) {
    await ds.destroy().catch(() => undefined);
    throw new Error(`results database ${redact(location)}: migration failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return ds;
}

// Replicas starting together on one PostgreSQL must not run the same migration twice.
const MIGRATION_LOCK = createHash('sha256').update('cairn-results-store migrations').digest().readInt32BE(0);

async function migrate(ds: DataSource): Promise<void> {
  if (ds.options.type !== 'postgres') {
    await ds.runMigrations({ transaction: 'each' });
    return;
  }
  const runner = ds.createQueryRunner();
  try {
    await runner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await ds.runMigrations({ transaction: 'each' });
  } finally {
    await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    await runner.release();
  }
}

/** A database location fit for a log line: no password. */
export function redact(location: string): string {
  return location.replace(/(postgres(?:ql)?:\/\/[^:/@]+):[^@]*@/, '$1:***@');
}
