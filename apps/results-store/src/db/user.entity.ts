import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import type { UserId } from '../ids.js';
import { epochMs } from './columns.js';

/**
 * What a token lets its holder do; each role includes the ones before it. `reader` is the
 * dashboard's viewer; `writer` adds tags and uploads; `operator` adds the dashboard's
 * actions (cancel, retry, pause, drain); `admin` adds tokens and clients' rates.
 */
export const ROLES = ['reader', 'writer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

@Entity({ name: 'users' })
export class UserEntity {
  @PrimaryGeneratedColumn('increment', { type: 'integer' })
  id!: UserId;

  @Column({ type: 'varchar', length: 100, unique: true })
  name!: string;

  @Column({ type: 'varchar', length: 16 })
  role!: Role;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMs })
  createdAt!: number;
}
