/**
 * The durable consumer on CAIRN_RESULTS. Replicas share one durable, so each result
 * goes to one of them; a result is acked only once stored (or found already stored), so
 * a crash at any point means the result comes again, and storing is idempotent on the
 * job ID. A message that is not a BuildResult is terminated (it would never parse) and
 * logged with its stream sequence.
 */
import { BuildResult, streams, subjects } from '@cairn/contracts';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import type { LoggerService } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ResultsMetrics } from '../ops/results-metrics.js';
import type { Ingest } from './ingest.js';

const NS = 1_000_000;
/** After this many deliveries an artifact still missing from the object store is given up (noted on the build). */
const MAX_ATTEMPTS = 8;
const PARALLEL = 8;

export class ResultConsumer {
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private backlogTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly bus: NatsConnection,
    private readonly ingest: Ingest,
    private readonly durable: string,
    private readonly logger: Pick<LoggerService, 'log' | 'warn' | 'error'>,
    private readonly metrics?: ResultsMetrics,
    /** A result whose store died mid-way is delivered again after this long. */
    private readonly ackWaitMs = 30_000,
  ) {}

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
    this.messages = await consumer.consume({ max_messages: PARALLEL * 4 });
    this.loop = this.run(this.messages);
    const refreshBacklog = async () => {
      const info = await consumer.info().catch(() => undefined);
      if (info) this.metrics?.backlog.set(info.num_pending + info.num_ack_pending);
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

  private async run(messages: ConsumerMessages): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    for await (const m of messages) {
      if (this.stopped) break;
      const work = this.handle(m).finally(() => inFlight.delete(work));
      inFlight.add(work);
      if (inFlight.size >= PARALLEL) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
  }

  private async handle(m: JsMsg): Promise<void> {
    let data: unknown;
    try {
      data = m.json();
    } catch {
      data = undefined;
    }
    const parsed = BuildResult.safeParse(data);
    if (!parsed.success) {
      const problems = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; ');
      this.logger.error(`result at ${streams.results.name} sequence ${m.seq} (${m.subject}) is not a BuildResult, dropped: ${problems}`);
      m.term(`not a BuildResult: ${problems}`);
      return;
    }
    const result = parsed.data;
    const claim = setInterval(() => m.working(), Math.max(250, this.ackWaitMs / 3));
    try {
      await this.ingest.fromCluster(result, { lastAttempt: m.info.deliveryCount >= MAX_ATTEMPTS, working: () => m.working() });
      clearInterval(claim);
      await m.ackAck().catch(() => m.ack());
    } catch (e) {
      clearInterval(claim);
      this.metrics?.ingestFailures.inc({ source: 'cluster' });
      const delay = Math.min(60_000, 500 * 2 ** Math.min(m.info.deliveryCount, 7));
      this.logger.warn(`result ${result.job} (delivery ${m.info.deliveryCount}) not stored yet, retrying in ${delay} ms: ${e instanceof Error ? e.message : String(e)}`);
      m.nak(delay);
    }
  }
}
