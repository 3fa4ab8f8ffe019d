import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { CAPABILITIES, hostsFile, ociConfig, UnsupportedConfigError, type OciConfigInput } from '../src/index.js';
import { stepConfig, USER } from './harness.js';

const input: OciConfigInput = {
  rootfs: '/store/result/abc/rootfs',
  hostsFile: '/state.bundles/b/hosts',
  secretFiles: [],
  fastSync: false,
  arch: 'x64',
};

describe('the OCI config of a step', () => {
  it('runs the command with its cwd, environment and user, without a terminal', () => {
    const config = ociConfig(
      stepConfig('make', {
        cwd: '/src',
        env: [
          ['PATH', '/bin'],
          ['A', 'x=y'],
        ],
        user: USER,
      }),
      input,
    );
    expect(config.process).toMatchObject({
      terminal: false,
      args: ['/bin/sh', '-c', 'make'],
      cwd: '/src',
      env: ['PATH=/bin', 'A=x=y'],
      user: { uid: 1000, gid: 1000 },
      noNewPrivileges: false,
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
    });
    expect(config.root).toEqual({ path: '/store/result/abc/rootfs', readonly: false });
    expect(config.hostname).toBe('builder');
  });

  it('gives every capability set the reduced list', () => {
    const caps = ociConfig(stepConfig('true'), input).process.capabilities;
    expect(CAPABILITIES).toHaveLength(14);
    for (const set of [caps.bounding, caps.effective, caps.inheritable, caps.permitted]) expect(set).toEqual(CAPABILITIES);
    expect(caps.bounding).not.toContain('CAP_SYS_ADMIN');
  });

  it('isolates the network unless the step asks for the host', () => {
    const isolated = ociConfig(stepConfig('true'), input);
    expect(isolated.linux.namespaces.map((n) => n.type).sort()).toEqual(['ipc', 'mount', 'network', 'pid', 'uts']);
    expect(isolated.mounts.map((m) => m.destination)).not.toContain('/etc/resolv.conf');

    const host = ociConfig(stepConfig('true', { network: ['host'] }), input);
    expect(host.linux.namespaces.map((n) => n.type).sort()).toEqual(['ipc', 'mount', 'pid', 'uts']);
    expect(host.mounts).toContainEqual(expect.objectContaining({ destination: '/etc/resolv.conf', source: '/etc/resolv.conf', type: 'bind' }));
  });

  it('puts a (network host) step with user-mode networking in that namespace, with its resolv.conf and without CAP_NET_RAW', () => {
    const userNetwork = { netns: '/proc/4242/ns/net', resolvConf: '/bundle/resolv.conf' };
    const host = ociConfig(stepConfig('true', { network: ['host'] }), { ...input, userNetwork });
    expect(host.linux.namespaces).toContainEqual({ type: 'network', path: '/proc/4242/ns/net' });
    expect(host.mounts).toContainEqual(expect.objectContaining({ destination: '/etc/resolv.conf', source: '/bundle/resolv.conf', type: 'bind' }));
    for (const set of Object.values(host.process.capabilities)) expect(set).toEqual(CAPABILITIES.filter((c) => c !== 'CAP_NET_RAW'));
    // A step without network ignores it: a fresh namespace of its own, every capability.
    const none = ociConfig(stepConfig('true'), { ...input, userNetwork });
    expect(none.linux.namespaces).toContainEqual({ type: 'network' });
    expect(none.process.capabilities.bounding).toContain('CAP_NET_RAW');
  });

  it('rejects named networks with a clear message', () => {
    expect(() => ociConfig(stepConfig('true', { network: ['buildnet'] }), input)).toThrow(
      new UnsupportedConfigError('the runc sandbox only supports (network host); buildnet needs a backend with named networks'),
    );
    expect(() => ociConfig(stepConfig('true', { network: ['host', 'buildnet'] }), input)).toThrow(/; buildnet needs a backend/);
  });

  it('rejects a Windows user with a clear message', () => {
    expect(() => ociConfig(stepConfig('true', { user: { kind: 'windows', name: 'ContainerAdministrator' } }), input)).toThrow(
      new UnsupportedConfigError('the runc sandbox runs Unix users only (uid and gid); the Windows user "ContainerAdministrator" needs the docker sandbox'),
    );
  });

  it('rejects a relative mount target', () => {
    expect(() => ociConfig(stepConfig('true', { mounts: [{ src: '/c', dst: 'cache' }] }), input)).toThrow(UnsupportedConfigError);
  });

  it('mounts the system filesystems, the hosts file, caches and then secrets', () => {
    const config = ociConfig(
      stepConfig('true', {
        mounts: [
          { src: '/caches/opam', dst: '/home/opam/.opam/download-cache' },
          { src: '/caches/ro', dst: '/ro', readonly: true },
        ],
        secrets: [
          { target: '/run/secrets/a', value: Buffer.from('not in the config') },
          { target: '/b', value: Buffer.from('nor this') },
        ],
      }),
      { ...input, secretFiles: ['/bundle/secret-0', '/bundle/secret-1'] },
    );
    expect(config.mounts.map((m) => [m.destination, m.type])).toEqual([
      ['/proc', 'proc'],
      ['/dev', 'tmpfs'],
      ['/dev/pts', 'devpts'],
      ['/dev/shm', 'tmpfs'],
      ['/dev/mqueue', 'mqueue'],
      ['/sys', 'sysfs'],
      ['/etc/hosts', 'bind'],
      ['/home/opam/.opam/download-cache', 'bind'],
      ['/ro', 'bind'],
      ['/run/secrets/a', 'bind'],
      ['/b', 'bind'],
    ]);
    const byTarget = new Map(config.mounts.map((m) => [m.destination, m]));
    expect(byTarget.get('/sys')!.options).toContain('ro');
    expect(byTarget.get('/etc/hosts')).toMatchObject({ source: input.hostsFile, options: expect.arrayContaining(['ro']) });
    expect(byTarget.get('/home/opam/.opam/download-cache')).toMatchObject({ source: '/caches/opam' });
    expect(byTarget.get('/home/opam/.opam/download-cache')!.options).not.toContain('ro');
    expect(byTarget.get('/ro')!.options).toContain('ro');
    expect(byTarget.get('/run/secrets/a')).toMatchObject({ source: '/bundle/secret-0', options: expect.arrayContaining(['ro']) });
    expect(byTarget.get('/b')).toMatchObject({ source: '/bundle/secret-1', options: expect.arrayContaining(['ro']) });
    expect(JSON.stringify(config)).not.toContain('not in the config');
  });

  it('masks and protects the same /proc and /sys paths as `runc spec`', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-runc-spec-'));
    try {
      await execa('runc', ['spec', '--bundle', dir]);
      const reference = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { linux: { maskedPaths: string[]; readonlyPaths: string[] } };
      const config = ociConfig(stepConfig('true'), input);
      expect(config.linux.maskedPaths).toEqual(reference.linux.maskedPaths);
      expect(config.linux.readonlyPaths).toEqual(reference.linux.readonlyPaths);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses by default what Docker's default profile refuses, on every x86 ABI", () => {
    const seccomp = ociConfig(stepConfig('true'), input).linux.seccomp!;
    expect(seccomp.defaultAction).toBe('SCMP_ACT_ALLOW');
    expect(seccomp.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    const refused = seccomp.syscalls.filter((r) => !r.args && r.errnoRet === 1).flatMap((r) => r.names);
    for (const call of [
      'keyctl',
      'add_key',
      'request_key',
      'init_module',
      'finit_module',
      'delete_module',
      'kexec_load',
      'mount',
      'umount2',
      'pivot_root',
      'unshare',
      'setns',
      'bpf',
      'perf_event_open',
      'userfaultfd',
      'open_by_handle_at',
      'clock_settime',
      'swapon',
      'reboot',
    ]) {
      expect(refused, call).toContain(call);
    }
    // clone with any namespace flag, one rule per flag; clone3 answers "not implemented".
    const clones = seccomp.syscalls.filter((r) => r.names.includes('clone'));
    expect(clones.map((r) => r.args![0]!.value).reduce((a, b) => a | b, 0)).toBe(0x7e020000);
    expect(clones.every((r) => r.args![0]!.op === 'SCMP_CMP_MASKED_EQ' && r.args![0]!.value === r.args![0]!.valueTwo && r.errnoRet === 1)).toBe(true);
    expect(seccomp.syscalls.find((r) => r.names.includes('clone3'))).toMatchObject({ errnoRet: 38 });
    // Nothing a build needs: sync calls do their work, ptrace works as in Docker.
    expect(seccomp.syscalls.flatMap((r) => r.names)).not.toContain('fsync');
    expect(seccomp.syscalls.flatMap((r) => r.names)).not.toContain('ptrace');
  });

  it('has no seccomp filter when unconfined without fastSync', () => {
    expect(ociConfig(stepConfig('true'), { ...input, seccomp: 'unconfined' }).linux).not.toHaveProperty('seccomp');
  });

  it('with fastSync, turns the sync calls into successful no-ops, with or without the default rules', () => {
    const syncRule = { names: ['fsync', 'fdatasync', 'msync', 'sync', 'syncfs', 'sync_file_range'], action: 'SCMP_ACT_ERRNO', errnoRet: 0 };
    expect(ociConfig(stepConfig('true'), { ...input, fastSync: true, seccomp: 'unconfined' }).linux.seccomp).toEqual({
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
      syscalls: [syncRule],
    });
    const both = ociConfig(stepConfig('true'), { ...input, fastSync: true }).linux.seccomp!;
    expect(both.syscalls.at(-1)).toEqual(syncRule);
    expect(both.syscalls.length).toBe(ociConfig(stepConfig('true'), input).linux.seccomp!.syscalls.length + 1);
    expect(ociConfig(stepConfig('true'), { ...input, fastSync: true, arch: 'arm64' }).linux.seccomp?.architectures).toEqual([
      'SCMP_ARCH_AARCH64',
      'SCMP_ARCH_ARM',
    ]);
    // Elsewhere the runtime's native architecture is the default.
    expect(ociConfig(stepConfig('true'), { ...input, fastSync: true, arch: 'riscv64' }).linux.seccomp).not.toHaveProperty('architectures');
  });

  it('writes a hosts file that names the hostname', () => {
    expect(hostsFile('builder')).toBe('127.0.0.1 localhost builder\n');
  });
});
