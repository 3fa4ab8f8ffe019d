export { startWorkerAgent, type RunningAgent } from './worker-agent.js';
export { AgentService } from './agent.service.js';
export { AgentModule } from './agent.module.js';
export { agentConfigFromEnv, defaultPlatform, AgentConfigError, type AgentConfig } from './config.js';
export { Redactor, REDACTED } from './redactor.js';
export { ContextError, fetchContext } from './context-fetch.js';
export { ArtifactError, exportArtifacts } from './artifacts.js';
