/**
 * The service shell around the pure decision (core/rebuild-plan.ts): it reads the image
 * records, asks which images to rebuild, claims each in the KV bucket (image-records.ts)
 * and carries the rebuild out as a cluster job; then it looks again, so that children
 * follow a parent that got a new digest. It looks on each image's cron schedule, on
 * `cairn images rebuild`, when a build ends and when a retry is due.
 *
 * A rebuild's life: claimed (the record's `building`, with this replica as holder) ->
 * base image ready (the parent's digest, or a bootstrap published) -> job submitted
 * under an idempotency key stored in the claim -> job ended -> the exported root
 * filesystem published -> the record's `current` replaced, the claim dropped, in one
 * compare-and-set. A process killed anywhere in between is resumed by its restart (same
 * replica ID) or, once the claim is stale, by another replica: the same key finds the
 * same job, and the same root filesystem gives the same digest, so nothing is built or
 * published twice.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cron } from 'croner';
import { printSpec, ROOT_UNIX, type Spec } from '@cairn/spec';
import type { BaseImageStatus } from '@cairn/contracts';
import type { BaseImageMetrics } from './base-image-metrics.js';
import { bootstrapRootfs } from './bootstrap.js';
import type { ClusterJobs } from './cluster-jobs.js';
import type { ImageRecord, InFlight } from './core/image-record.js';
import { planRebuilds, retryAt, type ImageDecision, type RebuildPolicy } from './core/rebuild-plan.js';
import type { ImageRecords } from './image-records.js';
import { probeCommand, probePackages, sha256, specDigests } from './matrix/inputs-digest.js';
import type { Matrix, MatrixImage } from './matrix/matrix.js';
import { failedEvent, publishedEvents, type ImageWebhooks } from './image-webhooks.js';
import type { RegistryPublisher } from './registry-publisher.js';

/** Where a build job leaves the image's root filesystem for the service to publish. */
export const EXPORT_PATH = '/tmp/.cairn-base-image.tar';
// Every top-level entry but the sandbox's mounts and /tmp (where the tar is written);
// busybox's tar has no --exclude. The publisher makes those four directories again.
const EXPORT_COMMAND = `cd / && tar -cf ${EXPORT_PATH} $(ls -A / | grep -vxE 'proc|sys|dev|tmp')`;

export interface RebuilderOptions {
  readonly policy: RebuildPolicy;
  /** This replica's name: a restarted process with the same name resumes its own claims at once. */
  readonly replica: string;
  /** A claim not renewed for this long belongs to a replica that is gone. */
  readonly claimTtlMs: number;
  /** Digests older than this (and not current) are deleted from the registry. */
  readonly retentionMs: number;
  /** Run the cron schedules (off in tests that drive the passes themselves). */
  readonly schedules: boolean;
  /** Told of every new digest and every failed build (CAIRN_IMAGE_WEBHOOKS); stored with the change, sent in the background. */
  readonly webhooks?: ImageWebhooks;
  readonly log: (message: string) => void;
}

