import { TOKEN } from './subjects.js';

/**
 * Which trust domain a job's caches belong to on a worker. By default every client is
 * a domain of its own: client bob's `(cache (npm ...))` is not client alice's `npm`, and
 * a step that mounts a cache is not replayed for another client (engine.ts
 * `cacheDomain`). An operator lets a pool of clients that trust each other share caches
 * by naming them in one domain (the worker's `CAIRN_CACHE_DOMAINS`, or `cairn up
 * --cache-domain`): `team-a=alice,bob`, several separated by `;` or spaces; `*` as a
 * member stands for every client not named elsewhere (`shared=*` is OBuilder's sharing
 * by all).
 *
 * The names given to the engine are `client-<ID>` and `domain-<name>`, so that an
 * operator's domain never shares caches with a client of the same name outside it.
 */
export class CacheDomains {
  private constructor(
    private readonly members: ReadonlyMap<string, string>,
    private readonly others: string | undefined,
  ) {}

  /** Parses `CAIRN_CACHE_DOMAINS`; throws an Error naming what is wrong. */
  static parse(text: string | undefined): CacheDomains {
    const members = new Map<string, string>();
    let others: string | undefined;
    const domains = new Set<string>();
    for (const entry of (text ?? '').split(/[;\s]+/).filter((e) => e !== '')) {
      const m = /^([^=]*)=(.*)$/.exec(entry);
      if (!m) throw new Error(`"${entry}" is not DOMAIN=CLIENT,CLIENT...`);
      const [, domain, list] = m as unknown as [string, string, string];
      if (!TOKEN.test(domain)) throw new Error(`domain "${domain}" in "${entry}" must be 1-64 letters, digits, '_' or '-'`);
      if (domains.has(domain)) throw new Error(`domain "${domain}" is named twice`);
      domains.add(domain);
      const clients = list.split(',');
      for (const client of clients) {
        if (client !== '*' && !TOKEN.test(client))
          throw new Error(`client "${client}" in "${entry}" must be a client ID (1-64 letters, digits, '_' or '-') or *`);
        const earlier = client === '*' ? others : members.get(client);
        if (earlier !== undefined) throw new Error(`${client === '*' ? '*' : `client "${client}"`} is in two domains, "${earlier}" and "${domain}"`);
        if (client === '*') others = domain;
        else members.set(client, domain);
      }
    }
    return new CacheDomains(members, others);
  }

  /** The engine's cache domain for a job of `client`. */
  of(client: string): string {
    const domain = this.members.get(client) ?? this.others;
    return domain === undefined ? `client-${client}` : `domain-${domain}`;
  }
}
