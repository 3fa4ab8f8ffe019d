import type { Command } from 'commander';
import type { BaseImageStatus } from '@cairn/contracts';
import { UserError } from '../cli-error.js';
import type { ClusterFlags } from '../cluster/connection.js';
import { clusterOptions, withCluster } from '../cluster/with-cluster.js';
import type { Io } from '../io.js';

/** Where the matrix is, from the checkout's top (the base-image-builder reads the same). */
export const DEFAULT_MATRIX_DIR = 'infra/images';

/** `cairn images ...`: the base-image matrix (plan, offline) and the base-image-builder (status, rebuild). */
export function registerImages(program: Command, io: Io): void {
  const images = program
    .command('images')
    .summary('the base images: the matrix, their state, rebuilds')
    .description(
      `The base images Cairn builds and rebuilds by itself (infra/images/, run by the
base-image-builder service; docs/base-images.md). "plan" reads the matrix alone; "status"
and "rebuild" ask the service (the admin NATS role).`,
    )
    .addHelpText(
      'after',
      `
Examples:
  cairn images plan                         every image in build order, with its spec digest
  cairn images status                       each image's state, digest, last build, next run and why
  cairn images status debian:bookworm       all of one image: tags, schedule, failure and retry, digest history
  cairn images rebuild ocaml:4.13           check its inputs now; rebuild if they changed
  cairn images rebuild --all --force        rebuild every image, changed or not`,
    );

  images
    .command('plan')
    .summary('the matrix in build order: name, tags, what it is built from, spec digest, pools')
    .option('--matrix <dir>', 'the matrix directory', DEFAULT_MATRIX_DIR)
    .option('--json', 'print JSON')
    .action(async (opts: { matrix: string; json?: boolean }) => {
      const { loadMatrix, matrixPlan, renderPlanTable, MatrixError } = await import('@cairn/base-image-builder');
      let rows;
      try {
        rows = matrixPlan(await loadMatrix(opts.matrix));
      } catch (e) {
        if (e instanceof MatrixError) throw new UserError(e.message);
        throw e;
      }
      io.out(opts.json ? `${JSON.stringify(rows, null, 2)}\n` : renderPlanTable(rows));
    });

  clusterOptions(
    images
      .command('status')
      .summary("each image's state, digest, last build, next run and why, from the base-image-builder; name images for all they have")
      .argument('[names...]', 'images to show in full: tags, digests, builds, schedule, failure, history')
      .option('--json', 'print JSON (every field, for every image or the named ones)'),
  ).action((names: string[], opts: ClusterFlags & { json?: boolean }) =>
    withCluster(
      opts,
      async (nc) => {
        const { request } = await import('../cluster/connection.js');
        const { subjects } = await import('@cairn/contracts');
        const all = await request<BaseImageStatus[]>(nc, subjects.admin('images'), {});
        const unknown = names.filter((n) => !all.some((r) => r.name === n));
        if (unknown.length)
          throw new UserError(`cairn images status: not an image of the matrix: ${unknown.join(', ')} (images: ${all.map((r) => r.name).join(', ')})`);
        const rows = names.length ? names.map((n) => all.find((r) => r.name === n)!) : all;
        io.out(opts.json ? `${JSON.stringify(rows)}\n` : names.length ? renderDetails(rows) : renderStatus(rows));
      },
      'admin',
    ),
  );

  clusterOptions(
    images
      .command('rebuild')
      .summary('check images now and rebuild those whose inputs changed (--force: rebuild anyway)')
      .argument('[names...]', 'images of the matrix, e.g. debian:bookworm')
      .option('--all', 'every image of the matrix')
      .option('--force', 'rebuild even when the inputs are unchanged'),
  ).action((names: string[], opts: ClusterFlags & { all?: boolean; force?: boolean }) => {
    if (names.length > 0 === Boolean(opts.all)) throw new UserError('cairn images rebuild: name the images, or give --all (not both)');
    return withCluster(
      opts,
      async (nc) => {
        const { request } = await import('../cluster/connection.js');
        const { subjects } = await import('@cairn/contracts');
        const rows = await request<BaseImageStatus[]>(nc, subjects.admin('images-rebuild'), { names, all: Boolean(opts.all), force: Boolean(opts.force) });
        io.out(renderStatus(rows));
      },
      'admin',
    );
  });
}

/** A time as the status shows it: UTC, to the second. */
const when = (at: number | undefined): string => (at === undefined ? '-' : new Date(at).toISOString().replace(/\.\d{3}Z$/, 'Z'));

/** The newest build of the image: in flight, failed or published, with its job. */
export function lastBuild(r: BaseImageStatus): string {
  if (r.job) return `${r.job} building`;
  const published = r.history.find((h) => h.digest === r.digest);
  if (r.failure && (published === undefined || r.failure.at >= published.at)) return `${r.failure.job ?? '(no job)'} failed`;
  return published ? `${published.job ?? '(job not recorded)'} published` : '-';
}

/** Every image, a line each (`cairn images status`, `cairn images rebuild`). */
export function renderStatus(rows: readonly BaseImageStatus[]): string {
  const header = ['IMAGE', 'STATE', 'DIGEST', 'PUBLISHED', 'LAST BUILD', 'NEXT RUN', 'WHY'];
  const cells = rows.map((r) => [r.name, r.state, r.digest ? r.digest.slice(7, 19) : '-', when(r.publishedAt), lastBuild(r), when(r.nextRunAt), r.why]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  return [header, ...cells].map((c) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

/** The named images in full (`cairn images status NAME...`): what the dashboard's image page shows. */
export function renderDetails(rows: readonly BaseImageStatus[]): string {
  return rows
    .map((r) => {
      const lines: [string, string][] = [
        ['state', `${r.state}: ${r.why}`],
        ['tags', r.tags.join(', ')],
        ['digest', r.digest ?? 'not published'],
        ['published', r.publishedAt === undefined ? 'never' : when(r.publishedAt)],
        ['last build', lastBuild(r)],
        ['schedule', r.schedule ? `${r.schedule} (UTC)` : 'not reported'],
        ['next run', r.nextRunAt === undefined ? 'none' : when(r.nextRunAt)],
        ['inputs', r.inputs ?? 'not computed yet'],
      ];
      if (r.job) lines.push(['building', `job ${r.job}`]);
      const f = r.failure;
      if (f) {
        lines.push(['last failure', `${when(f.at)} ${f.job ? `job ${f.job}` : '(no job)'}: ${f.reason}`]);
        lines.push([
          '',
          `${f.count} failed attempt${f.count === 1 ? '' : 's'}; ${f.retryAt === undefined ? 'no retries left: waits for new inputs or a forced rebuild' : `retry at ${when(f.retryAt)}`}`,
        ]);
      } else lines.push(['last failure', 'none of its current inputs']);
      if (r.history.length === 0) lines.push(['history', 'never published']);
      r.history.forEach((h, i) => lines.push([i === 0 ? 'history' : '', `${h.digest}  ${when(h.at)}  ${h.job ? `job ${h.job}` : '(job not recorded)'}`]));
      const width = Math.max(...lines.map(([k]) => k.length));
      return `${r.name}\n${lines.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join('\n')}\n`;
    })
    .join('\n');
}
