/**
 * Where a service's HTTP side (/livez, /readyz, /metrics, and the results-store's pages)
 * listens: `--http-host`/`--http-port` on the command line, else CAIRN_HTTP_HOST /
 * CAIRN_HTTP_PORT, else the service's fixed default below on 127.0.0.1. Container
 * images set CAIRN_HTTP_HOST=0.0.0.0; the fixed ports let compose, Kubernetes probes and
 * Prometheus name them without asking. docs/deploy.md lists the same table.
 */
export const DEFAULT_HTTP_PORTS = {
  'results-store': 8080,
  'spec-compiler': 8081,
  scheduler: 8082,
  'worker-agent': 8083,
  'base-image-builder': 8084,
} as const;

export type ServiceName = keyof typeof DEFAULT_HTTP_PORTS;

export const DEFAULT_HTTP_HOST = '127.0.0.1';

export class ListenError extends Error {
  override readonly name = 'ListenError';
}

export interface HttpListen {
  readonly host: string;
  readonly port: number;
}

const FLAGS = { '--http-host': 'CAIRN_HTTP_HOST', '--http-port': 'CAIRN_HTTP_PORT' } as const;

/**
 * Takes the listen flags out of `argv` and settles the address: the environment a
 * service starts with (CAIRN_HTTP_HOST and CAIRN_HTTP_PORT set, which startService
 * reads) and the arguments left for the service's own parser.
 */
export function settleHttpListen(
  service: ServiceName,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): { env: NodeJS.ProcessEnv; args: string[]; listen: HttpListen } {
  const settled: NodeJS.ProcessEnv = { ...env };
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    if (!(flag in FLAGS)) {
      args.push(arg);
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined || value === '') throw new ListenError(`${flag} needs a value`);
    settled[FLAGS[flag as keyof typeof FLAGS]] = value;
  }
  settled.CAIRN_HTTP_HOST ||= DEFAULT_HTTP_HOST;
  settled.CAIRN_HTTP_PORT ||= String(DEFAULT_HTTP_PORTS[service]);
  return { env: settled, args, listen: httpListenOf(settled, 0) };
}

/** CAIRN_HTTP_HOST / CAIRN_HTTP_PORT, checked; `fallbackPort` (0: any free port) when unset. */
export function httpListenOf(env: NodeJS.ProcessEnv, fallbackPort: number): HttpListen {
  const raw = env.CAIRN_HTTP_PORT;
  const port = raw === undefined || raw === '' ? fallbackPort : Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ListenError(`CAIRN_HTTP_PORT=${JSON.stringify(raw)}: expected a port number 0-65535`);
  return { host: env.CAIRN_HTTP_HOST || DEFAULT_HTTP_HOST, port };
}
