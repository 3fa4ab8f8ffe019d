import type { Command } from 'commander';
import { UserError } from '../cli-error.js';
import type { EngineFlags } from '../engine-config.js';

/** The engine loads only for the commands that use it. */
const engine = () => import('../engine-config.js');
import type { Io } from '../io.js';

const storeOption = '--store <kind:path>';
const storeHelp = 'the store (default: CAIRN_STORE or the machine config)';

/** `healthcheck`, `prune`, `delete` and `df`: looking after a store. */
export function registerStoreAdmin(program: Command, io: Io): void {
  program
    .command('healthcheck')
    .summary('prove that the store, sandbox and fetcher work')
    .description('Builds a one-step spec (echo healthcheck) on a small image under a timeout, then deletes the result.')
    .option(storeOption, storeHelp)
    .option('--fetcher <spec>', 'image source (default: the machine config)')
    .option('--sandbox <kind>', 'runc, crun, docker, jail or macos (default: the machine config)')
    .option('--runtime <runtime>', 'runc or crun')
    .option('--image <ref>', 'the image to use (default: the machine config, else busybox)')
    .option('--timeout <seconds>', 'give up after this long', '30')
    .option('--json', 'print {"ok": true, "ms": N}')
    .addHelpText('after', '\nExamples:\n  cairn healthcheck\n  cairn healthcheck --store btrfs:/var/lib/cairn/btrfs --runtime crun')
    .action(async (opts: EngineFlags & { image?: string; timeout: string; json?: boolean }) => {
      const { machineConfig, openBuilder } = await engine();
      const image = opts.image ?? (await machineConfig()).healthcheckImage ?? 'busybox';
      const timeout = seconds(opts.timeout, '--timeout');
      const builder = await openBuilder(opts);
      const started = Date.now();
      try {
        await builder.healthcheck(image, timeout * 1000);
      } finally {
        builder.close();
      }
      const ms = Date.now() - started;
      io.out(opts.json ? `${JSON.stringify({ ok: true, ms })}\n` : `healthy (${ms} ms)\n`);
    });

  program
    .command('prune')
    .summary('delete least-recently-used snapshots')
    .description('Deletes snapshots not used for DURATION, least recently used leaves first, never one a running build stands on.')
    .requiredOption('--before <duration>', 'age such as 30m, 12h, 7d')
    .option('--limit <n>', 'delete at most this many', '100')
    .option(storeOption, storeHelp)
    .option('--json', 'print {"removed": [ids]}')
    .addHelpText('after', '\nExamples:\n  cairn prune --before 7d\n  cairn prune --before 1h --limit 10 --json')
    .action(async (opts: EngineFlags & { before: string; limit: string; json?: boolean }) => {
      const before = Date.now() - duration(opts.before);
      const limit = count(opts.limit, '--limit');
      const builder = await (await engine()).openBuilder(opts);
      try {
        const removed = await builder.prune(before, limit, opts.json ? undefined : (line) => io.out(`${line}\n`));
        io.out(opts.json ? `${JSON.stringify({ removed })}\n` : `${removed.length} snapshot(s) removed\n`);
      } finally {
        builder.close();
      }
    });

  program
    .command('delete')
    .summary('delete a snapshot and everything built on it')
    .argument('<id>', 'snapshot ID')
    .option(storeOption, storeHelp)
    .addHelpText('after', '\nExample:\n  cairn delete a16a57b254ca5fe6ca5f34ab5ed0e56d9f38e13c62f7de9d876addd2061f678e')
    .action(async (id: string, opts: EngineFlags) => {
      if (!/^[0-9a-f]{64}$/.test(id)) throw new UserError(`"${id}" is not a snapshot ID (64 hex digits)`);
      const builder = await (await engine()).openBuilder(opts);
      try {
        if (!(await builder.store.exists(id))) throw new UserError(`no snapshot ${id} in ${builder.store.kind}:${builder.store.root}`);
        await builder.delete(id, (line) => io.out(`${line}\n`));
      } finally {
        builder.close();
      }
    });

  program
    .command('df')
    .summary('free space of the store, in bytes and inodes')
    .option(storeOption, storeHelp)
    .option('--json', 'print the numbers as JSON')
    .action(async (opts: EngineFlags & { json?: boolean }) => {
      const builder = await (await engine()).openBuilder(opts);
      try {
        const free = await builder.store.df();
        const snapshots = builder.snapshotCount();
        if (opts.json) io.out(`${JSON.stringify({ store: `${builder.store.kind}:${builder.store.root}`, snapshots, ...free })}\n`);
        else {
          const pct = (a: number, b: number) => (b ? `${((100 * a) / b).toFixed(1)}%` : '-');
          io.out(`store ${builder.store.kind}:${builder.store.root}: ${snapshots} snapshots\n`);
          io.out(`bytes  free ${free.bytesFree} of ${free.bytesTotal} (${pct(free.bytesFree, free.bytesTotal)})\n`);
          io.out(`inodes free ${free.inodesFree} of ${free.inodesTotal} (${pct(free.inodesFree, free.inodesTotal)})\n`);
        }
      } finally {
        builder.close();
      }
    });
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `30m`, `12h`, `7d`... in milliseconds. */
export function duration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([smhdw])$/.exec(text.trim());
  if (!m) throw new UserError(`--before takes a duration like 30m, 12h or 7d, not "${text}"`);
  return Number(m[1]) * UNITS[m[2]!]!;
}

function count(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new UserError(`${flag} takes a whole number, not "${text}"`);
  return n;
}

function seconds(text: string, flag: string): number {
  const n = Number(text);
  if (!(n > 0)) throw new UserError(`${flag} takes a number of seconds, not "${text}"`);
  return n;
}
