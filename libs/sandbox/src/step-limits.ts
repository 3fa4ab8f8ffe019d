/**
 * What a step may use, as every sandbox takes it (RunOptions.limits and each driver's
 * options), and the forms people write limits in (`512m`, `4g`, `30m`).
 */

// Sizes are said one way everywhere, the store's disk limit included.
export { formatBytes } from '@cairn/store';

export interface StepLimits {
  /** Bytes of memory; swap is not allowed beyond it. */
  readonly memoryBytes?: number;
  /** Processes and threads at once. */
  readonly pids?: number;
  /** CPUs' worth of time (0.5: half of one CPU, however many the step's processes use). */
  readonly cpus?: number;
  /**
   * Bytes the step may add to its snapshot: enforced by the store, not the sandbox (a
   * quota on the step's subvolume, dataset or directory), so sandboxes leave it alone.
   */
  readonly diskBytes?: number;
}

/** How often a running step's counters are read: a fork bomb at its pids limit is stopped within this. */
export const LIMIT_POLL_MS = 200;

/** Whether `limits` holds one a sandbox enforces (memory, pids, CPUs; the disk limit is the store's). */
export function hasLimits(limits: StepLimits | undefined): limits is StepLimits {
  return limits !== undefined && (limits.memoryBytes !== undefined || limits.pids !== undefined || limits.cpus !== undefined);
}

/** Limits a step asks for, capped by the ones its worker allows. */
export function capLimits(asked: StepLimits | undefined, allowed: StepLimits | undefined): StepLimits | undefined {
  const pick = (a: number | undefined, b: number | undefined) => (a === undefined ? b : b === undefined ? a : Math.min(a, b));
  if (!asked && !allowed) return undefined;
  const memoryBytes = pick(asked?.memoryBytes, allowed?.memoryBytes);
  const pids = pick(asked?.pids, allowed?.pids);
  const cpus = pick(asked?.cpus, allowed?.cpus);
  const diskBytes = pick(asked?.diskBytes, allowed?.diskBytes);
  return setOnly({ memoryBytes, pids, cpus, diskBytes });
}

/** Limits as people write them, from flags, variables or a config file. */
export interface LimitTexts {
  readonly memory?: string;
  readonly pids?: string;
  readonly cpus?: string;
  readonly disk?: string;
}

/**
 * Memory and disk as sizes (`4g`), pids as a whole number, CPUs as a number, each above 0;
 * undefined when none is given. A bad value's error starts with `where(key)`: the flag,
 * variable or file it came from.
 */
export function parseStepLimits(texts: LimitTexts, where: (key: keyof LimitTexts) => string): StepLimits | undefined {
  const memoryBytes = texts.memory === undefined ? undefined : parseBytes(texts.memory, where('memory'));
  const pids = texts.pids === undefined ? undefined : parseCount(texts.pids, where('pids'), true);
  const cpus = texts.cpus === undefined ? undefined : parseCount(texts.cpus, where('cpus'), false);
  const diskBytes = texts.disk === undefined ? undefined : parseSize(texts.disk, where('disk'));
  const limits = setOnly({ memoryBytes, pids, cpus, diskBytes });
  return Object.keys(limits).length > 0 ? limits : undefined;
}

/** A disk limit of 0 would fail every step at its first write: refused like a pids limit of 0. */
function parseSize(text: string, what: string): number {
  const bytes = parseBytes(text, what);
  if (bytes <= 0) throw new Error(`${what}: "${text}" is not a positive size`);
  return bytes;
}

function parseCount(text: string, what: string, integer: boolean): number {
  const n = Number(text);
  if (!(n > 0) || (integer && !Number.isInteger(n))) throw new Error(`${what}: "${text}" is not a positive ${integer ? 'whole number' : 'number'}`);
  return n;
}

/** Without the keys left undefined: options objects here never hold `key: undefined`. */
function setOnly(limits: Record<keyof StepLimits, number | undefined>): StepLimits {
  const { memoryBytes, pids, cpus, diskBytes } = limits;
  return {
    ...(memoryBytes === undefined ? {} : { memoryBytes }),
    ...(pids === undefined ? {} : { pids }),
    ...(cpus === undefined ? {} : { cpus }),
    ...(diskBytes === undefined ? {} : { diskBytes }),
  };
}

/** `512m`, `4g`, `1048576`: a size as people write it on a command line. */
export function parseBytes(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  if (!m) throw new Error(`${what}: "${text}" is not a size (e.g. 512m, 4g)`);
  const scale = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.round(Number(m[1]) * scale);
}

/** `90s`, `30m`, `2h`, `1500ms`, or plain seconds: a duration as people write it. */
export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/i.exec(text.trim());
  if (!m || Number(m[1]) <= 0) throw new Error(`${what}: "${text}" is not a duration (e.g. 90s, 30m, 2h)`);
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's').toLowerCase() as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * scale);
}

export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size} ${unit}`;
  }
  return `${ms} ms`;
}
