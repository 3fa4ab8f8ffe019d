/**
 * The dashboard's action forms carry a token tied to the session: an HMAC of a fixed
 * label keyed by the session's own secret (the sign-in cookie, which is HttpOnly and
 * SameSite=Strict). Another site can neither read the cookie nor the page that holds the
 * form token, so it cannot forge one; a form token from one session is worthless in
 * another; and no server-side secret or session table is needed. Requests that carry
 * `Authorization: Bearer` bring their own credential and need no form token
 * (http-hardening.ts says why).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ForbiddenException } from '@nestjs/common';
import type { Request } from 'express';
import { sessionCookieOf } from './access-guard.js';

export const CSRF_FIELD = '_csrf';

export function csrfTokenFor(session: string): string {
  return createHmac('sha256', session).update('cairn-results-store form token v1').digest('base64url');
}

/** The form token for the request's session; undefined when it is not signed in by cookie. */
export function csrfTokenOf(req: Request): string | undefined {
  const session = sessionCookieOf(req);
  return session ? csrfTokenFor(session) : undefined;
}

/** Throws 403 unless a cookie-signed request's body carries its session's form token. */
export function checkCsrf(req: Request, body: unknown): void {
  if (req.headers.authorization !== undefined) return;
  const expected = csrfTokenOf(req);
  const given = (body as Record<string, unknown> | undefined)?.[CSRF_FIELD];
  const ok =
    expected !== undefined && typeof given === 'string' && given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected));
  if (!ok)
    throw new ForbiddenException(
      `${req.method} ${req.path}: refused, the form's ${CSRF_FIELD} token is missing or not this session's (reload the page and try again)`,
    );
}
