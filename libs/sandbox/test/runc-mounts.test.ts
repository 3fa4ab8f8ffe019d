import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { StepFailedError } from '../src/index.js';
import { RUNTIMES, scratch, tree, USER, type Scratch } from './harness.js';

/** A value that cannot appear in the rootfs by chance. */
const secretValue = () => `swordfish-${randomBytes(12).toString('hex')}`;

/** Whether `value` occurs in any file under `dir`, busybox binary included. */
async function occursIn(dir: string, value: string): Promise<boolean> {
  const { exitCode } = await execa('grep', ['-rqF', value, dir], { reject: false });
  return exitCode === 0;
}

async function cacheDir(s: Scratch, files: Record<string, string> = {}): Promise<string> {
  const dir = join(s.dir, 'cache');
  await mkdir(dir);
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

describe.each(RUNTIMES)('%s: mounts', (runtime) => {
  it('leaves the root filesystem as it found it: no mountpoints, no /etc/hosts', async () => {
    const s = await scratch(runtime);
    const before = await tree(s.rootfs);
    await s.run('true', {
      network: ['host'],
      mounts: [{ src: await cacheDir(s), dst: '/var/cache/tool' }],
      secrets: [{ target: '/run/secrets/a', value: Buffer.from(secretValue()) }],
    });
    expect(await tree(s.rootfs)).toEqual(before);
    expect(await readdir(`${s.stateDir}.bundles`)).toEqual([]);
  });

  it('a cache is writable and its writes land in the host directory', async () => {
    const s = await scratch(runtime);
    const cache = await cacheDir(s, { old: 'from an earlier step\n' });
    const output = await s.run('cat /cache/old; echo new > /cache/new; mkdir /cache/sub', { mounts: [{ src: cache, dst: '/cache' }] });
    expect(output).toBe('from an earlier step\n');
    expect(await readFile(join(cache, 'new'), 'utf8')).toBe('new\n');
    expect((await readdir(cache)).sort()).toEqual(['new', 'old', 'sub']);
  });

  it('a read-only mount cannot be written', async () => {
    const s = await scratch(runtime);
    const cache = await cacheDir(s);
    const { error } = await s.attempt('touch /cache/x', { mounts: [{ src: cache, dst: '/cache', readonly: true }] });
    expect(error).toBeInstanceOf(StepFailedError);
    expect(await readdir(cache)).toEqual([]);
  });

  it('keeps what the step created beside a mountpoint', async () => {
    const s = await scratch(runtime);
    await s.run('echo kept > /var/cache/readme', { mounts: [{ src: await cacheDir(s), dst: '/var/cache/tool' }] });
    expect(await readFile(join(s.rootfs, 'var/cache/readme'), 'utf8')).toBe('kept\n');
    expect(await readdir(join(s.rootfs, 'var/cache'))).toEqual(['readme']);
  });

  it('a secret is readable at its target, read-only, and leaves no trace', async () => {
    const s = await scratch(runtime);
    const value = secretValue();
    const output = await s.run('cat /run/secrets/token; echo; if echo x 2>/dev/null >/run/secrets/token; then echo writable; else echo read-only; fi', {
      secrets: [{ target: '/run/secrets/token', value: Buffer.from(value) }],
    });
    expect(output).toBe(`${value}\nread-only\n`);
    expect(await tree(s.rootfs)).not.toContainEqual(expect.stringMatching(/^\/run/));
    expect(await occursIn(s.rootfs, value)).toBe(false);
    expect(await occursIn(`${s.stateDir}.bundles`, value)).toBe(false);
  });

  it('a secret is readable by a non-root step user', async () => {
    const s = await scratch(runtime);
    const value = secretValue();
    expect(await s.run('cat /home/user/.token', { user: USER, secrets: [{ target: '/home/user/.token', value: Buffer.from(value) }] })).toBe(value);
    expect(await occursIn(s.rootfs, value)).toBe(false);
  });

  it('a secret over an existing file leaves that file unchanged', async () => {
    const s = await scratch(runtime);
    const value = secretValue();
    await writeFile(join(s.rootfs, 'etc/credentials'), 'placeholder\n');
    expect(await s.run('cat /etc/credentials', { secrets: [{ target: '/etc/credentials', value: Buffer.from(value) }] })).toBe(value);
    expect(await readFile(join(s.rootfs, 'etc/credentials'), 'utf8')).toBe('placeholder\n');
  });

  it('a secret behind a symlinked directory leaves no trace where the link points', async () => {
    const s = await scratch(runtime);
    const value = secretValue();
    // As on Debian and most images: /var/run is a link to /run.
    await mkdir(join(s.rootfs, 'run'));
    await mkdir(join(s.rootfs, 'var'));
    await symlink('../run', join(s.rootfs, 'var/run'));
    const before = await tree(s.rootfs);
    expect(await s.run('cat /var/run/secrets/key; ls /run/secrets', { secrets: [{ target: '/var/run/secrets/key', value: Buffer.from(value) }] })).toBe(
      `${value}key\n`,
    );
    expect(await tree(s.rootfs)).toEqual(before);
    expect(await occursIn(s.rootfs, value)).toBe(false);
  });

  it('a failed step leaves no trace of its secrets either', async () => {
    const s = await scratch(runtime);
    const value = secretValue();
    const before = await tree(s.rootfs);
    const { error } = await s.attempt('exit 1', { secrets: [{ target: '/run/secrets/token', value: Buffer.from(value) }] });
    expect(error).toBeInstanceOf(StepFailedError);
    expect(await tree(s.rootfs)).toEqual(before);
    expect(await occursIn(s.dir, value)).toBe(false);
  });
});
