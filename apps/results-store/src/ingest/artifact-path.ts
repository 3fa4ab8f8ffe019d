/**
 * Artifact names as the store keeps them: relative, normalised paths that can never
 * step outside a download directory. The cluster reports paths in the final snapshot
 * (absolute, `/usr/local/bin/hello`), taken relative to the snapshot's root; an upload
 * from outside the cluster must name its files relatively.
 */
export type PathOrigin = 'cluster' | 'upload';

export type PathCheck = { ok: true; path: string } | { ok: false; reason: string };

const MAX_PATH = 1024;

export function normaliseArtifactPath(raw: string, origin: PathOrigin): PathCheck {
  const shown = JSON.stringify(raw.length > 80 ? `${raw.slice(0, 80)}...` : raw);
  if (raw.includes('\0')) return { ok: false, reason: `artifact path ${shown} contains NUL` };
  if (/[\x01-\x1f\x7f\\]/.test(raw)) return { ok: false, reason: `artifact path ${shown} contains a control character or a backslash` };
  let path = raw;
  if (path.startsWith('/')) {
    if (origin === 'upload') return { ok: false, reason: `artifact path ${shown} is absolute; name it relative to the build's output` };
    path = path.replace(/^\/+/, '');
  }
  if (path === '') return { ok: false, reason: `artifact path ${shown} is empty` };
  if (path.length > MAX_PATH) return { ok: false, reason: `artifact path ${shown} is longer than ${MAX_PATH} characters` };
  for (const segment of path.split('/')) {
    if (segment === '..') return { ok: false, reason: `artifact path ${shown} climbs out of its directory (..)` };
    if (segment === '' || segment === '.') return { ok: false, reason: `artifact path ${shown} has an empty or '.' segment` };
  }
  return { ok: true, path };
}
