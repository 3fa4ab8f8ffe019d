import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureAll, type LogStep } from '@cairn/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { startNatsWithClient, type NatsWithClient, type RunningNats } from '../../../test/support/nats.js';
import { LogBacklog } from '../src/log-backlog.js';
import { LogPublisher } from '../src/log-publisher.js';
import { Redactor } from '../src/redactor.js';
import { assignment, logText, readLog, until } from './support.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SECRET = 'correct-horse-battery-staple';
const DROPPED = /\[cairn: (\d+) bytes of log dropped here: ([^\]\n]+)\]\n/g;

/** Numbered lines, some with the secret in them, `bytes` or a little more in all. */
function numberedLines(from: number, bytes: number): string[] {
  const lines: string[] = [];
  for (let n = from, size = 0; size < bytes; n++) {
    const line = `line ${String(n).padStart(7, '0')} ${n % 97 === 0 ? `token=${SECRET}` : 'x'.repeat(n % 50)}\n`;
    lines.push(line);
    size += line.length;
  }
  return lines;
}

const redacted = (text: string) => text.split(SECRET).join('***');

/** Everything in the spool files under `dir`. */
async function spoolContents(dir: string): Promise<string> {
  const spools = (await readdir(dir)).filter((f) => f.startsWith('cairn-log-'));
  let text = '';
  for (const spool of spools) for (const file of await readdir(join(dir, spool))) text += await readFile(join(dir, spool, file), 'utf8');
  return text;
}

