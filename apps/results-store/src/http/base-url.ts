import type { Request } from 'express';
import type { ResultsConfig } from '../config.js';

/** The dashboard's address for links that leave the page (feeds, badges, commands). */
export function baseUrl(config: ResultsConfig, req: Request): string {
  return config.publicUrl ?? `${req.protocol}://${req.get('host') ?? 'localhost'}`;
}
