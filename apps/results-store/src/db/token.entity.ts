import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn, type Relation } from 'typeorm';
import { UserEntity } from './user.entity.js';
import type { TokenId, UserId } from '../ids.js';
import { epochMs } from './columns.js';

/** An API token. Only its SHA-256 is kept: the token itself is shown once, when made. */
@Entity({ name: 'tokens' })
@Index('tokens_user', ['userId'])
export class TokenEntity {
  @PrimaryGeneratedColumn('increment', { type: 'integer' })
  id!: TokenId;

  @Column({ name: 'user_id', type: 'integer' })
  userId!: UserId;

  @ManyToOne(() => UserEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'user_id' })
  user?: Relation<UserEntity>;

  @Column({ type: 'varchar', length: 64, unique: true })
  hash!: string;

  @Column({ type: 'varchar', length: 100 })
  label!: string;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMs })
  createdAt!: number;

  @Column({ name: 'revoked_at', type: 'bigint', nullable: true, transformer: epochMs })
  revokedAt!: number | null;
}
