/**
 * Keeps the processes of `cairn up` running: a child that exits when nobody asked it to
 * is started again after a delay that doubles while it keeps failing soon after
 * starting (capped), and one that fails quickly too many times in a row is given up on,
 * which ends `cairn up` (a cluster with a service missing only looks up). Every child
 * runs in its own process group, so a Ctrl-C in the terminal reaches `cairn up` alone
 * and the children stop in the order `cairn up` chooses; a stuck child is killed with
 * its whole group (a worker's build processes included).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { ServiceStatus } from '@cairn/contracts';

export interface ChildSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  /** GET answers 200 once the child is ready (service-kit's /healthz). */
  readonly healthUrl?: string;
}

export interface SupervisionPolicy {
  /** Delay before the first restart; doubled for each quick failure in a row. */
  readonly firstDelayMs: number;
  readonly maxDelayMs: number;
  /** A child that exits sooner than this after starting failed quickly. */
  readonly quickMs: number;
  /** Quick failures in a row after which the child is given up on. */
  readonly maxQuickFailures: number;
}

export const DEFAULT_POLICY: SupervisionPolicy = { firstDelayMs: 1000, maxDelayMs: 30_000, quickMs: 10_000, maxQuickFailures: 5 };

export interface SupervisorHooks {
  /** A line of a child's stdout or stderr. */
  output(name: string, line: string): void;
  /** A supervision event ("worker-1 exited (signal SIGKILL); restarting in 1 s") and the child's status after it. */
  event(message: string, status: ServiceStatus): void;
}

const MAX_EVENTS = 20;

interface Supervised {
  readonly spec: ChildSpec;
  proc?: ChildProcess;
  status: ServiceStatus;
  stopping: boolean;
  restartTimer?: NodeJS.Timeout;
  exited?: Promise<void>;
}

export class Supervisor {
  private readonly children = new Map<string, Supervised>();
  private giveUp!: (reason: string) => void;
  /** Resolves with the reason when a child was given up on. */
  readonly failed = new Promise<string>((resolve) => (this.giveUp = resolve));

  constructor(
    private readonly hooks: SupervisorHooks,
    private readonly policy: SupervisionPolicy = DEFAULT_POLICY,
  ) {}

  get names(): string[] {
    return [...this.children.keys()];
  }

  statuses(): ServiceStatus[] {
    return [...this.children.values()].map((c) => c.status);
  }

  start(spec: ChildSpec): void {
    const child: Supervised = {
      spec,
      stopping: false,
      status: { name: spec.name, state: 'starting', restarts: 0, quickFailures: 0, events: [], supervisor: process.pid },
    };
    this.children.set(spec.name, child);
    this.launch(child);
  }

  pid(name: string): number | undefined {
    return this.children.get(name)?.proc?.pid;
  }

  running(name: string): boolean {
    const proc = this.children.get(name)?.proc;
    return proc !== undefined && proc.exitCode === null && proc.signalCode === null;
  }

  /** Marks a child ready (its health check answered) and says so when that follows a restart. */
  markReady(name: string): void {
    const child = this.children.get(name);
    if (!child || child.status.state !== 'running') return;
    this.note(child, child.status.restarts > 0 ? `${name} ready again after restart ${child.status.restarts}` : `${name} ready`, { state: 'ready' });
  }

  /** Sends a signal to the child itself (not its group): what it does then is its own choice. */
  signal(name: string, signal: NodeJS.Signals): void {
    const child = this.children.get(name);
    if (!child?.proc?.pid || !this.running(name)) return;
    try {
      child.proc.kill(signal);
    } catch {
      // it ended meanwhile
    }
  }

  /**
   * Stops a child for good: no restart follows. Sends `signal`, waits up to `boundMs`,
   * and resolves true when it exited in time (else it still runs: the caller decides).
   */
  async stop(name: string, signal: NodeJS.Signals, boundMs: number): Promise<boolean> {
    const child = this.children.get(name);
    if (!child) return true;
    if (!child.stopping) {
      child.stopping = true;
      clearTimeout(child.restartTimer);
      if (!this.running(name)) {
        if (child.status.state !== 'stopped') this.note(child, `${name} stopped`, { state: 'stopped' });
        return true;
      }
      this.note(child, `${name} stopping (${signal})`, { state: 'stopping' });
    }
    this.signal(name, signal);
    return this.waitExit(name, boundMs);
  }

