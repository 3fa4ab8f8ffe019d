#!/usr/bin/env node
/**
 * `cairn-results-store [command]`: the service and its maintenance commands, all
 * configured from the environment (see config.ts).
 */
import 'reflect-metadata';
import { Argument, Command, CommanderError, InvalidArgumentError } from 'commander';
import { settleHttpListen } from '@cairn/service-kit';
import { TokenService, hashToken } from './auth/token-service.js';
import type { TokenId } from './ids.js';
import { ROLES, type Role } from './roles.js';
import { configFromEnv } from './config.js';
import { applyRetention } from './maintenance/retention.js';
import { formatVerifyReport, verifyStore } from './maintenance/verify-store.js';
import { openStorage, startResultsStore } from './service.js';

const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

const ENVIRONMENT = `
Environment (every command reads the same settings):
  CAIRN_RESULTS_DIR           blob store root (artifacts, archived logs, saved pages);
                              default /var/lib/cairn/results
  CAIRN_RESULTS_DB            SQLite file or postgres:// URL; default DIR/results.sqlite
  CAIRN_RESULTS_DB_FILE       a file holding CAIRN_RESULTS_DB (a PostgreSQL URL with its password)
  CAIRN_RESULTS_READ          public (anyone reads) or token (readers sign in); default public
  CAIRN_RESULTS_TOKENS_FILE   "USER ROLE sha256:HEX" lines loaded at start ("token hash")
  CAIRN_RESULTS_KEEP_LAST     keep the last N builds of every job (0: keep all)
  CAIRN_RESULTS_KEEP_FAILED_DAYS  keep failed builds D days beyond the last N
  CAIRN_RESULTS_PUBLIC_URL    the dashboard's address as users see it
  CAIRN_NATS (and its logins)  the bus
  CAIRN_HTTP_HOST, CAIRN_HTTP_PORT  the HTTP listener, default 127.0.0.1:8080
                              (or --http-host / --http-port before the command)
  (config.ts lists the rest: hooks, timeouts, the backfill, compares, proxies, uploads)

Examples:
  cairn-results-store                          serve the dashboard and the API
  cairn-results-store token create alice writer   a token for alice, printed once
  echo "$TOKEN" | cairn-results-store token hash   a line for CAIRN_RESULTS_TOKENS_FILE
  cairn-results-store verify --json            check every blob; exit 1 on damage

Exit status: 0 success, 1 a failure (damaged blobs, no such token, an error on stderr),
2 usage error.`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

async function withStorage<T>(work: (s: Awaited<ReturnType<typeof openStorage>>) => Promise<T>): Promise<T> {
  const storage = await openStorage(configFromEnv());
  try {
    return await work(storage);
  } finally {
    await storage.ds.destroy();
  }
}

function tokenId(raw: string): TokenId {
  if (!/^[1-9]\d{0,15}$/.test(raw)) throw new InvalidArgumentError('expected a token ID (a positive whole number)');
  return Number(raw) as TokenId;
}

/**
 * Runs the command `args` names and resolves to its exit status, or to undefined when
 * it keeps running (serve, until SIGTERM or SIGINT).
 */
async function main(argv: string[]): Promise<number | undefined> {
  const { env, args } = settleHttpListen('results-store', argv);
  let status: number | undefined = EXIT.ok;
  const program = new Command('cairn-results-store')
    .description(
      'The results-store keeps every build the cluster finishes (its log, artifacts and facts, in a database and a content-addressed blob store) and serves them: the dashboard, the JSON API (/openapi.json), uploads of local builds, and live views of the queue.',
    )
    .exitOverride()
    .showSuggestionAfterError()
    .showHelpAfterError('(cairn-results-store --help lists the commands and the settings)')
    .addHelpText('after', ENVIRONMENT);

  program
    .command('serve')
    .description('run the service (the default): take in results from the bus, serve HTTP')
    .action(async () => {
      const service = await startResultsStore({ env });
      const stop = () => void service.close().then(() => process.exit(0));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      status = undefined;
    });

  program
    .command('verify')
    .description('re-hash every blob; list the corrupt, the missing and the orphans (exit 1 when a blob is corrupt or missing)')
    .option('--json', 'the report as JSON')
    .action(async (options: { json?: boolean }) => {
      status = await withStorage(async ({ ds, blobs }) => {
        const report = await verifyStore(ds, blobs);
        console.log(options.json ? JSON.stringify(report, null, 2) : formatVerifyReport(report));
        return report.corrupt.length || report.missing.length ? EXIT.failed : EXIT.ok;
      });
    });

  program
    .command('retention')
    .description(
      'apply CAIRN_RESULTS_KEEP_LAST and CAIRN_RESULTS_KEEP_FAILED_DAYS now (the service does every CAIRN_RESULTS_RETENTION_INTERVAL_MS, an hour by default)',
    )
    .action(async () => {
      await withStorage(async ({ ds, blobs }) => {
        const config = configFromEnv();
        const report = await applyRetention(ds, blobs, config.retention, Date.now(), config.dataDir);
        console.log(`removed ${report.buildsRemoved} build(s) and ${report.blobsRemoved} blob(s), freed ${report.bytesFreed} bytes`);
      });
    });

  program
    .command('migrate')
    .description('bring the database schema up to date and exit (the service does so on start)')
    .action(async () => {
      await withStorage(async () => console.log('database schema is up to date'));
    });

  const token = program
    .command('token')
    .description("API tokens: readers, writers (tags, uploads), operators (the dashboard's actions) and admins (tokens, rates)");
  token
    .command('create')
    .description('make a token and print it (once: only its hash is kept)')
    .argument('<user>', 'who the token is for')
    .addArgument(new Argument('<role>', 'what it may do').choices(ROLES))
    .option('--change-role', "give an existing user this role (without it, a user's role never changes)")
    .action(async (user: string, role: Role, options: { changeRole?: boolean }) => {
      await withStorage(async ({ ds }) => {
        const { token } = await new TokenService(ds).issue(user, role, 'cli', { changeRole: options.changeRole === true });
        console.log(token);
      });
    });
  token
    .command('revoke')
    .description('revoke a token at once')
    .argument('<id>', 'the token ID (as POST /api/v1/tokens answered it)', tokenId)
    .action(async (id: TokenId) => {
      status = await withStorage(async ({ ds }) => {
        if (await new TokenService(ds).revoke(id)) return EXIT.ok;
        console.error(`cairn-results-store: no token ${id}`);
        return EXIT.failed;
      });
    });
  token
    .command('hash')
    .description('read a token on stdin, print its line for CAIRN_RESULTS_TOKENS_FILE (fill in USER and ROLE)')
    .action(async () => {
      const secret = await readStdin();
      if (!secret) throw new Error('token hash: give the token on stdin');
      console.log(`USER ROLE sha256:${hashToken(secret)}`);
    });

  const configure = (command: Command): void => {
    command.exitOverride();
    command.commands.forEach(configure);
  };
  program.commands.forEach(configure);

  try {
    await program.parseAsync(args.length ? args : ['serve'], { from: 'user' });
    return status;
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    // Help asked for exits 0; help shown for a missing command, and every parse error, are usage errors.
    return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (e: unknown) => {
    console.error(`cairn-results-store: ${e instanceof Error ? e.message : String(e)}`);
    // What started before the failure (the NATS connection, the database) would keep a
    // process alive that serves nothing: a container's restart policy or `cairn up` must
    // see it end to start it again.
    process.exit(EXIT.failed);
  },
);
