import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadMatrix, matrixPlan, MatrixError, parseMatrix, renderPlanTable } from '../src/index.js';

const MATRIX_DIR = fileURLToPath(new URL('../../../infra/images/', import.meta.url));
const golden = (name: string) => fileURLToPath(new URL(`./golden/${name}`, import.meta.url));

/**
 * The real matrix's plan is kept as a golden file: a change to infra/images/ fails this
 * test until someone looks at the new plan and accepts it with
 *   CAIRN_UPDATE_GOLDEN=1 npx vitest run --config vitest.config.ts --project base-image-builder matrix
 */
async function matchesGolden(name: string, actual: string): Promise<void> {
  if (process.env.CAIRN_UPDATE_GOLDEN === '1') await writeFile(golden(name), actual);
  expect(actual, `${name} differs from the plan of infra/images/: review the change, then update the golden file (CAIRN_UPDATE_GOLDEN=1)`).toBe(
    await readFile(golden(name), 'utf8'),
  );
}

describe('the image matrix of infra/images', () => {
  it('plans as the reviewed golden files say (table and JSON)', async () => {
    const rows = matrixPlan(await loadMatrix(MATRIX_DIR, 'infra/images'));
    await matchesGolden('images-plan.txt', renderPlanTable(rows));
    await matchesGolden('images-plan.json', `${JSON.stringify(rows, null, 2)}\n`);
  });

  it('is in dependency order, with the four images of the issue', async () => {
    const names = (await loadMatrix(MATRIX_DIR)).images.map((i) => i.name);
    expect(names).toEqual(['busybox:latest', 'debian:bookworm', 'debian:bookworm-build', 'ocaml:4.13']);
  });
});

const specs: Record<string, string> = {
  'root.spec': '((from bootstrap) (run (shell true)))',
  'child.spec': '((from root:1) (run (shell true)))',
  'grandchild.spec': '((from child:1) (run (shell true)))',
};
const read = async (name: string) => {
  const text = specs[name];
  if (text === undefined) throw new Error(`cannot read m/${name} (ENOENT)`);
  return { text, shown: `m/${name}` };
};
const parse = (yaml: string) => parseMatrix(yaml, 'm/matrix.yaml', read);
const image = (fields: string) => `defaults: { pools: [p], schedule: "0 3 * * 1" }\nimages:\n${fields}`;

describe('matrix loading', () => {
  it('orders parents before children whatever the file order', async () => {
    const m = await parse(
      image(
        `  - { name: "grand:1", parent: "child:1", spec: grandchild.spec }\n  - { name: "child:1", parent: "root:1", spec: child.spec }\n  - { name: "root:1", bootstrap: { kind: busybox-static }, spec: root.spec }\n`,
      ),
    );
    expect(m.images.map((i) => i.name)).toEqual(['root:1', 'child:1', 'grand:1']);
  });

  it.each([
    [
      'an unknown parent, with a suggestion',
      `  - { name: "root:1", bootstrap: { kind: busybox-static }, spec: root.spec }\n  - { name: "child:1", parent: "rot:1", spec: child.spec }\n`,
      'm/matrix.yaml: images[1] (child:1).parent: rot:1 is not an image of the matrix; did you mean "root:1"?',
    ],
    [
      'a spec whose (from) is not the parent',
      `  - { name: "x:1", bootstrap: { kind: busybox-static }, spec: child.spec }\n`,
      "m/matrix.yaml: images[0] (x:1).spec: m/child.spec starts (from root:1); it must be (from bootstrap), the image's bootstrap",
    ],
    [
      'a missing spec file',
      `  - { name: "x:1", bootstrap: { kind: busybox-static }, spec: nope.spec }\n`,
      'm/matrix.yaml: images[0] (x:1).spec: cannot read m/nope.spec (ENOENT)',
    ],
    [
      'both bootstrap and parent',
      `  - { name: "x:1", bootstrap: { kind: busybox-static }, parent: "y:1", spec: root.spec }\n`,
      'images[0] (x:1): give exactly one of bootstrap',
    ],
    [
      'a bad cron schedule',
      `  - { name: "x:1", bootstrap: { kind: busybox-static }, spec: root.spec, schedule: "every day" }\n`,
      'images[0] (x:1).schedule: "every day" is not a cron schedule',
    ],
    [
      'a misspelt field',
      `  - { name: "x:1", bootstrap: { kind: busybox-static }, spec: root.spec, pool: [a] }\n`,
      'images[0] (x:1).pool: not a field (known: name, tags, bootstrap, parent, spec, pools, platforms, schedule, probe); did you mean "pools"?',
    ],
    [
      'a bad debootstrap variant',
      `  - { name: "x:1", bootstrap: { kind: debootstrap, suite: bookworm, variant: mini }, spec: root.spec }\n`,
      'images[0] (x:1).bootstrap.variant: "mini" is not a debootstrap variant',
    ],
    ['a name without a tag', `  - { name: "x", bootstrap: { kind: busybox-static }, spec: root.spec }\n`, 'images[0] (x).name: "x" is not repository:tag'],
    [
      'two platforms',
      `  - { name: "x:1", bootstrap: { kind: busybox-static }, spec: root.spec, platforms: [linux/amd64, linux/arm64] }\n`,
      'images[0] (x:1).platforms: one platform per image for now',
    ],
    [
      "tags without the name's own",
      `  - { name: "x:1", tags: ["2"], bootstrap: { kind: busybox-static }, spec: root.spec }\n`,
      'images[0] (x:1).tags: must include 1, the tag of the name',
    ],
  ])('names the file and field of %s', async (_what, entries, message) => {
    const e = await parse(image(entries)).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(MatrixError);
    expect((e as Error).message).toContain(message);
  });

  it('names the line and column of a spec that does not parse', async () => {
    specs['bad.spec'] = '((from bootstrap)\n (runn (shell true)))';
    const e = await parse(image(`  - { name: "x:1", bootstrap: { kind: busybox-static }, spec: bad.spec }\n`)).catch((err: unknown) => err);
    expect((e as Error).message).toMatch(/^m\/matrix\.yaml: images\[0\] \(x:1\)\.spec: m\/bad\.spec:2:3: unknown op "runn"/);
  });

  it('refuses parents that go round in a circle', async () => {
    specs['a.spec'] = '((from b:1) (run (shell true)))';
    specs['b.spec'] = '((from a:1) (run (shell true)))';
    await expect(parse(image(`  - { name: "a:1", parent: "b:1", spec: a.spec }\n  - { name: "b:1", parent: "a:1", spec: b.spec }\n`))).rejects.toThrow(
      'the parents go round in a circle: a:1 -> b:1 -> a:1',
    );
  });
});
