/**
 * A service started by another process (`cairn up`) and meant to live only as long as
 * it: the starter names itself in CAIRN_PARENT_PID, and the service shuts down once
 * that process is gone, even if it died of SIGKILL and had no chance to stop anyone.
 */

/** The variable a starting process sets to its own pid. */
export const PARENT_PID_ENV = 'CAIRN_PARENT_PID';

export interface ParentWatchOptions {
  /** For the line saying why the service stops. */
  readonly name: string;
  readonly env?: NodeJS.ProcessEnv;
  /** How often the parent is looked for. */
  readonly intervalMs?: number;
  /**
   * How long the service's own shutdown may take before it is asked again (a worker's
   * second signal cancels its builds), and then before the process exits regardless.
   */
  readonly graceMs?: number;
}

/**
 * Watches the process named by CAIRN_PARENT_PID (nothing when it is unset) and, once it
 * is gone, sends this process SIGTERM: the very path a service already takes to stop
 * cleanly (Nest's shutdown hooks, the worker-agent's drain, the results-store's close),
 * so there is one way to stop, whoever asks. Before the service has installed its
 * handlers, SIGTERM simply ends the process, which is right then too: the watch starts
 * before the service connects to NATS, which may never answer. Returns a function that
 * ends the watch.
 */
export function watchParent(options: ParentWatchOptions): () => void {
  const env = options.env ?? process.env;
  const text = env[PARENT_PID_ENV];
  if (text === undefined || text === '') return () => undefined;
  const pid = Number(text);
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`${PARENT_PID_ENV} must be a process ID, not "${text}"`);
  const graceMs = options.graceMs ?? Number(env.CAIRN_PARENT_GRACE_MS ?? 10_000);
  const direct = process.ppid === pid;
  const timer = setInterval(() => {
    if (alive(pid, direct)) return;
    clearInterval(timer);
    parentGone(options.name, pid, graceMs);
  }, options.intervalMs ?? 1000);
  // The watch alone must not keep a process that is done from exiting.
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * A direct child is re-parented (to init or a subreaper) the moment its parent dies, so
 * `process.ppid` changing is the sure sign, and it cannot be fooled by the pid being
 * reused, nor by a parent that died but was not reaped yet (a zombie still answers
 * kill 0). A parent further up (the service started through a wrapper) can only be
 * probed with kill 0; EPERM means it exists under another user.
 */
function alive(pid: number, direct: boolean): boolean {
  if (direct) return process.ppid === pid;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parentGone(name: string, pid: number, graceMs: number): void {
  // The parent usually held this process's stdout and stderr pipes: writing to them now
  // fails with EPIPE, which unhandled would crash the service half-way through its shutdown.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
  console.error(`${name}: the process that started it (pid ${pid}) is gone: shutting down`);
  process.kill(process.pid, 'SIGTERM');
  const again = setTimeout(() => {
    console.error(`${name}: still shutting down after ${graceMs} ms: asking again`);
    process.kill(process.pid, 'SIGTERM');
    setTimeout(() => {
      console.error(`${name}: still running ${2 * graceMs} ms after its parent went: exiting`);
      process.exit(1);
    }, graceMs).unref();
  }, graceMs);
  again.unref();
}
