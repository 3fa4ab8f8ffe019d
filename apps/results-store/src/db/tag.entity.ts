import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn, PrimaryGeneratedColumn, type Relation } from 'typeorm';
import { BuildEntity } from './build.entity.js';
import type { BuildId, TagId } from '../ids.js';

/** A label on builds (`release`, `nightly`); a tagged build outlives the retention policies. */
@Entity({ name: 'tags' })
export class TagEntity {
  @PrimaryGeneratedColumn('increment', { type: 'integer' })
  id!: TagId;

  @Column({ type: 'varchar', length: 64, unique: true })
  name!: string;
}

@Entity({ name: 'build_tags' })
@Index('build_tags_tag', ['tagId'])
export class BuildTagEntity {
  @PrimaryColumn({ name: 'build_id', type: 'varchar', length: 48 })
  buildId!: BuildId;

  @ManyToOne(() => BuildEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'build_id' })
  build?: Relation<BuildEntity>;

  @PrimaryColumn({ name: 'tag_id', type: 'integer' })
  tagId!: TagId;

  @ManyToOne(() => TagEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'tag_id' })
  tag?: Relation<TagEntity>;
}
