import { describe, expect, it } from 'vitest';
import type { ImageRecord } from '../src/core/image-record.js';
import { DEFAULT_POLICY, planRebuilds, retryAt } from '../src/core/rebuild-plan.js';
import { inputsDigest, parseMatrix, probePackages, specDigests, type Matrix } from '../src/index.js';

const specs: Record<string, string> = {
  'root.spec': '((from bootstrap) (run (shell true)))',
  'child.spec': '((from root:1) (run (shell true)))',
  'grand.spec': '((from child:1) (run (shell true)))',
  'other.spec': '((from bootstrap) (run (shell other)))',
};
const matrixOf = (overrides: Record<string, string> = {}) =>
  parseMatrix(
    `defaults: { pools: [p], schedule: "0 3 * * 1" }
images:
  - { name: "root:1", bootstrap: { kind: busybox-static }, spec: root.spec }
  - { name: "child:1", parent: "root:1", spec: child.spec, probe: [gcc] }
  - { name: "grand:1", parent: "child:1", spec: grand.spec }
  - { name: "other:1", bootstrap: { kind: busybox-static }, spec: other.spec }
`,
    'matrix.yaml',
    async (name) => ({ text: overrides[name] ?? specs[name]!, shown: name }),
  );

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const NOW = 1_000_000;

/** Every image published with the inputs it has now: the steady state. */
function steady(matrix: Matrix): Map<string, ImageRecord> {
  const records = new Map<string, ImageRecord>();
  const digests = specDigests(matrix);
  matrix.images.forEach((image, i) => {
    const parentDigest = image.parent ? records.get(image.parent)!.current!.digest : undefined;
    const probe = image.probe.length > 0 ? { packages: 'gcc=12', at: 0 } : undefined;
    const inputs = inputsDigest({
      specDigest: digests.get(image.name)!,
      ...(parentDigest ? { parentDigest } : {}),
      ...(probe ? { packages: probe.packages } : {}),
    });
    const current = { digest: digest(String(i)), inputs, at: 0 };
    records.set(image.name, { name: image.name, current, history: [current], ...(probe ? { probe } : {}) });
  });
  return records;
}

const rebuilds = (decisions: ReturnType<typeof planRebuilds>) => decisions.filter((d) => d.rebuild).map((d) => d.name);

describe('which images a pass rebuilds', () => {
  it('none when every input is unchanged', async () => {
    const matrix = await matrixOf();
    const decisions = planRebuilds(matrix, specDigests(matrix), steady(matrix), NOW);
    expect(rebuilds(decisions)).toEqual([]);
    expect(decisions.every((d) => d.state === 'published' && d.why === 'inputs unchanged')).toBe(true);
  });

  it('an image whose layer spec changed, and its children only after it has a new digest', async () => {
    const before = await matrixOf();
    const records = steady(before);
    const after = await matrixOf({ 'child.spec': '((from root:1) (run (shell "true changed")))' });
    const first = planRebuilds(after, specDigests(after), records, NOW);
    expect(rebuilds(first)).toEqual(['child:1']);
    expect(first.find((d) => d.name === 'grand:1')).toMatchObject({ state: 'published', why: 'waiting for child:1' });
    // child:1 published under a new digest: now grand:1's inputs changed.
    const child = records.get('child:1')!;
    const published = { digest: digest('c'), inputs: first.find((d) => d.name === 'child:1')!.inputs!, at: NOW };
    records.set('child:1', { ...child, current: published, history: [published, ...child.history] });
    expect(rebuilds(planRebuilds(after, specDigests(after), records, NOW))).toEqual(['grand:1']);
  });

  it('an image whose probed packages changed', async () => {
    const matrix = await matrixOf();
    const records = steady(matrix);
    records.set('child:1', { ...records.get('child:1')!, probe: { packages: 'gcc=13', at: NOW } });
    expect(rebuilds(planRebuilds(matrix, specDigests(matrix), records, NOW))).toEqual(['child:1']);
  });

  it('a failed build is retried after its backoff, then reported failed; the old image stays', async () => {
    const before = await matrixOf();
    const records = steady(before);
    const after = await matrixOf({ 'root.spec': '((from bootstrap) (run (shell false)))' });
    const inputs = planRebuilds(after, specDigests(after), records, NOW).find((d) => d.name === 'root:1')!.inputs!;
    const fail = (count: number, when: number) =>
      records.set('root:1', {
        ...records.get('root:1')!,
        failures: { inputs, count, last: 'exit 1', at: when, ...(retryAt(count, when) === undefined ? {} : { retryAt: retryAt(count, when)! }) },
      });
    fail(1, NOW);
    const waiting = planRebuilds(after, specDigests(after), records, NOW + 1).find((d) => d.name === 'root:1')!;
    expect(waiting.state).toBe('retrying');
    const later = planRebuilds(after, specDigests(after), records, NOW + DEFAULT_POLICY.backoff.maxMs).find((d) => d.name === 'root:1')!;
    expect(later.rebuild).toEqual({ attempt: 2, forced: false });
    fail(DEFAULT_POLICY.maxAttempts, NOW);
    const failed = planRebuilds(after, specDigests(after), records, NOW + 10 * DEFAULT_POLICY.backoff.maxMs);
    expect(failed.find((d) => d.name === 'root:1')).toMatchObject({ state: 'failed' });
    // Its children keep their last good images and are not rebuilt.
    expect(rebuilds(failed)).toEqual([]);
    expect(records.get('root:1')!.current!.digest).toBe(digest('0'));
  });

  it('at most maxInFlight rebuilds at a time, counting those in flight', async () => {
    const matrix = await matrixOf();
    const records = new Map<string, ImageRecord>([['root:1', { name: 'root:1', history: [], building: { inputs: digest('1'), attempt: 1, startedAt: NOW } }]]);
    const decisions = planRebuilds(matrix, specDigests(matrix), records, NOW, { ...DEFAULT_POLICY, maxInFlight: 1 });
    expect(rebuilds(decisions)).toEqual([]);
    expect(decisions.find((d) => d.name === 'other:1')!.why).toBe('queued behind 1 rebuilds in flight');
    expect(decisions.find((d) => d.name === 'child:1')).toMatchObject({ state: 'waiting', why: 'waiting for root:1' });
  });

  it('--force rebuilds an unchanged image', async () => {
    const matrix = await matrixOf();
    const records = steady(matrix);
    records.set('other:1', { ...records.get('other:1')!, forceRequested: true });
    expect(planRebuilds(matrix, specDigests(matrix), records, NOW).find((d) => d.rebuild)).toMatchObject({
      name: 'other:1',
      rebuild: { attempt: 1, forced: true },
    });
  });
});

describe('probe output', () => {
  it('gives the versions apt would install and those already newest, sorted', () => {
    const output = [
      'Reading package lists...',
      'dune is already the newest version (3.6.2-1).',
      'Inst libc6 [2.36-9] (2.36-9+deb12u4 Debian-Security:12/stable-security [amd64])',
      'Inst build-essential (12.9 Debian:12.5/stable [amd64])',
      'Conf build-essential (12.9 Debian:12.5/stable [amd64])',
    ].join('\n');
    expect(probePackages(output)).toBe('build-essential=12.9\ndune=3.6.2-1\nlibc6=2.36-9+deb12u4');
  });

  it('refuses output without any package (a probe that failed quietly)', () => {
    expect(() => probePackages('E: Could not open lock file')).toThrow('the probe printed no package versions');
  });
});
