import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectBus } from '@cairn/contracts';
import { freePort } from './ports.js';
import { stopChild } from './processes.js';

export interface RunningNats {
  readonly url: string;
  readonly port: number;
  /** JetStream's store directory: survives `restart`, so streams and buckets do too. */
  readonly storeDir: string;
  /** Stops the server (SIGTERM) and starts it again on the same port and store. */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

async function waitForPort(port: number, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}: ${log()}`);
    const up = await new Promise<boolean>((resolve) => {
      const socket = tcpConnect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nats-server did not listen on ${port} within 15 s: ${log()}`);
}

/**
 * A private nats-server with JetStream on a free port, its store in a temp directory,
 * optionally with a config file (accounts and permissions from tools/nats-config.mjs);
 * `jetstream: false` for a server without it, as a misconfigured deployment has.
 */
export async function startNats(options: { config?: string; jetstream?: boolean } = {}): Promise<RunningNats> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'cairn-nats-'));
  const storeDir = join(dir, 'js');
  const args = ['-a', '127.0.0.1', '-p', String(port), ...(options.jetstream === false ? [] : ['-js', '-sd', storeDir])];
  if (options.config !== undefined) {
    const file = join(dir, 'nats.conf');
    await writeFile(file, options.config);
    args.push('-c', file);
  }
  let child: ChildProcess;
  let output = '';
  const start = async () => {
    output = '';
    child = spawn('/usr/sbin/nats-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    await waitForPort(port, child, () => output);
  };
  const stopServer = () => stopChild(child);
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    async restart(downMs = 200) {
      await stopServer();
      await new Promise((r) => setTimeout(r, downMs));
      await start();
    },
    async stop() {
      await stopServer();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A private nats-server (startNats) and a connection to it, as a test of the bus starts. */
export interface NatsWithClient {
  readonly nats: RunningNats;
  readonly nc: NatsConnection;
  /** Closes the connection, then stops the server. */
  close(): Promise<void>;
}

/** `name`: the connection's, as the server shows it. */
export async function startNatsWithClient(name: string): Promise<NatsWithClient> {
  const nats = await startNats();
  try {
    const nc = await connectBus({ servers: nats.url, name });
    return {
      nats,
      nc,
      async close() {
        await nc.close();
        await nats.stop();
      },
    };
  } catch (e) {
    await nats.stop();
    throw e;
  }
}
