import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn, type Relation } from 'typeorm';
import { BuildEntity } from './build.entity.js';
import type { BuildId } from '../ids.js';

/** One snapshot step of a build, in the order the build ran them. */
@Entity({ name: 'steps' })
@Index('steps_step_id', ['stepId'])
export class StepEntity {
  @PrimaryColumn({ name: 'build_id', type: 'varchar', length: 48 })
  buildId!: BuildId;

  @ManyToOne(() => BuildEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'build_id' })
  build?: Relation<BuildEntity>;

  @PrimaryColumn({ type: 'integer' })
  position!: number;

  @Column({ type: 'varchar', length: 200 })
  stage!: string;

  @Column({ type: 'text' })
  op!: string;

  @Column({ name: 'step_id', type: 'varchar', length: 128 })
  stepId!: string;

  @Column({ type: 'boolean' })
  cached!: boolean;

  @Column({ type: 'integer' })
  ms!: number;
}
