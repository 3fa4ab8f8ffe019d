import { describe, expect, it } from 'vitest';
import { createSandbox, DockerSandbox, JailSandbox, MacosSandbox, RuncSandbox, type SandboxKind } from '../src/index.js';

describe('createSandbox', () => {
  it.each(['runc', 'crun'] as const)('makes a %s sandbox', (kind) => {
    const sandbox = createSandbox(kind, { stateDir: '/run/cairn/test' });
    expect(sandbox).toBeInstanceOf(RuncSandbox);
    expect(sandbox.kind).toBe(kind);
  });

  it('makes the docker, jail and macos sandboxes, by configuration only', () => {
    expect(createSandbox('docker', { stateDir: '/run/cairn/test' })).toBeInstanceOf(DockerSandbox);
    expect(createSandbox('jail', { stateDir: '/run/cairn/test' })).toBeInstanceOf(JailSandbox);
    expect(createSandbox('macos', { stateDir: '/run/cairn/test', macos: { uid: 1001 } })).toBeInstanceOf(MacosSandbox);
    expect(() => createSandbox('macos', { stateDir: '/run/cairn/test' })).toThrow('the macos sandbox needs its build-slot user');
  });

  it('names the valid choices for anything else', () => {
    expect(() => createSandbox('lxc' as SandboxKind, { stateDir: '/run/cairn/test' })).toThrow(
      'unknown sandbox "lxc": choose one of runc, crun, docker, jail, macos',
    );
  });
});
