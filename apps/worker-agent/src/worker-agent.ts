import { openConfiguredBuilder } from '@cairn/builder';
import { startService, type RunningService } from '@cairn/service-kit';
import { AgentModule } from './agent.module.js';
import { AgentService } from './agent.service.js';
import { agentConfigFromEnv, type AgentConfig } from './config.js';

export interface RunningAgent {
  readonly service: RunningService;
  readonly agent: AgentService;
  readonly config: AgentConfig;
  /** Stop taking jobs, finish the running ones (their outcomes answered), close. */
  drain(): Promise<void>;
  /** Close without waiting: running jobs are cancelled and their outcomes may be lost. */
  abort(): Promise<void>;
  /** Stop the running builds and hand them back to the scheduler (queued again), then close. */
  release(reason: string): Promise<void>;
}

/**
 * Starts a worker-agent from `env`: its own settings (config.ts), the engine from the
 * same settings `cairn build` uses (CAIRN_STORE, CAIRN_FETCHER, CAIRN_SANDBOX, the
 * machine config), and the bus (CAIRN_NATS...).
 */
export async function startWorkerAgent(env: NodeJS.ProcessEnv = process.env): Promise<RunningAgent> {
  const config = agentConfigFromEnv(env);
  const builder = await openConfiguredBuilder({}, env);
  let service: RunningService;
  try {
    service = await startService({
      name: `worker-agent-${config.worker}`,
      module: (bus) => AgentModule.forRoot(bus, config, builder),
      env,
      logFields: { worker: config.worker, pool: config.pool },
    });
  } catch (e) {
    builder.close();
    throw e;
  }
  const agent = service.app.get(AgentService);
  let closing: Promise<void> | undefined;
  // Each way of stopping acts at once, even while another is under way (a drain that
  // is then told to cancel or to hand back its builds); the service closes once.
  const close = async (stopping: Promise<void>) => {
    await stopping;
    await (closing ??= (async () => {
      await service.close();
      builder.close();
    })());
  };
  return {
    service,
    agent,
    config,
    drain: () => close(agent.drain()),
    abort: () => close(agent.abort()),
    release: (reason) => close(agent.release(reason)),
  };
}
