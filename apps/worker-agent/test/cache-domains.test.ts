import { describe, expect, it } from 'vitest';
import { agentConfigFromEnv, AgentConfigError } from '../src/index.js';

const domains = (text?: string) => agentConfigFromEnv({ CAIRN_WORKER_ID: 'w1', ...(text === undefined ? {} : { CAIRN_CACHE_DOMAINS: text }) }).cacheDomains;

describe('CAIRN_CACHE_DOMAINS', () => {
  it('gives every client a domain of its own by default', () => {
    const d = domains();
    expect([d.of('alice'), d.of('bob')]).toEqual(['client-alice', 'client-bob']);
  });

  it('lets the clients named in a domain share it, and no one else', () => {
    const d = domains('team-a=alice,bob; team-b=carol\nsolo=dave');
    expect(['alice', 'bob', 'carol', 'dave', 'erin'].map((c) => d.of(c))).toEqual([
      'domain-team-a',
      'domain-team-a',
      'domain-team-b',
      'domain-solo',
      'client-erin',
    ]);
  });

  it("never gives a domain named like a client that client's caches", () => {
    const d = domains('bob=alice');
    expect(d.of('alice')).not.toBe(d.of('bob'));
  });

  it('takes * for every client named nowhere else', () => {
    const d = domains('all=* private=erin');
    expect(['alice', 'bob', 'erin'].map((c) => d.of(c))).toEqual(['domain-all', 'domain-all', 'domain-private']);
  });

  it.each([
    ['team-a', /"team-a" is not DOMAIN=CLIENT/],
    ['team a=alice', /"team" is not DOMAIN=CLIENT/],
    ['te.am=alice', /domain "te.am"/],
    ['t=alice,', /client "" in "t=alice,"/],
    ['t=alice u=alice', /client "alice" is in two domains, "t" and "u"/],
    ['t=* u=*', /\* is in two domains/],
    ['t=a t=b', /domain "t" is named twice/],
  ])('refuses %j', (text, message) => {
    expect(() => domains(text)).toThrow(AgentConfigError);
    expect(() => domains(text)).toThrow(message);
  });
});
