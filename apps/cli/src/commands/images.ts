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
  cairn images status                       each image's state, digest and why
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

  clusterOptions(images.command('status').summary("each image's state, digest and why, from the base-image-builder").option('--json', 'print JSON')).action(
    (opts: ClusterFlags & { json?: boolean }) =>
      withCluster(
        opts,
        async (nc) => {
          const { request } = await import('../cluster/connection.js');
          const { subjects } = await import('@cairn/contracts');
          const rows = await request<BaseImageStatus[]>(nc, subjects.admin('images'), {});
          io.out(opts.json ? `${JSON.stringify(rows)}\n` : renderStatus(rows));
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

function renderStatus(rows: readonly BaseImageStatus[]): string {
  const header = ['IMAGE', 'STATE', 'DIGEST', 'PUBLISHED', 'WHY'];
  const cells = rows.map((r) => [r.name, r.state, r.digest ? r.digest.slice(7, 19) : '-', r.publishedAt ? new Date(r.publishedAt).toISOString() : '-', r.why]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  return [header, ...cells].map((c) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}
