/**
 * Column helpers shared by the entities. Times are epoch milliseconds in `bigint`
 * columns: PostgreSQL's driver returns those as strings (they may exceed 2^53), but an
 * epoch in milliseconds never does, so they are read back as numbers.
 */
import type { ValueTransformer } from 'typeorm';

export const epochMs: ValueTransformer = {
  to: (value: number | null | undefined) => value,
  from: (value: string | number | null) => (value === null || value === undefined ? value : Number(value)),
};
