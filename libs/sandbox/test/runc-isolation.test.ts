import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StepFailedError, UnsupportedConfigError } from '../src/index.js';
import { RUNTIMES, scratch, tree, USER } from './harness.js';

// The host side of the network tests: a web server on the host's loopback.
let server: Server;
let port: number;
let requests = 0;
beforeAll(async () => {
  server = createServer((_req, res) => {
    requests++;
    res.end('hello from the host\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe.each(RUNTIMES)('%s: isolation', (runtime) => {
  it('without network, sees only loopback and cannot reach the host', async () => {
    const s = await scratch(runtime);
    const interfaces = await s.run("ip -o link | cut -d: -f2; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
    expect(interfaces).toBe(' lo\nlo\n');
    const before = requests;
    const { output, error } = await s.attempt(`wget -q -O - http://127.0.0.1:${port}/`);
    expect(error).toBeInstanceOf(StepFailedError);
    expect(output).toMatch(/refused/);
    expect(requests).toBe(before);
  });

  it('with (network host) and hostNetwork "shared", reaches the host\'s loopback and uses its resolv.conf', async () => {
    const s = await scratch(runtime, { hostNetwork: 'shared' });
    expect(await s.run(`wget -q -O - http://127.0.0.1:${port}/`, { network: ['host'] })).toBe('hello from the host\n');
    if (existsSync('/etc/resolv.conf')) {
      expect(await s.run('cat /etc/resolv.conf', { network: ['host'] })).toBe(readFileSync('/etc/resolv.conf', 'utf8'));
    }
  });

  it('rejects a named network before starting anything', async () => {
    const s = await scratch(runtime);
    const before = await tree(s.rootfs);
    const { error } = await s.attempt('true', { network: ['buildnet'] });
    expect(error).toBeInstanceOf(UnsupportedConfigError);
    expect((error as Error).message).toBe('the runc sandbox only supports (network host); buildnet needs a backend with named networks');
    expect(await tree(s.rootfs)).toEqual(before);
  });

  it('rejects a Windows user', async () => {
    const s = await scratch(runtime);
    const { error } = await s.attempt('true', { user: { kind: 'windows', name: 'ContainerAdministrator' } });
    expect(error).toBeInstanceOf(UnsupportedConfigError);
    expect((error as Error).message).toMatch(/Unix users only.*"ContainerAdministrator"/);
  });

  it("bounds root's capabilities to Docker's default set", async () => {
    const s = await scratch(runtime);
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW
    // SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP, as bits.
    expect(await s.run('grep -E "^Cap(Bnd|Eff)" /proc/self/status')).toBe('CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n');
    expect(await s.run('grep CapBnd /proc/self/status', { user: USER })).toBe('CapBnd:\t00000000a80425fb\n');
  });

  it('masks the /proc and /sys paths that leak the host', async () => {
    const s = await scratch(runtime);
    const masked = ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/proc/sched_debug', '/proc/acpi', '/sys/firmware'].filter((p) => existsSync(p));
    expect(masked.length).toBeGreaterThan(0);
    const script = masked.map((p) => (statSync(p).isDirectory() ? `ls -A ${p} | wc -l` : `wc -c < ${p}`)).join('; ');
    expect((await s.run(script)).split('\n').filter(Boolean).map(Number)).toEqual(masked.map(() => 0));
    expect(await s.run('grep -c " /proc/sys ro," /proc/self/mountinfo; grep -c " /sys ro," /proc/self/mountinfo')).toBe('1\n1\n');
  });

  it('limits open files to 1024', async () => {
    const s = await scratch(runtime);
    expect(await s.run('ulimit -n; ulimit -Hn')).toBe('1024\n1024\n');
  });

  it("runs under a seccomp filter that refuses what Docker's default profile refuses", async () => {
    const s = await scratch(runtime);
    expect(await s.run('grep "^Seccomp:" /proc/self/status')).toBe('Seccomp:\t2\n');
    // A user namespace (root again, with every capability, inside it) in both ways to ask:
    // unshare(2), and clone(2) with CLONE_NEWUSER (busybox's unshare --fork still calls
    // unshare; the C library's fork falls back from clone3 to clone).
    const { output, error } = await s.attempt('unshare -U true');
    expect(error).toBeInstanceOf(StepFailedError);
    expect(output).toMatch(/Operation not permitted/);
    // Mounting a new filesystem, loading a module: refused for root as for anyone.
    const mount = await s.attempt('mkdir -p /mnt/t && mount -t tmpfs none /mnt/t');
    expect(mount.error).toBeInstanceOf(StepFailedError);
    expect(mount.output).toMatch(/Operation not permitted|permission denied/i);
    const insmod = await s.attempt('head -c 4096 /dev/zero > /tmp/m.ko && insmod /tmp/m.ko');
    expect(insmod.error).toBeInstanceOf(StepFailedError);
    expect(insmod.output).toMatch(/Operation not permitted/);
    // What builds need still works: processes, threads of busybox, files, sync.
    expect(await s.run('sh -c "echo child" & wait; sync; echo done')).toBe('child\ndone\n');
  });

  it('with fastSync, sync calls succeed under a seccomp filter', async () => {
    const s = await scratch(runtime, { fastSync: true });
    const script = 'grep "^Seccomp:" /proc/self/status; sync && dd if=/dev/zero of=/tmp/f bs=4k count=4 conv=fsync 2>/dev/null && wc -c < /tmp/f';
    expect(await s.run(script)).toBe('Seccomp:\t2\n16384\n');
  });
});
