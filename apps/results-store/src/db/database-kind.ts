/** Which database a location names; its own module so that a worker thread can ask without loading TypeORM. */
export type DatabaseKind = 'sqlite' | 'postgres';

/** `location` is a PostgreSQL URL or a SQLite file path. */
export function databaseKind(location: string): DatabaseKind {
  return /^postgres(ql)?:\/\//.test(location) ? 'postgres' : 'sqlite';
}
