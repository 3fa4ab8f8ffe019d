/** The failure list as an Atom feed, so people can follow failures in a feed reader. */
import { escapeXml, isoTime } from '../view/html.js';

export interface FeedEntry {
  readonly id: string;
  readonly job: string;
  readonly pool: string;
  readonly platform: string;
  readonly finishedAt: number;
  readonly failure: string | null;
}

export function failuresFeed(baseUrl: string, entries: readonly FeedEntry[], now = Date.now()): string {
  const updated = isoTime(entries[0]?.finishedAt ?? now);
  const items = entries
    .map((e) => {
      const url = `${baseUrl}/builds/${e.id}`;
      return (
        `<entry><id>${escapeXml(url)}</id><title>${escapeXml(`${e.job} failed on ${e.pool}`)}</title>` +
        `<link rel="alternate" type="text/html" href="${escapeXml(url)}"/><updated>${isoTime(e.finishedAt)}</updated>` +
        `<summary>${escapeXml(`${e.id} (${e.platform}): ${e.failure ?? 'failed'}`)}</summary></entry>`
      );
    })
    .join('');
  return (
    `<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">` +
    `<id>${escapeXml(`${baseUrl}/failures`)}</id><title>Cairn build failures</title><updated>${updated}</updated>` +
    `<link rel="self" href="${escapeXml(`${baseUrl}/failures.atom`)}"/><link rel="alternate" type="text/html" href="${escapeXml(`${baseUrl}/failures`)}"/>` +
    `${items}</feed>`
  );
}
