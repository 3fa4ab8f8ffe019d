/** A job's status badge as SVG (the shields.io look), for READMEs and dashboards elsewhere. */
import { escapeXml } from '../view/html.js';

const COLOURS: Record<string, string> = { succeeded: '#2e7d32', failed: '#c62828', cancelled: '#6d6d6d', unknown: '#6d6d6d' };
const WORDS: Record<string, string> = { succeeded: 'passing', failed: 'failing', cancelled: 'cancelled', unknown: 'unknown' };

/** Verdana 11px averages close to 6.5 px a character, which is all a badge needs. */
const width = (text: string) => Math.round(text.length * 6.5 + 12);

export function statusBadge(label: string, state: string | null): string {
  const key = state && state in COLOURS ? state : 'unknown';
  const left = label.length > 40 ? `${label.slice(0, 39)}…` : label;
  const right = WORDS[key]!;
  const lw = width(left);
  const rw = width(right);
  const total = lw + rw;
  const l = escapeXml(left);
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${total}" height="20" role="img" aria-label="${l}: ${right}">` +
    `<title>${l}: ${right}</title>` +
    `<rect width="${lw}" height="20" fill="#555"/><rect x="${lw}" width="${rw}" height="20" fill="${COLOURS[key]}"/>` +
    `<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle">` +
    `<text x="${lw / 2}" y="14">${l}</text><text x="${lw + rw / 2}" y="14">${right}</text></g></svg>`
  );
}
