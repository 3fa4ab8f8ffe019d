/**
 * Who may do what over HTTP. Every route needs `read` unless marked otherwise; reading
 * is open to anyone or needs a token (CAIRN_RESULTS_READ), writing always needs a token
 * of a role that allows it. The token comes as `Authorization: Bearer <token>` or, for
 * browsers, in the `cairn_token` cookie set by the login form.
 */
import { ForbiddenException, Inject, Injectable, SetMetadata, UnauthorizedException, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import type { Role } from '../db/user.entity.js';
import { CONFIG } from '../tokens.js';
import type { ResultsConfig } from '../config.js';
import { roleAllows, TokenService, type Principal } from './token-service.js';

/** `public` routes (the login form, static assets) are open even when reading needs a token. */
export type Access = 'public' | 'read' | 'write' | 'admin';
const ACCESS = 'cairn:access';
export const Needs = (access: Access) => SetMetadata(ACCESS, access);

const NEEDED_ROLE: Record<Exclude<Access, 'public'>, Role> = { read: 'reader', write: 'writer', admin: 'admin' };

export function tokenOf(req: Request): string | undefined {
  const header = req.headers.authorization;
  if (header) {
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    return m ? m[1] : undefined;
  }
  const cookie = req.headers.cookie;
  if (!cookie) return undefined;
  for (const part of cookie.split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === 'cairn_token') return decodeURIComponent(value.join('='));
  }
  return undefined;
}

export type AuthedRequest = Request & { principal?: Principal };

@Injectable()
export class AccessGuard implements CanActivate {
  constructor(
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(TokenService) private readonly tokens: TokenService,
    @Inject(CONFIG) private readonly config: ResultsConfig,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const access = this.reflector.getAllAndOverride<Access | undefined>(ACCESS, [context.getHandler(), context.getClass()]) ?? 'read';
    if (access === 'public') return true;
    const req = context.switchToHttp().getRequest<AuthedRequest>();
    const token = tokenOf(req);
    const principal = await this.tokens.authenticate(token);
    if (principal) req.principal = principal;
    if (access === 'read' && this.config.readAccess === 'public') return true;
    if (!principal) {
      throw new UnauthorizedException(token ? `${req.method} ${req.path}: the token is not valid (unknown or revoked)` : `${req.method} ${req.path}: a token is required (Authorization: Bearer <token>)`);
    }
    if (!roleAllows(principal.role, NEEDED_ROLE[access])) {
      throw new ForbiddenException(`${req.method} ${req.path}: user ${principal.user} has role ${principal.role}; ${NEEDED_ROLE[access]} is needed`);
    }
    return true;
  }
}
