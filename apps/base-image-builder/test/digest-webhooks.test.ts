/**
 * The webhook settings are checked when the service starts, each error naming the
 * variable; a receiver that never answers holds no delivery past the service's stop.
 * (Delivery itself, signed and retried, is tested on the running service in
 * base-image-builder.test.ts.)
 */
import { createServer } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DigestWebhooks } from '../src/digest-webhooks.js';

const SECRET = 'a-secret-of-twenty-four-c';
let dir: string;
let secretFile: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cairn-webhooks-'));
  secretFile = join(dir, 'secret');
  await writeFile(secretFile, `${SECRET}\n`);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const fromEnv = (env: NodeJS.ProcessEnv, log: (m: string) => void = () => undefined) => DigestWebhooks.fromEnv(env, log);

describe('webhooks on a new digest: settings', () => {
  it('none without CAIRN_IMAGE_WEBHOOKS', async () => {
    expect(await fromEnv({})).toBeUndefined();
    expect(await fromEnv({ CAIRN_IMAGE_WEBHOOKS: ' , ' })).toBeUndefined();
  });

  it('refuses what is not an http(s) URL, naming the entry', async () => {
    await expect(fromEnv({ CAIRN_IMAGE_WEBHOOKS: 'http://a.example/x, not a url', CAIRN_IMAGE_WEBHOOK_SECRET_FILE: secretFile })).rejects.toThrow(
      /CAIRN_IMAGE_WEBHOOKS: entry 2 is not a URL/,
    );
    await expect(fromEnv({ CAIRN_IMAGE_WEBHOOKS: 'ftp://a.example/x', CAIRN_IMAGE_WEBHOOK_SECRET_FILE: secretFile })).rejects.toThrow(
      /entry 1 \(ftp:\/\/a\.example\/x\) is not an http or https URL/,
    );
    const withUser = await fromEnv({ CAIRN_IMAGE_WEBHOOKS: 'http://user:pw@a.example/x', CAIRN_IMAGE_WEBHOOK_SECRET_FILE: secretFile }).catch((e: Error) => e);
    expect(String(withUser)).toMatch(/entry 1 \(http:\/\/a\.example\/x\) has a user or password/);
    expect(String(withUser)).not.toContain('pw');
  });

  it('needs a readable secret of 16 characters or more, and never shows it', async () => {
    await expect(fromEnv({ CAIRN_IMAGE_WEBHOOKS: 'http://a.example/x' })).rejects.toThrow(/CAIRN_IMAGE_WEBHOOK_SECRET_FILE is not/);
    await expect(fromEnv({ CAIRN_IMAGE_WEBHOOKS: 'http://a.example/x', CAIRN_IMAGE_WEBHOOK_SECRET_FILE: join(dir, 'absent') })).rejects.toThrow(
      /CAIRN_IMAGE_WEBHOOK_SECRET_FILE .*absent: .*ENOENT/,
    );
    await writeFile(join(dir, 'short'), 'short-one');
    const short = await fromEnv({ CAIRN_IMAGE_WEBHOOKS: 'http://a.example/x', CAIRN_IMAGE_WEBHOOK_SECRET_FILE: join(dir, 'short') }).catch((e: Error) => e);
    expect(String(short)).toMatch(/shorter than 16 characters/);
    expect(String(short)).not.toContain('short-one');
  });

  it('a receiver that never answers holds nothing past stop(); its URL is logged without its query', async () => {
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const log: string[] = [];
    try {
      const hooks = await fromEnv(
        { CAIRN_IMAGE_WEBHOOKS: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/in?token=t0k`, CAIRN_IMAGE_WEBHOOK_SECRET_FILE: secretFile },
        (m) => log.push(m),
      );
      hooks!.send([{ event: 'image.published', image: 'box:1', repository: 'box', tag: '1', digest: `sha256:${'a'.repeat(64)}`, at: Date.now() }]);
      await new Promise((r) => setTimeout(r, 200));
      await hooks!.stop();
      expect(log.at(-1)).toMatch(/^webhook http:\/\/127\.0\.0\.1:\d+\/in: box:1 1 -> sha256:a+: not delivered .*the service is stopping$/);
      expect(log.join('\n')).not.toMatch(/t0k|a-secret/);
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });
});
