import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Tests import libraries by package name; point those names at the sources so that
// a test run never depends on a stale build.
const LIBS = ['spec', 'hashing', 'store', 'sandbox', 'fetcher', 'builder'];
const alias = Object.fromEntries(
  LIBS.map((lib) => [`@cairn/${lib}`, fileURLToPath(new URL(`./libs/${lib}/src/index.ts`, import.meta.url))]),
);

const project = (name: string, root: string) => ({
  resolve: { alias },
  test: { name, root, include: ['test/**/*.test.ts'], testTimeout: 120_000 },
});

export default defineConfig({
  test: {
    reporters: ['default', './tools/summary-reporter.ts'],
    projects: [...LIBS.map((lib) => project(lib, `./libs/${lib}`)), project('cli', './apps/cli')],
  },
});
