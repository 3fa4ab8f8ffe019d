/**
 * Sending pages and documents: gzip when the client takes it and the body is worth it
 * (pages shrink to a fifth on a slow link), and cache headers that say how fresh a
 * response must be.
 */
import { gzipSync } from 'node:zlib';
import type { Request, Response } from 'express';
import type { CachedPage, PageCache } from './page-cache.js';

export interface SendOptions {
  readonly type: string;
  readonly status?: number;
  /** Seconds a cache may keep it; 0 means revalidate every time. */
  readonly maxAge?: number;
  readonly immutable?: boolean;
}

const GZIP_MIN = 1024;
const CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
/**
 * Everything that is not a page (badges, feeds, JSON, logs, artifacts): an SVG or XML
 * document opened directly could otherwise run script in this origin.
 */
export const DOCUMENT_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox";

export function send(req: Request, res: Response, body: string | Buffer, options: SendOptions): void {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  res.status(options.status ?? 200);
  res.setHeader('Content-Type', options.type);
  res.setHeader(
    'Cache-Control',
    options.immutable ? `public, max-age=${options.maxAge ?? 31536000}, immutable` : `no-cache${options.maxAge ? `, max-age=${options.maxAge}` : ''}`,
  );
  res.setHeader('X-Content-Type-Options', 'nosniff');
  // Pages run only their own script and style: a log line or job name that slipped past escaping still could not execute.
  res.setHeader('Content-Security-Policy', options.type === HTML ? CSP : DOCUMENT_CSP);
  res.setHeader('Vary', 'Accept-Encoding');
  if (bytes.length >= GZIP_MIN && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
    // Level 1: nearly the size of level 6 on markup, at a fraction of the CPU per page.
    const zipped = gzipSync(bytes, { level: 1 });
    res.setHeader('Content-Encoding', 'gzip');
    res.setHeader('Content-Length', zipped.length);
    res.end(zipped);
    return;
  }
  res.setHeader('Content-Length', bytes.length);
  res.end(bytes);
}

/** A cached page, gzipped (once) when the client takes it. */
export function sendCached(req: Request, res: Response, cache: PageCache, page: CachedPage, type: string): void {
  res.status(page.status);
  res.setHeader('Content-Type', type);
  res.setHeader('Cache-Control', 'no-cache');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Vary', 'Accept-Encoding');
  res.setHeader('Content-Security-Policy', type === HTML ? CSP : DOCUMENT_CSP);
  const gzip = page.body.length >= GZIP_MIN && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const bytes = gzip ? cache.gzipOf(page) : page.body;
  if (gzip) res.setHeader('Content-Encoding', 'gzip');
  res.setHeader('Content-Length', bytes.length);
  res.end(bytes);
}

export const HTML = 'text/html; charset=utf-8';
export const JSON_TYPE = 'application/json; charset=utf-8';

export function sendJson(req: Request, res: Response, value: unknown, status = 200): void {
  send(req, res, JSON.stringify(value), { type: JSON_TYPE, status });
}
