import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logText } from '../../store/test/store-behaviour.js';
import { CollectedLog, makeHarness, spec, type Harness } from './engine-harness.js';

const VALUE = 'hunter2-very-secret-value\n';
const SECRET = VALUE.trim();
const BASE64 = Buffer.from(VALUE).toString('base64');

// The second half of the value is printed 300 ms after the first, so it reaches the
// engine in another chunk; the step ends on the start of the value, which is held back
// until the output ends and must then be written.
const STEP = `(run (secrets (x (target /run/secrets/x))) (shell "cat /run/secrets/x; echo; cat /run/secrets/x | base64; printf %s hunter2-very; sleep 0.3; echo -secret-value; printf %s hunter2-very"))`;

function expectMasked(text: string, where: string) {
  expect(text, where).not.toContain(SECRET);
  expect(text, where).not.toContain(BASE64);
  expect(text, where).toContain(`***\n\n***\n***\nhunter2-very`);
}

describe.each(['btrfs', 'overlayfs'] as const)('secret masking in the engine on the %s store with runc', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await makeHarness(kind);
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it('masks the value and its base64 in the live log, the stored log and the replay of a cached build', async () => {
    const s = spec(STEP);
    const secrets = new Map([['x', Buffer.from(VALUE)]]);
    const live = new CollectedLog();
    const id = await h.builder.build(s, { log: live.log, secrets });
    expectMasked(live.output, 'live log');
    expect(live.output.endsWith('hunter2-very')).toBe(true);
    expectMasked(await logText(h.store, id), 'stored log');
    const runs = h.sandbox.runs;
    const replayed = new CollectedLog();
    expect(await (await h.reopen()).build(s, { log: replayed.log, secrets })).toBe(id);
    expect(h.sandbox.runs).toBe(runs);
    expect(replayed.notes.some((n) => n.includes(`"${id}" from cache`))).toBe(true);
    expectMasked(replayed.output, 'replayed log');
  });
});

describe('secret masking of a log stored before masking existed', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await makeHarness('overlayfs');
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it('masks the replay on a cache hit, but leaves the logs of steps without secrets as they are', async () => {
    const secrets = new Map([['x', Buffer.from(VALUE)]]);
    const withSecret = spec(`(run (secrets (x (target /run/secrets/x))) (shell "echo old"))`);
    const id = await h.builder.build(withSecret, { log: () => undefined, secrets });
    await writeFile(join(h.store.root, 'result', id, 'log'), `old ${SECRET} ${BASE64}\n`);
    const replayed = new CollectedLog();
    await h.builder.build(withSecret, { log: replayed.log, secrets });
    expect(replayed.output).toContain('old *** ***\n');
    // A step without secrets pays nothing, and hides nothing.
    const plain = await h.builder.build(spec(`(run (shell "echo ${SECRET}"))`), { log: () => undefined, secrets });
    const again = new CollectedLog();
    await h.builder.build(spec(`(run (shell "echo ${SECRET}"))`), { log: again.log, secrets });
    expect(again.output).toContain(SECRET);
    expect(await logText(h.store, plain)).toContain(SECRET);
  });
});
