#!/usr/bin/env node
/**
 * `cairn-results-store [command]`: the service and its maintenance commands, all
 * configured from the environment (see config.ts).
 */
import 'reflect-metadata';
import { TokenService, hashToken, isRole } from './auth/token-service.js';
import type { TokenId } from './ids.js';
import { configFromEnv } from './config.js';
import { applyRetention } from './maintenance/retention.js';
import { formatVerifyReport, verifyStore } from './maintenance/verify-store.js';
import { openStorage, startResultsStore } from './service.js';

const USAGE = `usage: cairn-results-store [command]
  serve                      run the service (the default)
  verify [--json]            re-hash every blob; list corrupt, missing and orphan blobs
                             (exit 1 when a blob is corrupt or missing)
  retention                  apply CAIRN_RESULTS_KEEP_LAST / CAIRN_RESULTS_KEEP_FAILED_DAYS now
  migrate                    bring the database schema up to date and exit
  token create USER ROLE [--change-role]
                             make a token (ROLE: reader, writer, admin); printed once;
                             an existing user keeps its role unless --change-role
  token revoke ID            revoke a token at once
  token hash                 read a token on stdin, print the hash line for a tokens file`;

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

async function main(args: string[]): Promise<number> {
  const [command = 'serve', ...rest] = args;
  switch (command) {
    case 'serve': {
      const service = await startResultsStore();
      const stop = () => void service.close().then(() => process.exit(0));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      return -1;
    }
    case 'verify':
      return withStorage(async ({ ds, blobs }) => {
        const report = await verifyStore(ds, blobs);
        console.log(rest.includes('--json') ? JSON.stringify(report, null, 2) : formatVerifyReport(report));
        return report.corrupt.length || report.missing.length ? 1 : 0;
      });
    case 'retention':
      return withStorage(async ({ ds, blobs }) => {
        const config = configFromEnv();
        const report = await applyRetention(ds, blobs, config.retention, Date.now(), config.dataDir);
        console.log(`removed ${report.buildsRemoved} build(s) and ${report.blobsRemoved} blob(s), freed ${report.bytesFreed} bytes`);
        return 0;
      });
    case 'migrate':
      return withStorage(async () => {
        console.log('database schema is up to date');
        return 0;
      });
    case 'token': {
      const [verb, user, role, ...flags] = rest;
      if (verb === 'hash') {
        const token = await readStdin();
        if (!token) throw new Error('token hash: give the token on stdin');
        console.log(`USER ROLE sha256:${hashToken(token)}`);
        return 0;
      }
      if (verb === 'create' && user && role && isRole(role) && flags.every((f) => f === '--change-role')) {
        return withStorage(async ({ ds }) => {
          const { token } = await new TokenService(ds).issue(user, role, 'cli', { changeRole: flags.includes('--change-role') });
          console.log(token);
          return 0;
        });
      }
      if (verb === 'revoke' && user && /^[1-9]\d{0,15}$/.test(user) && role === undefined) {
        return withStorage(async ({ ds }) => {
          if (await new TokenService(ds).revoke(Number(user) as TokenId)) return 0;
          console.error(`cairn-results-store: no token ${user}`);
          return 1;
        });
      }
      console.error(USAGE);
      return 2;
    }
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return 0;
    default:
      console.error(`cairn-results-store: unknown command ${JSON.stringify(command)}\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (e: unknown) => {
    console.error(`cairn-results-store: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  },
);
