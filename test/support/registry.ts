import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

const REGISTRY = '/usr/bin/docker-registry';

export interface RunningRegistry {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly port: number;
  /** The filesystem driver's root directory, for tests that tamper with stored blobs. */
  readonly storage: string;
  stop(): Promise<void>;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function stopProcess(child: ChildProcess): Promise<void> {
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited(child);
  clearTimeout(timer);
}

/** Polls `url` until it answers 200, or fails once `child` dies or time runs out. */
async function waitReady(url: string, child: ChildProcess, log: () => string): Promise<boolean> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    try {
      if ((await fetch(url)).ok) return true;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stopProcess(child);
  throw new Error(`docker-registry did not become ready at ${url}:\n${log()}`);
}

/**
 * Runs the Debian docker-registry (distribution v2) on a free loopback port with its
 * storage in a temp directory; `stop` kills it and deletes the storage. A port taken
 * between choosing and binding it is retried with another.
 */
export async function startRegistry(): Promise<RunningRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-registry-'));
  const storage = join(dir, 'storage');
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const config = join(dir, 'config.yml');
    await writeFile(
      config,
      [
        'version: 0.1',
        'log:',
        '  level: warn',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${storage}`,
        'http:',
        `  addr: 127.0.0.1:${port}`,
        `  secret: ${randomBytes(16).toString('hex')}`,
        '',
      ].join('\n'),
    );
    const child = spawn(REGISTRY, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let output = '';
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const url = `http://127.0.0.1:${port}`;
    if (await waitReady(`${url}/v2/`, child, () => output)) {
      return {
        url,
        port,
        storage,
        stop: async () => {
          await stopProcess(child);
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
    if (attempt === 3) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`docker-registry exited at start:\n${output}`);
    }
  }
}

export interface TokenAuthProxy {
  /** `http://127.0.0.1:PORT`, the registry's API behind token auth. */
  readonly url: string;
  /** How many tokens /token has handed out. */
  tokensIssued(): number;
  stop(): Promise<void>;
}

/** `repository:NAME:pull` for `/v2/NAME/{manifests,blobs,tags}/...`, the scope a request needs. */
function scopeOf(path: string): string | undefined {
  const match = /^\/v2\/(.+)\/(?:manifests|blobs|tags)\//.exec(path);
  return match ? `repository:${match[1]}:pull` : undefined;
}

/**
 * An HTTP server in front of a registry that plays the distribution token flow: any
 * /v2/ request without a token it issued for that repository gets 401 and a Bearer
 * challenge pointing at its own /token endpoint, which hands out tokens (only for
 * `credentials`, when given, sent as basic auth). Authorised requests are passed on.
 */
export async function startTokenAuthProxy(
  registryUrl: string,
  options: { readonly credentials?: { readonly username: string; readonly password: string } } = {},
): Promise<TokenAuthProxy> {
  const upstream = new URL(registryUrl);
  const tokens = new Map<string, string | undefined>();
  let issued = 0;
  let realm = '';

  const issue = (req: IncomingMessage, res: ServerResponse) => {
    const { credentials } = options;
    const expected = credentials && `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    if (expected && req.headers.authorization !== expected) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
      return;
    }
    const token = randomBytes(24).toString('hex');
    tokens.set(token, new URL(req.url ?? '', realm).searchParams.get('scope') ?? undefined);
    issued += 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 }));
  };

  const forward = (req: IncomingMessage, res: ServerResponse) => {
    const headers = { ...req.headers };
    delete headers.authorization;
    const out = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (reply) => {
      res.writeHead(reply.statusCode ?? 502, reply.headers);
      reply.pipe(res);
    });
    out.on('error', (e) => res.writeHead(502).end(String(e)));
    req.pipe(out);
  };

  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', realm).pathname;
    if (path === '/token') return issue(req, res);
    const scope = scopeOf(path);
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const granted = token !== undefined && tokens.has(token) && (scope === undefined || tokens.get(token) === scope);
    if (granted) return forward(req, res);
    const challenge = `Bearer realm="${realm}",service="cairn-test-registry"${scope ? `,scope="${scope}"` : ''}`;
    res
      .writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' })
      .end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  realm = `${url}/token`;
  return {
    url,
    tokensIssued: () => issued,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
