import { readFileSync } from 'node:fs';

/**
 * Who owns a temp snapshot, a container, a bundle, a lock or a lease on a shared store:
 * a process, named by its pid and its start time (field 22 of /proc/PID/stat, in clock
 * ticks since boot). The pid alone is not enough: pids are reused, and a new process
 * with a dead owner's pid would keep its leftovers alive for ever, or have its own work
 * taken for a leftover. The start time tells the two apart. Written `PID.START`.
 *
 * Where /proc is missing (FreeBSD, macOS) the start is written as 0 and only the pid is
 * checked. This holds for processes in one pid namespace, which is how a store is shared.
 */
export interface ProcessOwner {
  readonly pid: number;
  /** Undefined in names written before start times were recorded: then the pid alone decides. */
  readonly start?: number;
}

let self: string | undefined;

/** This process, as `PID.START`. */
export function ownerToken(): string {
  self ??= `${process.pid}.${startTime(process.pid) ?? 0}`;
  return self;
}

/** `PID.START` or a bare `PID` (older names). */
export function parseOwner(token: string): ProcessOwner | undefined {
  const m = /^(\d+)(?:\.(\d+))?$/.exec(token);
  if (!m) return undefined;
  return m[2] === undefined ? { pid: Number(m[1]) } : { pid: Number(m[1]), start: Number(m[2]) };
}

/** Whether the owner is still running: same pid, same start time, not a zombie. */
export function ownerAlive(owner: ProcessOwner | string | undefined): boolean {
  const o = typeof owner === 'string' ? parseOwner(owner) : owner;
  if (o === undefined || !Number.isInteger(o.pid) || o.pid <= 0) return false;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${o.pid}/stat`, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ESRCH') {
      // No such process, or no /proc at all.
      return procMissing() ? signalable(o.pid) : false;
    }
    throw e;
  }
  const { state, start } = parseStat(stat);
  // A zombie has exited; only its parent has not collected it yet.
  if (state === 'Z' || state === 'X') return false;
  return o.start === undefined || o.start === 0 || o.start === start;
}

function startTime(pid: number): number | undefined {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).start;
  } catch {
    return undefined;
  }
}

/** The command name (field 2) may hold spaces and parentheses: fields are counted from its last ")". */
function parseStat(stat: string): { state: string; start: number } {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
  return { state: fields[0] ?? '', start: Number(fields[19]) };
}

let noProc: boolean | undefined;
function procMissing(): boolean {
  if (noProc === undefined) {
    try {
      readFileSync('/proc/self/stat');
      noProc = false;
    } catch {
      noProc = true;
    }
  }
  return noProc;
}

function signalable(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
