import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateKeyPair, subjects } from '@cairn/contracts';
import { startNats, type RunningNats } from '../../../test/support/nats.js';
import { main } from '../src/main.js';

// Issue 11, item 4: `cairn submit` sent jobs that `cairn plan` already knew would fail.
// It now makes the plan's checks first, and sends nothing when they fail.

async function cairn(args: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (s) => void (out += s), err: (s) => void (err += s), readStdin: async () => stdin });
  return { code, out, err };
}

const CLIENT = 'checker';
const POOL = 'linux-x86_64';

let nats: RunningNats;
let nc: NatsConnection;
let everything: Subscription;
/** Every subject published on the server since the last reset, by anyone (the CLI included). */
let seen: string[] = [];
let dir: string;

beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  everything = nc.subscribe('>', { callback: (_err, msg) => void seen.push(msg.subject) });
  const keys = generateKeyPair();
  // Stand-ins for the scheduler: a submit that passes the checks has somewhere to go.
  nc.subscribe(subjects.schedulerKey, {
    callback: (_err, msg) => void msg.respond(JSON.stringify({ response: { ok: true, value: { publicKey: keys.publicKey } } })),
  });
  nc.subscribe(subjects.client(CLIENT, 'submit'), {
    callback: (_err, msg) => void msg.respond(JSON.stringify({ response: { ok: true, value: { job: 'j-checked0001', cacheHint: 'h', steps: 2 } } })),
  });
  await nc.flush();
  dir = await mkdtemp(join(tmpdir(), 'cairn-submit-checks-'));
  await mkdir(join(dir, 'ctx'));
  await writeFile(join(dir, 'ctx', 'present.txt'), 'here');
  await writeFile(join(dir, 'token'), 's3cr3t');
});

afterAll(async () => {
  everything?.unsubscribe();
  await nc?.close();
  await nats?.stop();
});

beforeEach(() => {
  seen = [];
});

async function specFile(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

const submit = (file: string, ...extra: string[]) => cairn(['submit', '--pool', POOL, '-f', file, '--nats', nats.url, '--client', CLIENT, ...extra]);

/** What reached the server, after a round trip that every earlier message precedes. */
async function published(): Promise<string[]> {
  await nc.flush();
  return seen.filter((s) => !s.startsWith('_INBOX.'));
}

describe('cairn submit checks what cairn plan checks, before sending anything', () => {
  it('refuses a step mounting a secret that no --secret gives, naming the file and line', async () => {
    const file = await specFile('secret.spec', '((from busybox)\n (run (shell "echo hi"))\n (run (secrets (npmrc (target /root/.npmrc))) (shell "npm ci")))');
    const r = await submit(file);
    expect(r).toMatchObject({
      code: 1,
      out: '',
      err: `cairn: ${file}:3:2: the build would fail at (run (secrets (npmrc (target /root/.npmrc))) (shell "npm ci")): no value supplied for secret "npmrc" (use --secret npmrc:FILE)\n`,
    });
    expect(await published()).toEqual([]);
  });

  it('refuses a copy of a file missing from the context, naming the file and line', async () => {
    const file = await specFile('copy.spec', '((from busybox)\n (copy (src present.txt) (dst /a))\n (copy (src missing.txt) (dst /b)))');
    const r = await submit(file, join(dir, 'ctx'));
    expect(r).toMatchObject({
      code: 1,
      out: '',
      err: `cairn: ${file}:3:2: the build would fail at (copy (src missing.txt) (dst /b)): source path "missing.txt" not found in the build context\n`,
    });
    // Not even the context was uploaded.
    expect(await published()).toEqual([]);
  });

  it('names the child build a failing step is in', async () => {
    const file = await specFile('child.spec', '((build tools\n  ((from busybox)\n   (run (secrets (tok (target /t))) (shell make))))\n (from busybox))');
    const r = await submit(file);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `cairn: ${file}:3:4: the build would fail at [tools] (run (secrets (tok (target /t))) (shell make)): no value supplied for secret "tok" (use --secret tok:FILE)\n`,
    );
    expect(await published()).toEqual([]);
  });

  it('refuses a Dockerfile whose RUN mounts an undeclared secret', async () => {
    const file = await specFile('Dockerfile', 'FROM busybox\nRUN --mount=type=secret,id=tok,target=/t make\n');
    const r = await submit(file);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(new RegExp(`^cairn: ${file}: the build would fail at \\(run .*no value supplied for secret "tok"`));
    expect(await published()).toEqual([]);
  });

  it('refuses a spec that does not parse, naming the file', async () => {
    const file = await specFile('broken.spec', '((from busybox)\n (run (shell x)\n');
    expect(await submit(file)).toMatchObject({ code: 1, err: `cairn: ${file}:2:2: "(" is never closed\n` });
    expect(await published()).toEqual([]);
  });

  it('sends a job whose checks pass (the secret given, the copied file present)', async () => {
    const file = await specFile('good.spec', '((from busybox)\n (copy (src present.txt) (dst /a))\n (run (secrets (tok (target /t))) (shell make)))');
    const noContext = await submit(file, '--secret', `tok:${join(dir, 'token')}`);
    expect(noContext).toMatchObject({ code: 0, out: 'j-checked0001\n' });
    // Without a context, as with `cairn plan`, the copy is unknown rather than failing.
    expect(await published()).toEqual([subjects.schedulerKey, subjects.client(CLIENT, 'submit')]);
  });
});
