/**
 * The browser's way to give a token when reading needs one: the login form posts it,
 * it is checked, and kept in an HttpOnly cookie the access guard reads.
 */
import { Body, Controller, Inject, Post, Req, Res, UseGuards } from '@nestjs/common';
import type { Request, Response } from 'express';
import { AccessGuard, Needs } from './access-guard.js';
import { html } from '../web/html.js';
import { page } from '../web/layout.js';
import { HTML, send } from '../web/respond.js';
import { TokenService } from './token-service.js';

@Controller()
@UseGuards(AccessGuard)
export class LoginController {
  constructor(@Inject(TokenService) private readonly tokens: TokenService) {}

  @Post('login')
  @Needs('public')
  async login(@Body() body: unknown, @Req() req: Request, @Res() res: Response): Promise<void> {
    const token = typeof (body as { token?: unknown } | undefined)?.token === 'string' ? (body as { token: string }).token.trim() : '';
    const principal = await this.tokens.authenticate(token);
    if (!principal) {
      send(req, res, page({ title: 'Sign in', body: html`<h1>Sign in</h1><p class="note" role="alert">That token is not valid.</p><p><a href="/login">Try again</a></p>` }).value, { type: HTML, status: 401 });
      return;
    }
    const secure = req.secure ? '; Secure' : '';
    res.setHeader('Set-Cookie', `cairn_token=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000${secure}`);
    res.redirect(303, '/');
  }
}
