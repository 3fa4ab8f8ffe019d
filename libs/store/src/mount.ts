import { readFile, realpath } from 'node:fs/promises';
import { runCommand } from './command.js';
import { errorCode } from './errno.js';

/** mount(2) copies its options into one page: longer overlay options are cut off. */
const MAX_OPTIONS = 4095;

export interface OverlayMount {
  /** The directory the layer paths are relative to (the mount runs there). */
  readonly cwd: string;
  /** Lower layers, top first, relative to `cwd`. */
  readonly lower: readonly string[];
  /** Upper and work directories relative to `cwd`; without them the mount is read-only. */
  readonly upper?: { readonly dir: string; readonly work: string };
  readonly target: string;
}

/**
 * Mounts an overlay. Layer paths are relative and resolved by the kernel from the mount's
 * working directory, which keeps deep stacks inside the one-page limit on options.
 */
export async function mountOverlay(m: OverlayMount): Promise<void> {
  const options = [`lowerdir=${m.lower.join(':')}`];
  if (m.upper) options.push(`upperdir=${m.upper.dir}`, `workdir=${m.upper.work}`);
  else options.push('ro');
  const text = options.join(',');
  if (Buffer.byteLength(text) > MAX_OPTIONS) {
    throw new Error(
      `a stack of ${m.lower.length} layers is too deep for one overlay mount: its options take ${Buffer.byteLength(text)} bytes, the kernel reads at most ${MAX_OPTIONS}`,
    );
  }
  await runCommand('mount', ['-t', 'overlay', 'overlay', '-o', text, m.target], { cwd: m.cwd });
}

export async function unmount(target: string): Promise<void> {
  await runCommand('umount', [target]);
}

/** Unmounts everything mounted at or below `dir`, deepest first. */
export async function unmountAllUnder(dir: string): Promise<void> {
  for (const point of await mountsUnder(dir)) await unmount(point);
}

/** Mount points at or below `dir`, deepest first (per /proc/self/mountinfo). */
export async function mountsUnder(dir: string): Promise<string[]> {
  let real: string;
  try {
    real = await realpath(dir);
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return [];
    throw e;
  }
  const points = (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((line) => decodeMountPath(line.split(' ')[4] ?? ''))
    .filter((point) => point === real || point.startsWith(`${real}/`));
  return points.sort((a, b) => b.length - a.length);
}

/** The filesystem a path is on, as /proc/self/mountinfo says. */
export interface MountInfo {
  readonly point: string;
  readonly fstype: string;
  /** The filesystem's own options (mountinfo's super options), such as `prjquota`. */
  readonly options: readonly string[];
}

/** The mount that holds `path` (which must exist): the deepest mount point above it. */
export async function mountContaining(path: string): Promise<MountInfo> {
  const real = await realpath(path);
  let best: MountInfo | undefined;
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const fields = line.split(' ');
    const point = decodeMountPath(fields[4] ?? '');
    const rest = fields.slice(fields.indexOf('-') + 1);
    const inside = point === '/' || real === point || real.startsWith(`${point}/`);
    // Later lines are mounts over earlier ones at the same point: the last one is visible.
    if (inside && rest.length >= 3 && (best === undefined || point.length >= best.point.length)) {
      best = { point, fstype: rest[0]!, options: rest[2]!.split(',') };
    }
  }
  if (best === undefined) throw new Error(`no mount holds ${real} (per /proc/self/mountinfo)`);
  return best;
}

/** mountinfo writes space, tab, newline and backslash as octal escapes. */
function decodeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
