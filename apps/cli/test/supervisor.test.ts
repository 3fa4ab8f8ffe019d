import { describe, expect, it } from 'vitest';
import type { ServiceStatus } from '@cairn/contracts';
import { Supervisor } from '../src/cluster/supervisor.js';

const node = process.execPath;
const policy = { firstDelayMs: 100, maxDelayMs: 400, quickMs: 2000, maxQuickFailures: 4 };

function supervised() {
  const events: string[] = [];
  const output: string[] = [];
  const statuses = new Map<string, ServiceStatus>();
  const supervisor = new Supervisor(
    {
      output: (name, line) => output.push(`${name}: ${line}`),
      event: (message, status) => {
        events.push(message);
        statuses.set(status.name, status);
      },
    },
    policy,
  );
  return { supervisor, events, statuses, output };
}

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('not within the time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('Supervisor', () => {
  it('restarts a child killed with SIGKILL, in its own process group, and says so', async () => {
    const { supervisor, events, statuses } = supervised();
    supervisor.start({ name: 'sleeper', command: node, args: ['-e', 'setInterval(() => {}, 1000)'], env: process.env });
    const first = supervisor.pid('sleeper')!;
    // detached: the child leads a process group of its own, so a terminal's Ctrl-C misses it.
    expect(Number((await import('node:fs')).readFileSync(`/proc/${first}/stat`, 'utf8').split(') ')[1]!.split(' ')[2])).toBe(first);
    process.kill(first, 'SIGKILL');
    await until(() => statuses.get('sleeper')?.restarts === 1 && supervisor.running('sleeper'));
    expect(supervisor.pid('sleeper')).not.toBe(first);
    expect(events).toContain('sleeper exited (signal SIGKILL); restarting in 0.1 s');
    expect(events.some((e) => /^sleeper restarted \(pid \d+\)$/.test(e))).toBe(true);
    expect(await supervisor.stop('sleeper', 'SIGTERM', 5000)).toBe(true);
    expect(statuses.get('sleeper')?.state).toBe('stopped');
  });

  it('backs off while a child keeps failing at once, then gives up with the reason', async () => {
    const { supervisor, events, statuses } = supervised();
    const started = Date.now();
    supervisor.start({ name: 'crasher', command: node, args: ['-e', 'process.exit(3)'], env: process.env });
    const reason = await supervisor.failed;
    expect(reason).toBe('crasher exited (code 3) 4 times in a row, each within 2 s of starting; giving up');
    expect(events.filter((e) => e.startsWith('crasher exited (code 3); restarting in'))).toEqual([
      'crasher exited (code 3); restarting in 0.1 s',
      'crasher exited (code 3); restarting in 0.2 s (2 quick failures in a row)',
      'crasher exited (code 3); restarting in 0.4 s (3 quick failures in a row)',
    ]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(700);
    expect(statuses.get('crasher')).toMatchObject({ state: 'failed', restarts: 3, quickFailures: 4, lastExit: 'code 3' });
  });

  it('a child stopped on purpose is not restarted; one that ignores SIGTERM is killed with its group', async () => {
    const { supervisor, events, output } = supervised();
    supervisor.start({
      name: 'stubborn',
      command: node,
      args: ['-e', "process.on('SIGTERM', () => {}); console.log('armed'); setInterval(() => {}, 1000)"],
      env: process.env,
    });
    await until(() => output.includes('stubborn: armed'));
    expect(await supervisor.stop('stubborn', 'SIGTERM', 300)).toBe(false);
    await supervisor.kill('stubborn');
    expect(supervisor.running('stubborn')).toBe(false);
    await new Promise((r) => setTimeout(r, 300));
    expect(events.filter((e) => e.includes('restart'))).toEqual([]);
  });
});
