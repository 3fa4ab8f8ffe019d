import { describe, expect, it } from 'vitest';
import { agentConfigFromEnv, AgentConfigError } from '../src/index.js';

const config = (env: Record<string, string>) => agentConfigFromEnv({ CAIRN_WORKER_ID: 'w1', ...env });

describe('worker-agent settings: sizes', () => {
  it('reads sizes as the step limits are read (binary units, optional b or ib)', () => {
    const c = config({ CAIRN_PRUNE_BELOW: '20g', CAIRN_LOG_MEMORY_LIMIT: '512KiB', CAIRN_LOG_SPOOL_LIMIT: '1048576' });
    expect([c.pruneBelowBytes, c.logMemoryBytes, c.logSpoolBytes]).toEqual([20 * 2 ** 30, 512 * 2 ** 10, 2 ** 20]);
  });

  it('keeps the defaults for unset or empty variables', () => {
    const c = config({ CAIRN_PRUNE_BELOW: '' });
    expect([c.pruneBelowBytes, c.logMemoryBytes, c.logSpoolBytes]).toEqual([0, 8 * 2 ** 20, 256 * 2 ** 20]);
  });

  it('names the variable in the error of a size it cannot read', () => {
    expect(() => config({ CAIRN_PRUNE_BELOW: 'lots' })).toThrow(new AgentConfigError('CAIRN_PRUNE_BELOW: "lots" is not a size (e.g. 512m, 4g)'));
    expect(() => config({ CAIRN_LOG_SPOOL_LIMIT: '5x' })).toThrow(AgentConfigError);
    expect(() => config({ CAIRN_LOG_MEMORY_LIMIT: '0' })).toThrow('CAIRN_LOG_MEMORY_LIMIT must be more than 0 bytes, not "0"');
  });
});