export class Rebuilder {
  private readonly specDigests: Map<string, string>;
  private readonly crons: Cron[] = [];
  private readonly running = new Set<string>();
  private decisions: ImageDecision[] = [];
  private passChain: Promise<void> = Promise.resolve();
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly matrix: Matrix,
    private readonly records: ImageRecords,
    private readonly jobs: ClusterJobs,
    private readonly publisher: RegistryPublisher,
    private readonly metrics: BaseImageMetrics,
    private readonly options: RebuilderOptions,
  ) {
    this.specDigests = specDigests(matrix);
  }

  start(): void {
    if (this.options.schedules) {
      for (const image of this.matrix.images) {
        this.crons.push(new Cron(image.schedule, { timezone: 'UTC', protect: true }, () => void this.scheduled(image)));
      }
    }
    void this.pass();
  }

  stop(): void {
    this.stopped = true;
    for (const cron of this.crons) cron.stop();
    clearTimeout(this.retryTimer);
    void this.options.webhooks?.stop();
  }

  /** One look at every image, after any pass already running (passes never overlap in a process). */
  pass(): Promise<void> {
    this.passChain = this.passChain
      .then(() => this.passNow())
      .catch((e: unknown) => this.options.log(`pass failed: ${e instanceof Error ? e.message : String(e)}`));
    return this.passChain;
  }

  /** A schedule fired: probe what the image would install, then look. */
  async scheduled(image: MatrixImage): Promise<void> {
    await this.probe(image).catch((e: unknown) =>
      this.options.log(`${image.name}: probe failed, its inputs are taken as they were: ${e instanceof Error ? e.message : String(e)}`),
    );
    await this.pass();
  }

  /**
   * `cairn images rebuild`: look now (forced images first marked so), answer with where
   * each image stands, then probe the named images in the background and look again: a
   * probe is a cluster job, longer than a request should wait.
   */
  async rebuild(names: readonly string[], force: boolean): Promise<BaseImageStatus[]> {
    const images = names.map((name) => this.image(name));
    if (force) for (const image of images) await this.records.update(image.name, (r) => (r.forceRequested ? undefined : { ...r, forceRequested: true }));
    await this.pass();
    if (images.some((i) => i.probe.length > 0)) void Promise.all(images.map((image) => this.scheduled(image)));
    return this.status();
  }

  names(): string[] {
    return this.matrix.images.map((i) => i.name);
  }

  image(name: string): MatrixImage {
    const image = this.matrix.images.find((i) => i.name === name);
    if (!image) throw new Error(`${name} is not an image of the matrix (${this.matrix.images.map((i) => i.name).join(', ')})`);
    return image;
  }

  /** Every image as `cairn images status` shows it. */
  async status(): Promise<BaseImageStatus[]> {
    const records = await this.records.all(this.matrix.images.map((i) => i.name));
    return this.matrix.images.map((image) => {
      const record = records.get(image.name)!;
      const decision = this.decisions.find((d) => d.name === image.name);
      const next = this.crons.find((_, i) => this.matrix.images[i] === image)?.nextRun();
      return {
        name: image.name,
        tags: [...image.tags],
        state: decision?.state ?? (record.current ? 'published' : 'absent'),
        why: decision?.why ?? 'not looked at yet',
        ...(record.current ? { digest: record.current.digest, publishedAt: record.current.at } : {}),
        ...(decision?.inputs ? { inputs: decision.inputs } : {}),
        ...(record.building?.job ? { job: record.building.job } : {}),
        ...(next ? { nextRunAt: next.getTime() } : {}),
        schedule: image.schedule,
        ...(record.failures
          ? {
              failure: {
                reason: record.failures.last,
                at: record.failures.at,
                count: record.failures.count,
                ...(record.failures.retryAt === undefined ? {} : { retryAt: record.failures.retryAt }),
                ...(record.failures.job ? { job: record.failures.job } : {}),
              },
            }
          : {}),
        history: record.history.map((h) => ({ digest: h.digest, at: h.at, ...(h.job ? { job: h.job } : {}) })),
      };
    });
  }

  private async passNow(): Promise<void> {
    if (this.stopped) return;
    const now = Date.now();
    const records = await this.records.all(this.matrix.images.map((i) => i.name));
    this.decisions = planRebuilds(this.matrix, this.specDigests, records, now, this.options.policy);
    for (const decision of this.decisions) {
      this.metrics.setState(decision.name, decision.state);
      const record = records.get(decision.name)!;
      if (record.webhooks?.length)
        await this.pendingWebhooks(decision.name, record).catch((e: unknown) => this.options.log(`${decision.name}: webhook deliveries: ${String(e)}`));
      if (record.building) this.resume(this.image(decision.name), record.building);
      else if (decision.rebuild) await this.claim(this.image(decision.name), decision, now);
    }
    this.armRetry(records);
  }

  /** Webhook deliveries stored and not made (a restart's, or a gone replica's): sent again; dropped when no webhook is set any more. */
  private async pendingWebhooks(name: string, record: ImageRecord): Promise<void> {
    if (this.options.webhooks) {
      this.options.webhooks.deliver(this.records, name, record.webhooks!);
      return;
    }
    const dropped = await this.records.update(name, (r) => {
      if (!r.webhooks) return undefined;
      const { webhooks: _dropped, ...rest } = r;
      return rest;
    });
    if (dropped) this.options.log(`${name}: ${record.webhooks!.length} webhook deliveries dropped: CAIRN_IMAGE_WEBHOOKS is not set any more`);
  }

  /** The earliest retry due wakes a pass (a failed build is retried without anyone asking). */
  private armRetry(records: ReadonlyMap<string, ImageRecord>): void {
    clearTimeout(this.retryTimer);
    const due = [...records.values()].flatMap((r) => (r.failures?.retryAt === undefined ? [] : [r.failures.retryAt]));
    if (due.length === 0 || this.stopped) return;
    this.retryTimer = setTimeout(() => void this.pass(), Math.max(0, Math.min(...due) - Date.now()) + 10);
    this.retryTimer.unref();
  }

  private async claim(image: MatrixImage, decision: ImageDecision, now: number): Promise<void> {
    const building: InFlight = {
      inputs: decision.inputs!,
      attempt: decision.rebuild!.attempt,
      startedAt: now,
      forced: decision.rebuild!.forced,
      holder: this.options.replica,
      renewedAt: now,
    };
    const claimed = await this.records.update(image.name, (r) => (r.building ? undefined : { ...r, building, forceRequested: false }));
    if (!claimed) return; // another replica claimed it first
    this.options.log(`${image.name}: rebuilding (${decision.why}), attempt ${building.attempt}`);
    this.run(image, building);
  }

  /** A claim found in the bucket: ours from before a restart, or a gone replica's. */
  private resume(image: MatrixImage, building: InFlight): void {
    if (this.running.has(image.name)) return;
    const stale = Date.now() - (building.renewedAt ?? building.startedAt) > this.options.claimTtlMs;
    if (building.holder !== this.options.replica && !stale) return;
    this.options.log(
      `${image.name}: resuming the rebuild claimed at ${new Date(building.startedAt).toISOString()}${building.job ? ` (job ${building.job})` : ''}`,
    );
    this.run(image, { ...building, holder: this.options.replica });
  }

  private run(image: MatrixImage, building: InFlight): void {
    this.running.add(image.name);
    // Renewed all along (a debootstrap takes minutes): a claim goes stale only when its replica is gone.
    const renewal = setInterval(
      () => void this.renew(image, building).catch((e: unknown) => this.options.log(`${image.name}: cannot renew the claim: ${String(e)}`)),
      this.options.claimTtlMs / 3,
    );
    void this.build(image, building)
      .then(
        (digest) => this.published(image, building, digest),
        (e: unknown) => this.failed(image, building, e instanceof Error ? e.message : String(e)),
      )
      .catch((e: unknown) => this.options.log(`${image.name}: cannot record the rebuild's end: ${String(e)}`))
      .finally(() => {
        clearInterval(renewal);
        this.running.delete(image.name);
        if (!this.stopped) void this.pass();
      });
  }

  /** The claim still is this rebuild's (same start), else the work was taken over. */
  private ours(record: ImageRecord, building: InFlight): boolean {
    return record.building?.startedAt === building.startedAt;
  }

  private async renew(image: MatrixImage, building: InFlight, fields: Partial<InFlight> = {}): Promise<void> {
    const written = await this.records.update(image.name, (r) =>
      this.ours(r, building) ? { ...r, building: { ...r.building!, ...fields, holder: this.options.replica, renewedAt: Date.now() } } : undefined,
    );
    if (!written) throw new Error('the rebuild was taken over by another replica');
  }

  private async build(image: MatrixImage, building: InFlight): Promise<string> {
    const base = image.parent === undefined ? await this.bootstrap(image) : await this.parentRef(image.parent);
    let job = building.job;
    if (job === undefined) {
      const spec: Spec = {
        childBuilds: [],
        from: base,
        ops: [
          ...image.spec.ops,
          { op: 'user', user: ROOT_UNIX },
          { op: 'shell', args: ['/bin/sh', '-c'] },
          { op: 'run', shell: EXPORT_COMMAND, cache: [], network: [], secrets: [] },
        ],
      };
      job = await this.jobs.submit({
        pool: image.pools[0]!,
        name: `base-image ${image.name}`,
        spec: printSpec(spec),
        // Stored in the claim before the submission: a restart submitting again gets this job back.
        idempotencyKey: `base-image.${image.name.replace(/[^A-Za-z0-9._-]/g, '_')}.${building.startedAt}`,
        outputs: [EXPORT_PATH],
        cacheHint: `base-image:${image.name}`,
      });
      this.metrics.jobs.inc({ kind: 'build' });
      await this.renew(image, building, { job });
      this.options.log(`${image.name}: job ${job} on pool ${image.pools[0]}`);
    }
    const status = await this.jobs.finished(job);
    if (status.state !== 'succeeded') throw new Error(`job ${job} ${status.state}${status.failure ? `: ${status.failure}` : ''}`);
    const result = await this.jobs.result(status);
    const dir = await mkdtemp(join(tmpdir(), 'cairn-base-export-'));
    try {
      const tar = join(dir, 'rootfs.tar');
      await this.jobs.download(result, EXPORT_PATH, tar);
      return await this.publisher.publishTar(image.repository, image.tags, tar, image.platforms);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async parentRef(parent: string): Promise<string> {
    const { record } = await this.records.get(parent);
    if (!record.current) throw new Error(`its parent ${parent} is not published`);
    return this.publisher.pinned(this.image(parent).repository, record.current.digest);
  }

  /** The image's bootstrap published under `bootstrap-<digest of its parameters>`; pinned by digest. */
  private async bootstrap(image: MatrixImage): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-bootstrap-'));
    try {
      const tag = `bootstrap-${sha256(JSON.stringify(image.bootstrap)).slice(7, 19)}`;
      const digest = await bootstrapRootfs(image.bootstrap!, dir, (line) => this.options.log(`${image.name}: ${line}`)).then(() =>
        this.publisher.publishRootfs(image.repository, [tag], dir, image.platforms),
      );
      return this.publisher.pinned(image.repository, digest);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async published(image: MatrixImage, building: InFlight, digest: string): Promise<void> {
    const now = Date.now();
    let expired: string[] = [];
    let previous: string | undefined;
    const webhooks = this.options.webhooks;
    const written = await this.records.update(image.name, (r) => {
      if (!this.ours(r, building)) return undefined;
      previous = r.current?.digest;
      // The job is in the stored claim (written once submitted), not in the claim this rebuild began with.
      const job = r.building!.job ?? building.job;
      const published = { digest, inputs: building.inputs, at: now, ...(job ? { job } : {}), buildMs: now - building.startedAt };
      const history = [published, ...r.history.filter((h) => h.digest !== digest)];
      const keep = history.filter((h, i) => i === 0 || now - h.at < this.options.retentionMs);
      expired = history.filter((h) => !keep.includes(h)).map((h) => h.digest);
      // The webhooks' deliveries are stored with the publish: none is lost, whenever the process dies.
      const told = webhooks && digest !== previous ? webhooks.outbox(publishedEvents(image, digest, previous, job, now)) : [];
      const { building: _done, failures: _cleared, ...rest } = r;
      return { ...rest, current: published, history: keep, ...(told.length ? { webhooks: [...(r.webhooks ?? []), ...told] } : {}) };
    });
    if (!written) return;
    this.metrics.published(image.name, now);
    this.metrics.built(image.name, 'published', now - building.startedAt);
    this.options.log(`${image.name}: published ${digest} as ${image.tags.map((t) => `${image.repository}:${t}`).join(', ')}`);
    if (webhooks && written.webhooks) webhooks.deliver(this.records, image.name, written.webhooks);
    for (const old of expired) {
      if (!(await this.publisher.prune(image.repository, old).catch(() => false)))
        this.options.log(`${image.name}: the registry kept ${old} (deletes not enabled there)`);
    }
  }

  private async failed(image: MatrixImage, building: InFlight, reason: string): Promise<void> {
    const now = Date.now();
    const webhooks = this.options.webhooks;
    const written = await this.records.update(image.name, (r) => {
      if (!this.ours(r, building)) return undefined;
      const count = (r.failures?.inputs === building.inputs ? r.failures.count : 0) + 1;
      const next = retryAt(count, now, this.options.policy);
      const job = r.building!.job ?? building.job;
      const { building: _done, ...rest } = r;
      const failures = { inputs: building.inputs, count, last: reason, at: now, ...(next === undefined ? {} : { retryAt: next }), ...(job ? { job } : {}) };
      const told = webhooks ? webhooks.outbox([failedEvent(image, failures, r.current?.digest)]) : [];
      return { ...rest, failures, ...(told.length ? { webhooks: [...(r.webhooks ?? []), ...told] } : {}) };
    });
    if (!written) return;
    this.metrics.built(image.name, 'failed', now - building.startedAt);
    this.options.log(
      `${image.name}: rebuild failed (${reason}); ${written.failures!.retryAt === undefined ? 'no retries left: reported failed' : `retrying at ${new Date(written.failures!.retryAt).toISOString()}`}; the last good image stays published`,
    );
    if (webhooks && written.webhooks) webhooks.deliver(this.records, image.name, written.webhooks);
  }

  /** Runs the image's probe job in its current image and stores the packages it resolved. */
  private async probe(image: MatrixImage): Promise<void> {
    if (image.probe.length === 0) return;
    const { record } = await this.records.get(image.name);
    if (!record.current) return; // never built: it is rebuilt anyway
    const at = Date.now();
    // The time in the spec makes each probe a new step: it must read the archive now, not from cache.
    const spec: Spec = {
      childBuilds: [],
      from: this.publisher.pinned(image.repository, record.current.digest),
      ops: [
        { op: 'env', name: 'CAIRN_PROBE_AT', value: new Date(at).toISOString() },
        { op: 'run', shell: probeCommand(image.probe), cache: [], network: ['host'], secrets: [] },
      ],
    };
    const job = await this.jobs.submit({
      pool: image.pools[0]!,
      name: `base-image probe ${image.name}`,
      spec: printSpec(spec),
      idempotencyKey: `probe.${image.name.replace(/[^A-Za-z0-9._-]/g, '_')}.${at}`,
      timeoutSeconds: 600,
    });
    this.metrics.jobs.inc({ kind: 'probe' });
    const status = await this.jobs.finished(job);
    if (status.state !== 'succeeded') throw new Error(`probe job ${job} ${status.state}${status.failure ? `: ${status.failure}` : ''}`);
    const packages = probePackages(await this.jobs.log(job));
    await this.records.update(image.name, (r) => ({ ...r, probe: { packages, at } }));
  }
}