describe('a job log while NATS is down: bounded in memory, spooled to disk, published in order', () => {
  let bus: NatsWithClient;
  let nats: RunningNats;
  let nc: NatsConnection;
  let scratch: string;

  beforeAll(async () => {
    bus = await startNatsWithClient('log-spool-test');
    ({ nats, nc } = bus);
    await ensureAll(nc);
    scratch = await mkdtemp(join(tmpdir(), 'cairn-log-spool-test-'));
  });
  afterAll(async () => {
    await bus?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  /** The NATS restart under way: a test that fails half-way leaves the next one a server. */
  let restarting: Promise<void> | undefined;
  afterEach(async () => {
    await restarting;
  });

  /** Takes NATS down for `downMs`; resolves once this connection has noticed, with the restart. */
  async function outage(downMs: number): Promise<{ over: Promise<void> }> {
    // Connected first (a round trip answered), or there is no disconnect to notice.
    await until('connected to NATS', () =>
      nc.flush().then(
        () => true,
        () => false,
      ),
    );
    const noticed = (async () => {
      for await (const s of nc.status()) if (s.type === 'disconnect') return;
    })();
    const over = (restarting = nats.restart(downMs));
    await noticed;
    return { over };
  }

  /**
   * Writes `lines` in batches of about 64 KiB, letting the publisher try (and fail) in
   * between, as a build's output arrives; returns the most it held in memory meanwhile.
   */
  async function writeWhileDown(logs: LogPublisher, lines: readonly string[]): Promise<number> {
    let most = 0;
    for (let at = 0; at < lines.length; at += 1000) {
      for (const line of lines.slice(at, at + 1000)) logs.write(line);
      await new Promise((r) => setTimeout(r, 5));
      most = Math.max(most, logs.waiting.memoryBytes);
    }
    return most;
  }

  it('keeps at most the memory limit in memory, spills the rest to a spool file, and publishes every line in order once NATS is back', async () => {
    const { job } = assignment({ spec: '' });
    const memoryLimit = 64 * KiB;
    const logs = new LogPublisher(nc, { client: 'alice', job, worker: 'w1', lease: 'lease-1', attempt: 1 }, new Redactor([Buffer.from(SECRET)]), {
      memoryLimit,
      spoolLimit: 64 * MiB,
      spoolDir: scratch,
    });
    logs.write('before the outage\n');
    await logs.close();

    const { over } = await outage(3000);
    const lines = numberedLines(0, 2 * MiB);
    const most = await writeWhileDown(logs, lines);
    expect(most).toBeLessThanOrEqual(memoryLimit);
    const waiting = logs.waiting;
    expect(waiting.spoolDir).toBeDefined();
    expect(waiting.spoolDir!.startsWith(join(scratch, `cairn-log-${job}-`))).toBe(true);
    expect(waiting.spoolBytes).toBeGreaterThan(MiB);
    // The spool holds the log as published: secrets already taken out.
    const spooled = await spoolContents(scratch);
    expect(spooled.length).toBe(waiting.spoolBytes);
    expect(spooled).not.toContain(SECRET);
    expect(spooled).toContain('***');

    await over;
    await logs.end('succeeded');
    const chunks = await readLog(nc, 'alice', job, 60_000);
    expect(chunks.map((c) => c.seq)).toEqual(chunks.map((_, i) => i + 1));
    expect(chunks.at(-1)).toMatchObject({ end: 'succeeded', text: '' });
    const text = logText(chunks);
    expect(text.length).toBe(redacted(`before the outage\n${lines.join('')}`).length);
    expect(text === redacted(`before the outage\n${lines.join('')}`)).toBe(true);
    expect(existsSync(waiting.spoolDir!)).toBe(false);
    expect((await readdir(scratch)).filter((f) => f.startsWith('cairn-log-'))).toEqual([]);
  });

  it('past the spool limit drops the middle of the log and publishes one line saying how many bytes and why', async () => {
    const { job } = assignment({ spec: '' });
    const spoolLimit = 256 * KiB;
    const memoryLimit = 64 * KiB;
    const logs = new LogPublisher(nc, { client: 'alice', job, worker: 'w1', lease: 'lease-1', attempt: 1 }, new Redactor([]), {
      memoryLimit,
      spoolLimit,
      spoolDir: scratch,
    });
    const first = 'before the outage\n';
    logs.write(first);
    await logs.close();

    const { over } = await outage(3000);
    const lines = numberedLines(0, 2 * MiB);
    await writeWhileDown(logs, lines);
    expect(logs.waiting.spoolBytes).toBeLessThanOrEqual(spoolLimit);
    expect(logs.waiting.memoryBytes).toBeLessThanOrEqual(memoryLimit);
    await over;
    await logs.end('failed');

    const chunks = await readLog(nc, 'alice', job, 60_000);
    expect(chunks.map((c) => c.seq)).toEqual(chunks.map((_, i) => i + 1));
    const text = logText(chunks);
    const notices = [...text.matchAll(DROPPED)];
    expect(notices).toHaveLength(1);
    const [notice] = notices as [RegExpExecArray];
    expect(notice[2]).toBe(`NATS was unreachable for too long and this job's log spool reached its limit of ${spoolLimit} bytes`);
    const dropped = Number(notice[1]);
    const written = first + lines.join('');
    // The start (what was in memory) and the most recent end are kept; the middle is gone.
    let head = text.slice(0, notice.index);
    const tail = text.slice(notice.index + notice[0].length);
    expect(head.endsWith('\n')).toBe(true);
    if (head.length + dropped + tail.length === written.length + 1) {
      // The cut fell inside a line: a line break, not part of the log, puts the notice on its own.
      expect(head.at(-2)).not.toBe('\n');
      head = head.slice(0, -1);
    }
    expect(written.startsWith(head)).toBe(true);
    expect(written.endsWith(tail)).toBe(true);
    expect(head.length + dropped + tail.length).toBe(written.length);
    expect(head.length).toBeGreaterThanOrEqual(first.length + 32 * KiB);
    expect(tail.length).toBeGreaterThan(spoolLimit / 2);
    expect(tail.endsWith(lines.at(-1)!)).toBe(true);
    expect((await readdir(scratch)).filter((f) => f.startsWith('cairn-log-'))).toEqual([]);
  });

  it("carries the engine's step boundaries as chunks of their own, in place among the text, through memory and the spool", async () => {
    const { job } = assignment({ spec: '' });
    // 64 bytes of memory: the step's output, and what follows it, go through the spool.
    const logs = new LogPublisher(nc, { client: 'alice', job, worker: 'w1', lease: 'lease-1', attempt: 1 }, new Redactor([Buffer.from(SECRET)]), {
      memoryLimit: 64,
      spoolLimit: MiB,
      spoolDir: scratch,
    });
    const output = (text: string) => logs.log({ tag: 'output', data: Buffer.from(text) });
    output('fetching');
    logs.log({ tag: 'heading', text: `/: (run (shell "echo ${SECRET}"))`, stage: '', step: true });
    output(`${'x'.repeat(200)}\n`);
    logs.log({ tag: 'note', text: '---> saved as "abc"' });
    logs.stepDone({ id: 'abc', op: `(run (shell "echo ${SECRET}"))`, stage: '', cached: false, ms: 12 });
    // A context op's heading is no step.
    logs.log({ tag: 'heading', text: '/: (workdir "/src")' });
    await logs.end('succeeded');

    const chunks = await readLog(nc, 'alice', job);
    expect(chunks.filter((c) => c.step !== undefined).every((c) => c.text === '')).toBe(true);
    const parts: (string | LogStep)[] = [];
    for (const c of chunks) {
      const last = parts.at(-1);
      if (c.step) parts.push(c.step);
      else if (typeof last === 'string') parts[parts.length - 1] = last + c.text;
      else if (c.text) parts.push(c.text);
    }
    expect(parts).toEqual([
      // The step starts on a line of its own; its heading is the first line after it.
      'fetching\n',
      { t: 'started', heading: '/: (run (shell "echo ***"))', stage: '' },
      `/: (run (shell "echo ***"))\n${'x'.repeat(200)}\n---> saved as "abc"\n`,
      { t: 'finished', stage: '', id: 'abc', cached: false, ms: 12 },
      '/: (workdir "/src")\n',
    ]);
  });

  it('removes the spool of an abandoned job', async () => {
    const { job } = assignment({ spec: '' });
    const logs = new LogPublisher(nc, { client: 'alice', job, worker: 'w1', lease: 'lease-1', attempt: 1 }, new Redactor([]), {
      memoryLimit: 16 * KiB,
      spoolDir: scratch,
    });
    const { over } = await outage(1000);
    await writeWhileDown(logs, numberedLines(0, 256 * KiB));
    const spool = logs.waiting.spoolDir;
    expect(spool !== undefined && existsSync(spool)).toBe(true);
    logs.abandon();
    expect(existsSync(spool!)).toBe(false);
    await over;
  });
});

describe('LogBacklog', () => {
  let scratch: string;
  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'cairn-log-backlog-test-'));
  });
  afterAll(async () => {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  const drain = (backlog: LogBacklog, maxChars: number) => {
    let out = '';
    for (let text = backlog.take(maxChars); text !== undefined; text = backlog.take(maxChars)) out += text;
    return out;
  };

  it('gives back multi-byte text whole through the spool, however it is cut into chunks', () => {
    const backlog = new LogBacklog({ memoryBytes: 10, spoolBytes: MiB }, scratch, 'utf8');
    const pieces = ['héllo ', 'wörld €', ' 😀😀😀 ', 'ümläut\n'.repeat(50)];
    for (const piece of pieces) backlog.push(piece);
    expect(backlog.usage.spoolBytes).toBeGreaterThan(0);
    // 5 bytes at a time: every 2-, 3- and 4-byte character gets cut at some point.
    expect(drain(backlog, 5)).toBe(pieces.join(''));
    expect(backlog.usage).toEqual({ memoryBytes: 0, spoolBytes: 0, spoolDir: undefined });
    // Empty again: text goes to memory first again.
    backlog.push('after\n');
    expect(backlog.usage).toEqual({ memoryBytes: 6, spoolBytes: 0, spoolDir: undefined });
  });

  it('says where log was lost when the spool cannot be written, and goes on once it can be', async () => {
    const dir = join(scratch, 'not-yet');
    const backlog = new LogBacklog({ memoryBytes: 8, spoolBytes: MiB }, dir, 'unwritable');
    backlog.push('kept\n');
    backlog.push('this is lost\n');
    backlog.push('and this\n');
    await mkdir(dir);
    backlog.push('spooled after the hole\n');
    expect(backlog.usage.spoolDir?.startsWith(join(dir, 'cairn-log-unwritable-'))).toBe(true);
    const text = drain(backlog, 1000);
    expect(text).toMatch(
      /^kept\n\[cairn: 22 bytes of log dropped here: the log spool in \S+not-yet could not be written \(ENOENT[^\]]*\)\]\nspooled after the hole\n$/,
    );
    expect(await readdir(dir)).toEqual([]);
  });
});
