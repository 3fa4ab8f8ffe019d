import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Tests import libraries by package name; point those names at the sources so that
// a test run never depends on a stale build.
const LIBS = ['spec', 'hashing', 'store', 'sandbox', 'fetcher', 'machine-config', 'builder', 'contracts', 'service-kit', 'oci-image'];
const APPS = ['cli', 'spec-compiler', 'scheduler', 'worker-agent', 'results-store', 'base-image-builder'];
const alias = Object.fromEntries(LIBS.map((lib) => [`@cairn/${lib}`, fileURLToPath(new URL(`./libs/${lib}/src/index.ts`, import.meta.url))]));

const project = (name: string, root: string, include = ['test/**/*.test.ts']) => ({
  resolve: { alias },
  // Nest's decorators (the services and their tests) are TypeScript's legacy ones.
  oxc: { decorator: { legacy: true, emitDecoratorMetadata: true } },
  // Both are bounds for hangs: vitest's 10 s default for hooks was missed by hooks that
  // start a NATS server and a service on a loaded 2-core machine (load 13-17).
  test: { name, root, include, testTimeout: 120_000, hookTimeout: 60_000 },
});

export default defineConfig({
  test: {
    reporters: ['default', './tools/summary-reporter.ts'],
    projects: [
      ...LIBS.map((lib) => project(lib, `./libs/${lib}`)),
      ...APPS.map((app) => project(app, `./apps/${app}`)),
      // End-to-end: the whole cluster over a real NATS server.
      project('e2e', './test', ['e2e/**/*.test.ts']),
    ],
  },
});
