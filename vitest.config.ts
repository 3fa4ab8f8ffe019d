import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Tests import libraries by package name; point those names at the sources so that
// a test run never depends on a stale build.
const alias = {
  '@cairn/spec': fileURLToPath(new URL('./libs/spec/src/index.ts', import.meta.url)),
  '@cairn/hashing': fileURLToPath(new URL('./libs/hashing/src/index.ts', import.meta.url)),
};

const project = (name: string, root: string) => ({
  resolve: { alias },
  test: { name, root, include: ['test/**/*.test.ts'], testTimeout: 120_000 },
});

export default defineConfig({
  test: {
    reporters: ['default', './tools/summary-reporter.ts'],
    projects: [
      project('spec', './libs/spec'),
      project('hashing', './libs/hashing'),
      project('cli', './apps/cli'),
    ],
  },
});
