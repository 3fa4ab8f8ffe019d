import { describe, expect, it } from 'vitest';
import { createSandbox, RuncSandbox, type SandboxKind } from '../src/index.js';

describe('createSandbox', () => {
  it.each(['runc', 'crun'] as const)('makes a %s sandbox', (kind) => {
    const sandbox = createSandbox(kind, { stateDir: '/run/cairn/test' });
    expect(sandbox).toBeInstanceOf(RuncSandbox);
    expect(sandbox.kind).toBe(kind);
  });

  it('names the valid choices for anything else', () => {
    expect(() => createSandbox('docker' as SandboxKind, { stateDir: '/run/cairn/test' })).toThrow('unknown sandbox "docker": choose one of runc, crun');
  });
});