  /** Waits up to `boundMs` for the child to exit; true when it is not running. */
  async waitExit(name: string, boundMs: number): Promise<boolean> {
    const child = this.children.get(name);
    if (!child?.exited || !this.running(name)) return true;
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([child.exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), Math.max(0, boundMs))))]);
    clearTimeout(timer);
    return inTime;
  }

  /** SIGKILL to the child's whole process group (what it started goes too), then waits for it. */
  async kill(name: string): Promise<void> {
    const child = this.children.get(name);
    if (!child) return;
    child.stopping = true;
    clearTimeout(child.restartTimer);
    const pid = child.proc?.pid;
    if (pid === undefined || !this.running(name)) return;
    this.note(child, `${name} did not stop in time: killing its process group`, {});
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      child.proc?.kill('SIGKILL');
    }
    await this.waitExit(name, 5000);
  }

  private launch(child: Supervised): void {
    const { spec } = child;
    // detached: a process group of its own, out of reach of the terminal's Ctrl-C.
    const proc = spawn(spec.command, [...spec.args], { env: spec.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    child.proc = proc;
    const startedAt = Date.now();
    for (const stream of [proc.stdout, proc.stderr]) {
      let partial = '';
      stream?.on('data', (data: Buffer) => {
        const lines = (partial + data.toString()).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) if (line.trim()) this.hooks.output(spec.name, line);
      });
      stream?.on('end', () => {
        if (partial.trim()) this.hooks.output(spec.name, partial);
        partial = '';
      });
    }
    child.exited = new Promise<void>((resolve) => {
      proc.once('exit', (code, signal) => {
        resolve();
        this.exitedWith(child, proc, startedAt, code, signal);
      });
    });
    proc.once('error', (e) => this.hooks.output(spec.name, `cannot start ${spec.command}: ${e.message}`));
    const restarted = child.status.restarts > 0;
    this.note(child, restarted ? `${spec.name} restarted (pid ${proc.pid ?? '?'})` : `${spec.name} started (pid ${proc.pid ?? '?'})`, {
      state: 'running',
      pid: proc.pid,
      startedAt,
    });
  }

  private exitedWith(child: Supervised, proc: ChildProcess, startedAt: number, code: number | null, signal: NodeJS.Signals | null): void {
    if (child.proc !== proc) return;
    const name = child.spec.name;
    const how = signal !== null ? `signal ${signal}` : `code ${code}`;
    if (child.stopping) {
      this.note(child, `${name} exited (${how})`, { state: 'stopped', lastExit: how, pid: undefined });
      return;
    }
    const quick = Date.now() - startedAt < this.policy.quickMs;
    const quickFailures = quick ? child.status.quickFailures + 1 : 0;
    if (quickFailures >= this.policy.maxQuickFailures) {
      const reason = `${name} exited (${how}) ${quickFailures} times in a row, each within ${this.policy.quickMs / 1000} s of starting; giving up`;
      this.note(child, reason, { state: 'failed', lastExit: how, quickFailures, pid: undefined });
      this.giveUp(reason);
      return;
    }
    const delay = Math.min(this.policy.maxDelayMs, this.policy.firstDelayMs * 2 ** Math.max(0, quickFailures - 1));
    const streak = quickFailures > 1 ? ` (${quickFailures} quick failures in a row)` : '';
    this.note(child, `${name} exited (${how}); restarting in ${seconds(delay)}${streak}`, {
      state: 'restarting',
      lastExit: how,
      quickFailures,
      pid: undefined,
    });
    child.restartTimer = setTimeout(() => {
      if (child.stopping) return;
      child.status = { ...child.status, restarts: child.status.restarts + 1 };
      this.launch(child);
    }, delay);
  }

  private note(child: Supervised, message: string, change: Partial<ServiceStatus>): void {
    const events = [...child.status.events, { at: Date.now(), message }].slice(-MAX_EVENTS);
    const next: ServiceStatus = { ...child.status, ...change, events };
    if (next.pid === undefined) delete next.pid;
    child.status = next;
    this.hooks.event(message, next);
  }
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}
