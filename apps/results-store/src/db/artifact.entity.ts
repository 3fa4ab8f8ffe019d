import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn, type Relation } from 'typeorm';
import { BuildEntity } from './build.entity.js';
import type { BuildId, Sha256 } from '../ids.js';
import { epochMs } from './columns.js';

/** A file a build produced; its bytes are the blob named by `sha256`, shared by every build that produced the same bytes. */
@Entity({ name: 'artifacts' })
@Index('artifacts_sha256', ['sha256'])
export class ArtifactEntity {
  @PrimaryColumn({ name: 'build_id', type: 'varchar', length: 48 })
  buildId!: BuildId;

  @ManyToOne(() => BuildEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'build_id' })
  build?: Relation<BuildEntity>;

  /** Relative, normalised: no `..`, `.` or empty segment, no NUL or backslash. */
  @PrimaryColumn({ type: 'varchar', length: 1024 })
  path!: string;

  @Column({ type: 'bigint', transformer: epochMs })
  size!: number;

  @Column({ type: 'varchar', length: 64 })
  sha256!: Sha256;
}
