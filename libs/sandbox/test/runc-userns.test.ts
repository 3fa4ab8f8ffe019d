/**
 * Issue 18: with `userns: remap`, a step's root is host uid 100000, not the host's root.
 * Checked from the host while the step runs (the owner of what it writes), by what it
 * may no longer do (write a file of the host's root), and by what the store keeps (the
 * same owners, modes and files as without a user namespace).
 */
import { existsSync } from 'node:fs';
import { chmod, chown, copyFile, link, lstat, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { REMAP, shiftIn, shiftOut, StepFailedError, UnsupportedConfigError } from '../src/index.js';
import { RUNTIMES, scratch, tree, USER, waitFor } from './harness.js';

/** owner:group and mode of every entry under `dir`, to compare a tree before and after. */
async function owners(dir: string): Promise<string[]> {
  const entries = await tree(dir);
  return Promise.all(
    entries.map(async (e) => {
      const path = join(dir, e.split(' ')[0]!);
      const st = await lstat(path);
      return `${e} ${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)}`;
    }),
  );
}

describe.each(RUNTIMES)('%s: user namespace (userns remap)', (runtime) => {
  it("maps the step's root to host uid 100000: what it writes is that uid's, and a file of the host's root is not its own", async () => {
    const s = await scratch(runtime, { userns: 'remap' });
    const cache = join(s.dir, 'cache');
    await mkdir(cache);
    // The step writes, then waits for the host to look and to put a file of its root there.
    // One stream: runc relays stdout and stderr apart, which may reorder them.
    const step = s.attempt(
      `
      exec 2>&1
      cat /proc/self/uid_map /proc/self/gid_map | tr -s ' '
      id -u
      echo made > /cache/by-step; mkdir /made-dir; touch /tmp/ready
      while [ ! -e /tmp/host-file ]; do sleep 0.05; done
      echo more >> /tmp/host-file && echo "wrote the host's file"
      chown 0:0 /tmp/host-file && echo "took the host's file"
      cat /tmp/host-file
      echo ok`,
      { mounts: [{ src: cache, dst: '/cache' }] },
    );
    await waitFor(() => existsSync(join(s.rootfs, 'tmp/ready')), 'the step to write', 60_000);
    expect((await stat(join(cache, 'by-step'))).uid).toBe(REMAP.hostId);
    expect((await stat(join(cache, 'by-step'))).gid).toBe(REMAP.hostId);
    expect((await stat(join(s.rootfs, 'made-dir'))).uid).toBe(REMAP.hostId);
    // Readable by all, writable by its owner only: the host's root, whom the step is not.
    await writeFile(join(s.rootfs, 'tmp/host-file.new'), 'host\n', { mode: 0o644 });
    await chown(join(s.rootfs, 'tmp/host-file.new'), 0, 0);
    await import('node:fs/promises').then((fs) => fs.rename(join(s.rootfs, 'tmp/host-file.new'), join(s.rootfs, 'tmp/host-file')));
    const { output, error } = await step;
    expect(error).toBeUndefined();
    expect(output).toMatch(/^ 0 100000 65536\n 0 100000 65536\n0\n/);
    expect(output).toMatch(/Permission denied/);
    expect(output).toMatch(/Operation not permitted/);
    expect(output).not.toMatch(/wrote the host's file|took the host's file/);
    expect(output).toMatch(/host\nok\n$/);
    expect(await readFile(join(s.rootfs, 'tmp/host-file'), 'utf8')).toBe('host\n');
    // Afterwards the store has the IDs the step saw: its root's files are the host's root's.
    expect((await stat(join(cache, 'by-step'))).uid).toBe(0);
    expect((await stat(join(s.rootfs, 'made-dir'))).uid).toBe(0);
    expect((await stat(join(s.rootfs, 'tmp/host-file'))).uid).toBe(0);
  });

  it('leaves the same files, owners and modes as a step without a user namespace', async () => {
    const script = `
      mkdir -p /out/sub && echo a > /out/a && chown 1000:1000 /out/a
      cp /bin/busybox /out/suid && chmod 4755 /out/suid && chmod 2755 /out/sub
      ln /out/a /out/a-link; ln -s a /out/a-sym; chown -h 1000:1000 /out/a-sym
      su user -c 'echo by-user > /tmp/u'`;
    const plain = await scratch(runtime);
    const remapped = await scratch(runtime, { userns: 'remap' });
    await plain.run(script);
    await remapped.run(script);
    expect(await owners(remapped.rootfs)).toEqual(await owners(plain.rootfs));
    expect((await stat(join(remapped.rootfs, 'out/suid'))).mode & 0o7777).toBe(0o4755);
    expect((await stat(join(remapped.rootfs, 'tmp/u'))).uid).toBe(1000);
    // A non-root step user is 101000 on the host while it runs; its secret is readable by it.
    expect(await remapped.run('id -u; cat /run/secrets/s', { user: USER, secrets: [{ target: '/run/secrets/s', value: Buffer.from('shh\n') }] })).toBe(
      '1000\nshh\n',
    );
  });

  it('gives the owners back when the step fails', async () => {
    const s = await scratch(runtime, { userns: 'remap' });
    const before = await owners(s.rootfs);
    const { error } = await s.attempt('touch /made; exit 3');
    expect(error).toBeInstanceOf(StepFailedError);
    expect(await owners(s.rootfs)).toEqual([...before, '/made file 0:0 644'].sort());
  });

  it.each(['shared', 'isolated'] as const)('runs (network host) steps with hostNetwork %s, with a read-only /sys of the host', async (hostNetwork) => {
    const s = await scratch(runtime, { userns: 'remap', hostNetwork });
    const output = await s.run(`id -u; awk '$5 == "/sys" { print $5, substr($6, 1, 2) }' /proc/self/mountinfo; ip -o link | grep -c -v ' lo:'`, {
      network: ['host'],
    });
    // An interface besides loopback (the host's, or slirp4netns's tap0), and /sys read-only.
    expect(output).toMatch(/^0\n\/sys ro\n[1-9]\d*\n$/);
  });

  it('keeps file capabilities and the IDs of ACLs, in effect inside the step and unchanged afterwards', async () => {
    const script = 'busybox-cap grep CapEff /proc/self/status; cat /for-user';
    const run = async (userns: 'host' | 'remap') => {
      const s = await scratch(runtime, { userns });
      // busybox runs the applet named by its first argument when its own name starts with "busybox".
      await copyFile(join(s.rootfs, 'bin/busybox'), join(s.rootfs, 'bin/busybox-cap'));
      await execa('setcap', ['cap_net_raw+ep', join(s.rootfs, 'bin/busybox-cap')]);
      await writeFile(join(s.rootfs, 'for-user'), 'for user 1000\n', { mode: 0o600 });
      await execa('setfacl', ['-m', 'u:1000:r', join(s.rootfs, 'for-user')]);
      const output = await s.run(script, { user: USER });
      return { output, after: await idXattrs(s.rootfs) };
    };
    const host = await run('host');
    const remap = await run('remap');
    // cap_net_raw (bit 13) is the step user's through the file, and the ACL lets it read.
    expect(host.output).toBe('CapEff:\t0000000000002000\nfor user 1000\n');
    expect(remap.output).toBe(host.output);
    expect(remap.after).toEqual(host.after);
    expect(remap.after).toEqual([
      '/bin/busybox-cap cap_net_raw=ep',
      '# file: for-user\n# owner: 0\n# group: 0\nuser::rw-\nuser:1000:r--\ngroup::---\nmask::r--\nother::---\n',
    ]);
  });

  it('refuses a root filesystem with an owner outside the mapped range, naming it, and changes nothing', async () => {
    const s = await scratch(runtime, { userns: 'remap' });
    await writeFile(join(s.rootfs, 'far'), '');
    await chown(join(s.rootfs, 'far'), 70_000, 0);
    const before = await owners(s.rootfs);
    const { error } = await s.attempt('true');
    expect(error).toBeInstanceOf(UnsupportedConfigError);
    expect((error as Error).message).toBe(
      `${join(s.rootfs, 'far')} is owned by 70000:0, outside the IDs 0-65535 a step's user namespace maps (userns remap); run it with userns host`,
    );
    expect(await owners(s.rootfs)).toEqual(before);
  });
});

/** The file capabilities and the ACL of for-user under `root`, as getcap and getfacl print them. */
async function idXattrs(root: string): Promise<string[]> {
  const caps = (await execa('getcap', ['-r', root])).stdout.split('\n').filter((l) => l !== '');
  const acl = (await execa('getfacl', ['-n', 'for-user'], { cwd: root })).stdout;
  return [...caps.map((l) => l.replace(root, '')), acl];
}

describe('shiftIn and shiftOut', () => {
  it("move the IDs of ACLs, keep file capabilities, and give a step's setcap (revision 3, its root's) the host's revision 2", async () => {
    const s = await scratch('runc');
    const dir = join(s.dir, 'tree');
    await mkdir(join(dir, 'shared'), { recursive: true });
    await writeFile(join(dir, 'tool'), '');
    await execa('setcap', ['cap_net_raw+ep', join(dir, 'tool')]);
    await execa('setfacl', ['-m', 'u:1000:r,g:50:r', join(dir, 'tool')]);
    await execa('setfacl', ['-d', '-m', 'g:1000:rx', join(dir, 'shared')]);
    const acls = async () => (await execa('getfacl', ['-n', '-R', '-p', '--omit-header', '--skip-base', dir])).stdout.replace(/#.*\n/g, '');
    await shiftIn([dir]);
    expect((await execa('getcap', [join(dir, 'tool')])).stdout).toBe(`${join(dir, 'tool')} cap_net_raw=ep`);
    expect(await acls()).toContain('user:101000:r--\ngroup::r--\ngroup:100050:r--');
    expect(await acls()).toContain('default:group:101000:r-x');
    // What `setcap cap_sys_time+ep` in the step writes: revision 3, rootid 100000 (the step's root).
    await writeFile(join(dir, 'by-step'), '');
    await chown(join(dir, 'by-step'), REMAP.hostId, REMAP.hostId);
    await execa('setfattr', ['-n', 'security.capability', '-v', '0x01000003' + '00000002000000000000000000000000' + 'a0860100', join(dir, 'by-step')]);
    expect((await execa('getcap', ['-n', join(dir, 'by-step')])).stdout).toBe(`${join(dir, 'by-step')} cap_sys_time=ep [rootid=100000]`);
    await shiftOut([dir]);
    expect((await execa('getcap', [join(dir, 'tool')])).stdout).toBe(`${join(dir, 'tool')} cap_net_raw=ep`);
    expect((await execa('getcap', ['-n', join(dir, 'by-step')])).stdout).toBe(`${join(dir, 'by-step')} cap_sys_time=ep`);
    expect(await acls()).toContain('user:1000:r--\ngroup::r--\ngroup:50:r--');
    expect(await acls()).toContain('default:group:1000:r-x');
  });

  it('refuse an ACL naming an ID outside the mapped range, naming the file, and change nothing', async () => {
    const s = await scratch('runc');
    const dir = join(s.dir, 'tree');
    await mkdir(dir);
    await writeFile(join(dir, 'far'), '');
    await execa('setfacl', ['-m', 'u:70000:r', join(dir, 'far')]);
    await expect(shiftIn([dir])).rejects.toThrow(
      `${join(dir, 'far')} (system.posix_acl_access) names user 70000, outside the IDs a step's user namespace maps (userns remap); run it with userns host`,
    );
    expect((await stat(join(dir, 'far'))).uid).toBe(0);
  });

  it('change a hard-linked file once and keep setuid and setgid bits', async () => {
    const s = await scratch('runc');
    const file = join(s.dir, 'tree/file');
    await mkdir(join(s.dir, 'tree'));
    await writeFile(file, '');
    await chown(file, 5, 6);
    await chmod(file, 0o6755);
    await link(file, join(s.dir, 'tree/again'));
    await shiftIn([join(s.dir, 'tree')]);
    expect(await stat(file)).toMatchObject({ uid: 100_005, gid: 100_006 });
    expect((await stat(file)).mode & 0o7777).toBe(0o6755);
    await shiftOut([join(s.dir, 'tree')]);
    expect(await stat(file)).toMatchObject({ uid: 5, gid: 6 });
    expect((await stat(file)).mode & 0o7777).toBe(0o6755);
  });
});
