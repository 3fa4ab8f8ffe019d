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
      let failedHere = 0;
      for (const test of tests) {
        const state = test.result().state;
        if (state === 'passed') passed += 1;
        else if (state === 'failed') failedHere += 1;
      }
      // A file that failed outside its tests (it did not load, or a beforeAll/afterAll
      // hook threw and its tests were skipped) still counts as a failure.
      if (failedHere === 0 && mod.state() === 'failed') failedHere = 1;
      failed += failedHere;
    }
    const file = process.env.CAIRN_TEST_SUMMARY;
    if (file) writeFileSync(file, JSON.stringify({ passed, failed }));
    else process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
  }
}
