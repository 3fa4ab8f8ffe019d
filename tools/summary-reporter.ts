import { writeFileSync } from 'node:fs';
import type { Reporter, TestModule } from 'vitest/node';

// Ends a test run with "N passed, N failed", or hands the counts to tools/run-tests.mjs
// (through CAIRN_TEST_SUMMARY) so that the final line also counts build, typecheck and lint.
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    let passed = 0;
    let failed = unhandledErrors.length;
    for (const mod of testModules) {
      const tests = [...mod.children.allTests()];
      // A file that fails to load has no tests but must still count as a failure.
      if (tests.length === 0 && mod.state() === 'failed') failed += 1;
      for (const test of tests) {
        const state = test.result().state;
        if (state === 'passed') passed += 1;
        else if (state === 'failed') failed += 1;
      }
    }
    const file = process.env.CAIRN_TEST_SUMMARY;
    if (file) writeFileSync(file, JSON.stringify({ passed, failed }));
    else process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
  }
}
