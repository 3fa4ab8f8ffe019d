/**
 * The durable consumer on CAIRN_RESULTS. Replicas share one durable, so each result
 * goes to one of them; a result is acked only once stored (or found already stored), so
 * a crash at any point means the result comes again, and storing is idempotent on the
 * job ID. A message that is not a BuildResult is terminated (it would never parse) and
 * logged with its stream sequence.
 */
import { backoffDelay, BuildResult, streams, subjects, traceOf } from '@cairn/contracts';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { Inject, Injectable, type LoggerService } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUS } from '@cairn/service-kit';
import type { ResultsConfig } from '../config.js';
import { ResultsMetrics } from '../ops/results-metrics.js';
import { LOGGER, CONFIG } from '../tokens.js';
import { Ingest, jobFields } from './ingest.js';

const NS = 1_000_000;
/** After this many deliveries an artifact still missing from the object store is given up (noted on the build). */
const MAX_ATTEMPTS = 8;
/** Results stored per batch (one transaction, blobs made durable together). */
const BATCH = 32;
/** Batches worked on at once: one copying while another commits. */
const LANES = 2;
/** A result not stored yet comes again after 1 s, then 2, 4, ... up to a minute (less up to half, the jitter). */
const RETRY = { firstMs: 500, maxMs: 60_000 };

@Injectable()
export class ResultConsumer {
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private backlogTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  private readonly durable: string;
  /** A result whose store died mid-way is delivered again after this long. */
  private readonly ackWaitMs: number;

  constructor(
    @Inject(BUS) private readonly bus: NatsConnection,
    @Inject(Ingest) private readonly ingest: Ingest,
    @Inject(CONFIG) settings: Pick<ResultsConfig, 'durable' | 'ackWaitMs'>,
    @Inject(LOGGER) private readonly logger: Pick<LoggerService, 'log' | 'warn' | 'error'>,
    @Inject(ResultsMetrics) private readonly metrics: ResultsMetrics,
  ) {
    this.durable = settings.durable;
    this.ackWaitMs = settings.ackWaitMs;
  }

  async start(): Promise<void> {
    const jsm = await jetstreamManager(this.bus);
    const config = {
      durable_name: this.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: subjects.resultsAll,
      // Short, so a crashed store's results come back soon; a long copy keeps its claim with `working()`.
      ack_wait: this.ackWaitMs * NS,
      max_ack_pending: 256,
    };
    try {
      await jsm.consumers.info(streams.results.name, this.durable);
      await jsm.consumers.update(streams.results.name, this.durable, { ack_wait: config.ack_wait, max_ack_pending: config.max_ack_pending });
    } catch {
      try {
        await jsm.consumers.add(streams.results.name, config);
      } catch (e) {
        if (!String(e).includes('already')) throw new Error(`creating durable consumer ${this.durable} on ${streams.results.name}: ${String(e)}`, { cause: e });
      }
    }
    const consumer = await jetstream(this.bus).consumers.get(streams.results.name, this.durable);
    this.messages = await consumer.consume({ max_messages: BATCH * LANES * 2 });
    this.loop = this.run(this.messages);
    const refreshBacklog = async () => {
      const info = await consumer.info().catch(() => undefined);
      if (info) this.metrics.backlog.set(info.num_pending + info.num_ack_pending);
    };
    void refreshBacklog();
    this.backlogTimer = setInterval(() => void refreshBacklog(), 5000);
    this.backlogTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.backlogTimer);
    await this.messages?.close().catch(() => undefined);
    await this.loop;
  }

  /**
   * Results are taken in batches of what has arrived, up to BATCH, so that a burst is
   * stored a batch per transaction and fsync group while a single result still goes
   * through at once; LANES batches are worked on at a time.
   */
  private async run(messages: ConsumerMessages): Promise<void> {
    const waiting: JsMsg[] = [];
    const lanes = new Set<Promise<void>>();
    const lane = async () => {
      while (waiting.length > 0) await this.handleBatch(waiting.splice(0, BATCH));
    };
    for await (const m of messages) {
      if (this.stopped) break;
      waiting.push(m);
      if (lanes.size < LANES) {
        const work = lane().finally(() => lanes.delete(work));
        lanes.add(work);
      }
      // Enough waiting for every lane's next batch: let the client hold the rest.
      while (waiting.length >= BATCH * LANES && lanes.size > 0) await Promise.race(lanes);
    }
    await Promise.all(lanes);
  }

  private async handleBatch(batch: readonly JsMsg[]): Promise<void> {
    const deliveries: { m: JsMsg; result: BuildResult }[] = [];
    for (const m of batch) {
      const result = this.parse(m);
      if (result) deliveries.push({ m, result });
    }
    if (deliveries.length === 0) return;
    const working = () => {
      for (const { m } of deliveries) m.working();
    };
    const claim = setInterval(working, Math.max(250, this.ackWaitMs / 3));
    let settled: PromiseSettledResult<unknown>[];
    try {
      settled = await this.ingest.fromClusterBatch(
        deliveries.map(({ m, result }) => {
          const trace = traceOf(m.headers);
          return { result, lastAttempt: m.info.deliveryCount >= MAX_ATTEMPTS, ...(trace === undefined ? {} : { trace }) };
        }),
        working,
      );
    } catch (e) {
      settled = deliveries.map(() => ({ status: 'rejected', reason: e }));
    } finally {
      clearInterval(claim);
    }
    await Promise.all(
      deliveries.map(async ({ m, result }, i) => {
        const outcome = settled[i]!;
        if (outcome.status === 'fulfilled') {
          await m.ackAck().catch(() => m.ack());
          return;
        }
        this.metrics.ingestFailures.inc({ source: 'cluster' });
        // Redelivered by the stream after a jittered backoff, so results failed by one outage do not all come back at once.
        const delay = Math.round(backoffDelay(m.info.deliveryCount, RETRY));
        const reason: unknown = outcome.reason;
        this.logger.warn(
          `result ${result.job} (delivery ${m.info.deliveryCount}) not stored yet, retrying in ${delay} ms: ${reason instanceof Error ? reason.message : String(reason)}`,
          jobFields(result, traceOf(m.headers)),
        );
        m.nak(delay);
      }),
    );
  }

  /** The message's BuildResult; a message that is not one is terminated (it would never parse). */
  private parse(m: JsMsg): BuildResult | undefined {
    let data: unknown;
    try {
      data = m.json();
    } catch {
      data = undefined;
    }
    const parsed = BuildResult.safeParse(data);
    if (parsed.success) return parsed.data;
    const problems = parsed.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`)
      .join('; ');
    this.logger.error(`result at ${streams.results.name} sequence ${m.seq} (${m.subject}) is not a BuildResult, dropped: ${problems}`);
    m.term(`not a BuildResult: ${problems}`);
    return undefined;
  }
}
