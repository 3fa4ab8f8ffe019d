/**
 * What every request and response goes through, whichever controller answers (service-
 * kit's /healthz and /metrics included):
 *
 * - cross-site request forgery: a state-changing request (any method but GET, HEAD and
 *   OPTIONS) that a browser could have been made to send from another site is refused
 *   (403). The rule: a request with `Authorization` carries its own credential and
 *   passes (a page elsewhere cannot set that header without a CORS preflight, which this
 *   service never grants); otherwise `Origin`, or failing that `Sec-Fetch-Site`, must
 *   say this very origin; and a request signed in by the login cookie that has neither
 *   needs a same-origin `Referer`. SameSite=Strict on the cookie does not cover this
 *   alone: a sibling subdomain is the same site.
 * - `X-Content-Type-Options: nosniff` on everything, so no response is ever run as a
 *   script or page other than what its type says (a log or an artifact full of HTML);
 * - /metrics behind a reader token when reading needs one;
 * - Express's settings: no `X-Powered-By`, and which proxies' X-Forwarded-* to believe.
 */
import { ForbiddenException, Inject, Injectable, type NestMiddleware, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { Application, NextFunction, Request, Response } from 'express';
import type { ResultsConfig } from '../config.js';
import { CONFIG } from '../tokens.js';
import { Authorizer, sessionCookieOf } from './access-guard.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function header(req: Request, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The origins this service is reached at: as the request names it, and as configured. */
function ownOrigins(req: Request, config: ResultsConfig): Set<string> {
  const own = new Set<string>([`${req.protocol}://${req.host}`]);
  if (config.publicUrl) {
    try {
      own.add(new URL(config.publicUrl).origin);
    } catch {
      // A public URL that is not a URL names no origin.
    }
  }
  return own;
}

/** Why `req` may be a forged cross-site request; undefined when it is not. */
export function crossSiteProblem(req: Request, config: ResultsConfig): string | undefined {
  if (SAFE_METHODS.has(req.method) || req.headers.authorization !== undefined) return undefined;
  const what = `${req.method} ${req.path}`;
  const origin = header(req, 'origin');
  if (origin !== undefined) return ownOrigins(req, config).has(origin) ? undefined : `${what}: refused, sent from ${origin}, not from this site's pages`;
  const site = header(req, 'sec-fetch-site');
  if (site !== undefined)
    return site === 'same-origin' || site === 'none' ? undefined : `${what}: refused, sent from a ${site} page, not from this site's pages`;
  if (sessionCookieOf(req) === undefined) return undefined;
  const referer = header(req, 'referer');
  if (referer !== undefined && URL.canParse(referer) && ownOrigins(req, config).has(new URL(referer).origin)) return undefined;
  return `${what}: refused, signed in by cookie but with no Origin to show it came from this site's pages (API clients: use Authorization: Bearer)`;
}

@Injectable()
export class HttpHardening implements NestMiddleware {
  constructor(
    @Inject(Authorizer) private readonly authorizer: Authorizer,
    @Inject(CONFIG) private readonly config: ResultsConfig,
  ) {}

  async use(req: Request, res: Response, next: NextFunction): Promise<void> {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    const problem = crossSiteProblem(req, this.config);
    if (problem) throw new ForbiddenException(problem);
    if (req.path === '/metrics') await this.authorizer.check(req, res, 'read');
    next();
  }
}

@Injectable()
export class HttpSettings implements OnModuleInit {
  constructor(
    @Inject(HttpAdapterHost) private readonly http: HttpAdapterHost,
    @Inject(CONFIG) private readonly config: ResultsConfig,
  ) {}

  onModuleInit(): void {
    const app = this.http.httpAdapter?.getInstance<Application>();
    if (!app) return;
    // Names the framework (and its version's bugs) to anyone who asks.
    app.disable('x-powered-by');
    app.set('trust proxy', this.config.trustedProxy ?? false);
  }
}
