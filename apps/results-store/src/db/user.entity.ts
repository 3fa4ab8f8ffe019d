import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import type { UserId } from '../ids.js';
import type { Role } from '../roles.js';
import { epochMs } from './columns.js';

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
