/**
 * Who may do what over HTTP. Every route needs `read` unless marked otherwise; reading
 * is open to anyone or needs a token (CAIRN_RESULTS_READ), writing always needs a token
 * of a role that allows it. The token comes as `Authorization: Bearer <token>` or, for
 * browsers, in the `cairn_token` cookie set by the login form. A client address whose
 * tokens keep failing is throttled (throttle.ts).
 */
import {
  BadRequestException,
  ForbiddenException,
  HttpException,
  Inject,
  Injectable,
  SetMetadata,
  UnauthorizedException,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import { CONFIG } from '../tokens.js';
import type { ResultsConfig } from '../config.js';
import { FailureThrottle } from './throttle.js';
import { roleAllows, type Role } from '../roles.js';
import { TokenService, type Principal } from './token-service.js';

/** `public` routes (the login form, static assets) are open even when reading needs a token. */
export type Access = 'public' | 'read' | 'write' | 'operate' | 'admin';
const ACCESS = 'cairn:access';
export const Needs = (access: Access) => SetMetadata(ACCESS, access);

const NEEDED_ROLE: Record<Exclude<Access, 'public'>, Role> = { read: 'reader', write: 'writer', operate: 'operator', admin: 'admin' };

export const SESSION_COOKIE = 'cairn_token';

/** The login cookie's value; a value that is not valid percent-encoding is the client's error (400), not ours. */
export function sessionCookieOf(req: Request): string | undefined {
  const cookie = req.headers.cookie;
  if (!cookie) return undefined;
  for (const part of cookie.split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name !== SESSION_COOKIE) continue;
    try {
      return decodeURIComponent(value.join('='));
    } catch {
      throw new BadRequestException(`the ${SESSION_COOKIE} cookie is not valid percent-encoding; sign in again`);
    }
  }
  return undefined;
}

export function tokenOf(req: Request): string | undefined {
  const header = req.headers.authorization;
  if (header) {
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    return m ? m[1] : undefined;
  }
  return sessionCookieOf(req);
}

export type AuthedRequest = Request & { principal?: Principal };

/** 429 with the Retry-After it needs. */
export function tooManyFailures(res: Response, retryAfterS: number): HttpException {
  res.setHeader('Retry-After', String(retryAfterS));
  return new HttpException(`too many failed sign-ins from this address; try again in ${retryAfterS} s`, 429);
}

/** The access check, shared by the guard (Nest routes) and the middleware (/metrics, which is service-kit's). */
@Injectable()
export class Authorizer {
  constructor(
    @Inject(TokenService) private readonly tokens: TokenService,
    @Inject(CONFIG) private readonly config: ResultsConfig,
    @Inject(FailureThrottle) private readonly throttle: FailureThrottle,
  ) {}

  /** Throws unless `req` may do what needs `access`; notes who it is on `req.principal`. */
  async check(req: AuthedRequest, res: Response, access: Access): Promise<void> {
    if (access === 'public') return;
    const token = tokenOf(req);
    let principal: Principal | undefined;
    if (token) {
      const wait = this.throttle.blocked(clientKey(req));
      if (wait !== undefined) throw tooManyFailures(res, wait);
      principal = await this.tokens.authenticate(token);
      if (!principal) this.throttle.fail(clientKey(req));
    }
    if (principal) req.principal = principal;
    if (access === 'read' && this.config.readAccess === 'public') return;
    if (!principal) {
      throw new UnauthorizedException(
        token
          ? `${req.method} ${req.path}: the token is not valid (unknown or revoked)`
          : `${req.method} ${req.path}: a token is required (Authorization: Bearer <token>)`,
      );
    }
    if (!roleAllows(principal.role, NEEDED_ROLE[access])) {
      throw new ForbiddenException(`${req.method} ${req.path}: user ${principal.user} has role ${principal.role}; ${NEEDED_ROLE[access]} is needed`);
    }
  }
}

/** The client's address (the proxy's claim only from a trusted proxy: Express's `trust proxy`). */
export function clientKey(req: Request): string {
  return req.ip ?? req.socket.remoteAddress ?? 'unknown';
}

@Injectable()
export class AccessGuard implements CanActivate {
  constructor(
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(Authorizer) private readonly authorizer: Authorizer,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const access = this.reflector.getAllAndOverride<Access | undefined>(ACCESS, [context.getHandler(), context.getClass()]) ?? 'read';
    const http = context.switchToHttp();
    await this.authorizer.check(http.getRequest<AuthedRequest>(), http.getResponse<Response>(), access);
    return true;
  }
}
