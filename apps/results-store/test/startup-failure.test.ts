/**
 * A results-store that cannot start must end, so that whatever supervises it (a compose
 * restart policy, `cairn up`) starts it again. Found after a compose `down`/`up`: a
 * JetStream request timed out at start, the error was printed, and the process stayed up
 * on its open NATS connection, never listening, until the test gave up.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { freePort } from '../../../test/support/ports.js';

const APP = fileURLToPath(new URL('..', import.meta.url));

describe('a results-store that fails to start', () => {
  let nats: RunningNats | undefined;
  let child: ChildProcess | undefined;
  let dir: string | undefined;
  afterAll(async () => {
    child?.kill('SIGKILL');
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('exits 1 naming the reason when the NATS it reached has no JetStream, though the connection is open', async () => {
    dir = await mkdtemp(join(tmpdir(), 'cairn-rs-startup-'));
    // Without JetStream: the connection succeeds, the streams cannot be made.
    nats = await startNats({ jetstream: false });
    child = spawn(process.execPath, ['--import', 'tsx/esm', join(APP, 'src/main.ts'), 'serve'], {
      cwd: APP,
      env: {
        ...process.env,
        TSX_TSCONFIG_PATH: join(APP, 'tsconfig.json'),
        CAIRN_NATS: nats.url,
        CAIRN_RESULTS_DIR: dir,
        CAIRN_RESULTS_DB: join(dir, 'results.sqlite'),
        CAIRN_HTTP_PORT: String(await freePort()),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    // A bound for a hang: before the fix it never exited.
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), 45_000);
      child!.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(stderr).toContain('cairn-results-store: jetstream is not enabled');
    expect(code, stderr).toBe(1);
  }, 60_000);
});
