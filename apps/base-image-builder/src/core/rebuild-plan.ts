/**
 * The service's one decision, with no I/O: given the matrix, every image's record and
 * the time, which images to rebuild now. It is level-triggered: the service runs it
 * after each schedule tick, each request and each build that ends, and the same state
 * always gives the same answer, so a restart or a second pass never adds work.
 *
 * Per image, parents first:
 * - a rebuild in flight stays in flight (the service resumes it);
 * - an image whose parent is building, about to build, or was never published waits:
 *   its inputs include the parent's digest, which is not known yet;
 * - inputs equal to those of the published image, and no --force: nothing to do;
 * - inputs that failed: retried after the backoff, up to `maxAttempts`, then failed
 *   (until the inputs change or someone forces it); the last good image stays;
 * - otherwise a rebuild, if fewer than `maxInFlight` are running.
 */
import { backoffDelay, type Backoff } from '@cairn/contracts';
import type { Matrix } from '../matrix/matrix.js';
import { inputsDigest } from '../matrix/inputs-digest.js';
import type { ImageRecord, ImageState } from './image-record.js';

export interface RebuildPolicy {
  readonly maxInFlight: number;
  /** Attempts per inputs before the image is reported failed. */
  readonly maxAttempts: number;
  readonly backoff: Backoff;
}

export const DEFAULT_POLICY: RebuildPolicy = { maxInFlight: 2, maxAttempts: 3, backoff: { firstMs: 30_000, maxMs: 15 * 60_000 } };

export interface ImageDecision {
  readonly name: string;
  readonly state: ImageState;
  /** The inputs digest now; undefined while it waits for its parent. */
  readonly inputs?: string;
  /** Set when a rebuild starts now: its attempt number for these inputs. */
  readonly rebuild?: { readonly attempt: number; readonly forced: boolean };
  /** Why, in a few words, for the log and `cairn images status`. */
  readonly why: string;
}

export function planRebuilds(
  matrix: Matrix,
  specDigests: ReadonlyMap<string, string>,
  records: ReadonlyMap<string, ImageRecord>,
  now: number,
  policy: RebuildPolicy = DEFAULT_POLICY,
): ImageDecision[] {
  const decisions = new Map<string, ImageDecision>();
  let inFlight = [...records.values()].filter((r) => r.building).length;
  for (const image of matrix.images) {
    const record = records.get(image.name) ?? { name: image.name, history: [] };
    const decide = (d: Omit<ImageDecision, 'name'>) => decisions.set(image.name, { name: image.name, ...d });
    if (record.building) {
      decide({
        state: 'building',
        inputs: record.building.inputs,
        why: `attempt ${record.building.attempt} in flight${record.building.job ? ` (job ${record.building.job})` : ''}`,
      });
      continue;
    }
    let parentDigest: string | undefined;
    if (image.parent !== undefined) {
      const parent = decisions.get(image.parent)!;
      const parentRecord = records.get(image.parent);
      if (parent.state === 'building' || parent.rebuild || !parentRecord?.current) {
        decide({ state: record.current ? 'published' : 'waiting', why: `waiting for ${image.parent}` });
        continue;
      }
      parentDigest = parentRecord.current.digest;
    }
    const inputs = inputsDigest({
      specDigest: specDigests.get(image.name)!,
      ...(parentDigest === undefined ? {} : { parentDigest }),
      ...(image.probe.length > 0 && record.probe ? { packages: record.probe.packages } : {}),
    });
    const forced = record.forceRequested === true;
    if (!forced && record.current?.inputs === inputs) {
      decide({ state: 'published', inputs, why: 'inputs unchanged' });
      continue;
    }
    const failures = record.failures?.inputs === inputs ? record.failures : undefined;
    if (failures && !forced) {
      if (failures.count >= policy.maxAttempts) {
        decide({ state: 'failed', inputs, why: `failed ${failures.count} times: ${failures.last}` });
        continue;
      }
      if (failures.retryAt !== undefined && now < failures.retryAt) {
        decide({ state: 'retrying', inputs, why: `attempt ${failures.count + 1} at ${new Date(failures.retryAt).toISOString()}` });
        continue;
      }
    }
    if (inFlight >= policy.maxInFlight) {
      decide({ state: record.current ? 'published' : 'absent', inputs, why: `queued behind ${inFlight} rebuilds in flight` });
      continue;
    }
    inFlight++;
    const attempt = forced ? 1 : (failures?.count ?? 0) + 1;
    decide({ state: 'building', inputs, rebuild: { attempt, forced }, why: forced ? 'forced' : record.current ? 'inputs changed' : 'never built' });
  }
  return matrix.images.map((image) => decisions.get(image.name)!);
}

/** When the attempt after `count` failures may start. */
export function retryAt(count: number, now: number, policy: RebuildPolicy = DEFAULT_POLICY, random: () => number = Math.random): number | undefined {
  return count >= policy.maxAttempts ? undefined : now + backoffDelay(count - 1, policy.backoff, random);
}
