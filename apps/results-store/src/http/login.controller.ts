/**
 * The browser's way to give a token when reading needs one: the login form posts it,
 * it is checked, and kept in an HttpOnly cookie the access guard reads; signing out
 * clears it. Beside it, a cookie the page's script reads says the token's role, so that
 * pages shared by everyone (cached, saved) show a signed-in operator the links only an
 * operator may follow (browser/app.ts): only a hint, the server checks every request.
 * Failed attempts are throttled per client address (auth/throttle.ts); the CSRF rule
 * (auth/http-hardening.ts) keeps other sites from signing a browser in or out.
 */
import { Body, Controller, Get, Inject, Post, Req, Res, UseFilters, UseGuards } from '@nestjs/common';
import type { Request, Response } from 'express';
import { AccessGuard, clientKey, Needs, SESSION_COOKIE } from '../auth/access-guard.js';
import { ROLE_COOKIE } from '../roles.js';
import { FailureThrottle } from '../auth/throttle.js';
import { TokenService } from '../auth/token-service.js';
import type { ResultsConfig } from '../config.js';
import { signInPage, signInRefusedPage, signInThrottledPage } from '../pages/sign-in-page.js';
import { CONFIG } from '../tokens.js';
import { HtmlErrorFilter } from './html-error.filter.js';
import { HTML, send } from './respond.js';

const SESSION_MAX_AGE_S = 30 * 24 * 3600;

@Controller()
@UseGuards(AccessGuard)
export class LoginController {
  constructor(
    @Inject(TokenService) private readonly tokens: TokenService,
    @Inject(FailureThrottle) private readonly throttle: FailureThrottle,
    @Inject(CONFIG) private readonly config: ResultsConfig,
  ) {}

  @Get('login')
  @Needs('public')
  // As the other pages: an error on the form is shown as a page.
  @UseFilters(HtmlErrorFilter)
  form(@Req() req: Request, @Res() res: Response): void {
    send(req, res, signInPage().value, { type: HTML });
  }

  @Post('login')
  @Needs('public')
  async login(@Body() body: unknown, @Req() req: Request, @Res() res: Response): Promise<void> {
    const wait = this.throttle.blocked(clientKey(req));
    if (wait !== undefined) {
      res.setHeader('Retry-After', String(wait));
      send(req, res, signInThrottledPage(wait).value, { type: HTML, status: 429 });
      return;
    }
    const token = typeof (body as { token?: unknown } | undefined)?.token === 'string' ? (body as { token: string }).token.trim() : '';
    const principal = await this.tokens.authenticate(token);
    if (!principal) {
      this.throttle.fail(clientKey(req));
      send(req, res, signInRefusedPage().value, { type: HTML, status: 401 });
      return;
    }
    res.setHeader('Set-Cookie', [
      this.cookie(req, encodeURIComponent(token), SESSION_MAX_AGE_S),
      this.cookie(req, principal.role, SESSION_MAX_AGE_S, ROLE_COOKIE),
    ]);
    res.redirect(303, '/');
  }

  @Post('logout')
  @Needs('public')
  logout(@Req() req: Request, @Res() res: Response): void {
    res.setHeader('Set-Cookie', [this.cookie(req, '', 0), this.cookie(req, '', 0, ROLE_COOKIE)]);
    res.redirect(303, '/login');
  }

  /**
   * Secure when the client came over TLS: directly, or through a trusted proxy that says
   * so (X-Forwarded-Proto; CAIRN_RESULTS_TRUSTED_PROXY), or when the public address is
   * https. Never sent with another site's requests; the session's never readable by scripts.
   */
  private cookie(req: Request, value: string, maxAgeS: number, name = SESSION_COOKIE): string {
    const secure = req.secure || this.config.publicUrl?.startsWith('https://') ? '; Secure' : '';
    return `${name}=${value}; Path=/;${name === SESSION_COOKIE ? ' HttpOnly;' : ''} SameSite=Strict; Max-Age=${maxAgeS}${secure}`;
  }
}
