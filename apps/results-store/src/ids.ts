/**
 * Typed IDs: each table's key is branded so that a job's key cannot be passed where a
 * build's ID or a token's key is expected. Values enter the type only through the
 * parsers below (or straight from the database, whose columns are declared with them).
 */
import { JobId } from '@cairn/contracts';

declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

/** A named spec built over time (`jobs.id`). */
export type JobKey = Brand<number, 'JobKey'>;
/** One build: the cluster's job ID (`j-...`), unique across the history (`builds.id`). */
export type BuildId = Brand<string, 'BuildId'>;
export type UserId = Brand<number, 'UserId'>;
export type TokenId = Brand<number, 'TokenId'>;
export type TagId = Brand<number, 'TagId'>;
/** 64 lowercase hex digits: the name of a blob in the content-addressed store. */
export type Sha256 = Brand<string, 'Sha256'>;

const HEX64 = /^[0-9a-f]{64}$/;

export function parseBuildId(value: string): BuildId | undefined {
  return JobId.safeParse(value).success ? (value as BuildId) : undefined;
}

export function parseSha256(value: string): Sha256 | undefined {
  return HEX64.test(value) ? (value as Sha256) : undefined;
}

/** For values a schema has already checked (a parsed BuildResult). */
export const asBuildId = (value: string): BuildId => value as BuildId;
export const asSha256 = (value: string): Sha256 => value as Sha256;
