/**
 * Users, roles and API tokens. A token is 32 random bytes shown once when made; the
 * database keeps only its SHA-256, so a leaked database or log line gives no access.
 * Lookups are cached briefly so that pages read with a token do not cost a query each.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Inject, Injectable } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { exclusiveWrite } from '../db/exclusive-write.js';
import { TokenEntity } from '../db/token.entity.js';
import { UserEntity } from '../db/user.entity.js';
import type { TokenId, UserId } from '../ids.js';
import { DATA_SOURCE } from '../tokens.js';
import { isRole, ROLES, type Role } from '../roles.js';

export interface Principal {
  readonly user: string;
  readonly userId: UserId;
  readonly role: Role;
}

const PREFIX = 'cairn_rs_';
const CACHE_MS = 30_000;

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A token asked for an existing user with another role, without asking to change the role. */
export class RoleConflictError extends Error {
  override readonly name = 'RoleConflictError';
  constructor(
    readonly user: string,
    readonly role: Role,
    readonly wanted: Role,
  ) {
    super(`user ${user} has role ${role}, not ${wanted}; ask for the change explicitly (changeRole) to give it ${wanted}`);
  }
}

@Injectable()
export class TokenService {
  private readonly cache = new Map<string, { at: number; principal: Principal | undefined }>();

  constructor(@Inject(DATA_SOURCE) private readonly ds: DataSource) {}

  /**
   * Makes a user (or finds it) and gives it a new token; the token is returned once and
   * never stored. An existing user keeps its role unless `changeRole` says to change it:
   * issuing a token must not quietly promote (or demote) someone, and every token the
   * user already holds would follow.
   */
  async issue(user: string, role: Role, label = 'token', options: { changeRole?: boolean } = {}): Promise<{ token: string; id: TokenId }> {
    const token = PREFIX + randomBytes(32).toString('base64url');
    const id = await this.addHash(user, role, hashToken(token), label, options);
    return { token, id };
  }

  async addHash(user: string, role: Role, hash: string, label: string, options: { changeRole?: boolean } = {}): Promise<TokenId> {
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new Error(`token hash for ${user}: expected 64 hex digits`);
    return exclusiveWrite(this.ds, () =>
      this.ds.transaction(async (em) => {
        const users = em.getRepository(UserEntity);
        let found = await users.findOne({ where: { name: user } });
        if (!found) found = await users.save(users.create({ name: user, role, createdAt: Date.now() }));
        else if (found.role !== role) {
          if (!options.changeRole && isRole(found.role)) throw new RoleConflictError(user, found.role, role);
          await users.update({ id: found.id }, { role });
        }
        const tokens = em.getRepository(TokenEntity);
        const existing = await tokens.findOne({ where: { hash } });
        if (existing) return existing.id;
        const saved = await tokens.save(tokens.create({ userId: found.id, hash, label, createdAt: Date.now(), revokedAt: null }));
        return saved.id;
      }),
    ).finally(() => this.cache.clear());
  }

  /** Revokes a token (false: no such token). Takes effect at once: the lookup cache is emptied. */
  async revoke(id: TokenId): Promise<boolean> {
    const result = await exclusiveWrite(this.ds, () => this.ds.getRepository(TokenEntity).update({ id }, { revokedAt: Date.now() }));
    this.cache.clear();
    return (result.affected ?? 0) > 0;
  }

  /**
   * Loads a tokens file: one `<user> <role> sha256:<hex>` per line, `#` comments. The
   * file holds hashes (made with `token hash`), so it can live in configuration
   * management without being a secret.
   */
  async loadFile(path: string): Promise<number> {
    const text = await readFile(path, 'utf8').catch((e: Error) => {
      throw new Error(`tokens file ${path}: ${e.message}`, { cause: e });
    });
    let loaded = 0;
    for (const [i, raw] of text.split('\n').entries()) {
      const line = raw.replace(/#.*/, '').trim();
      if (!line) continue;
      const m = /^(\S{1,100})\s+(\S+)\s+sha256:([0-9a-f]{64})$/.exec(line);
      if (!m || !isRole(m[2]!)) throw new Error(`tokens file ${path}:${i + 1}: expected "<user> <${ROLES.join('|')}> sha256:<64 hex digits>"`);
      // The file is the operator's word on each user's role.
      await this.addHash(m[1]!, m[2], m[3]!, `${path}:${i + 1}`, { changeRole: true });
      loaded++;
    }
    return loaded;
  }

  async authenticate(token: string | undefined): Promise<Principal | undefined> {
    if (!token) return undefined;
    const hash = hashToken(token);
    const cached = this.cache.get(hash);
    if (cached && Date.now() - cached.at < CACHE_MS) return cached.principal;
    const row = await this.ds
      .createQueryBuilder()
      .select(['t.hash AS hash', 'u.id AS user_id', 'u.name AS name', 'u.role AS role'])
      .from(TokenEntity, 't')
      .innerJoin(UserEntity, 'u', 'u.id = t.user_id')
      .where('t.hash = :hash AND t.revoked_at IS NULL', { hash })
      .getRawOne<{ hash: string; user_id: number; name: string; role: string }>();
    // The index found it; compare in constant time anyway so the answer's timing says nothing.
    const principal =
      row && timingSafeEqual(Buffer.from(row.hash), Buffer.from(hash)) && isRole(row.role)
        ? { user: row.name, userId: Number(row.user_id) as UserId, role: row.role }
        : undefined;
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(hash, { at: Date.now(), principal });
    return principal;
  }
}
