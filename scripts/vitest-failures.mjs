#!/usr/bin/env node
// Prints what failed in a vitest JSON report, one line per failed test or file,
// and the counts: for the end of CI's output, which is all that CI shows.
//
//   node scripts/vitest-failures.mjs REPORT [EXTRA_FAILED]
//
// The last line is "N passed, N failed"; EXTRA_FAILED (failed steps outside the
// report) is added to the failures. A missing or unreadable report counts as one
// failure. A failure keeps its first lines (a fixture's stderr, a stack), since
// a fault that comes once in many runs has only this output to go by.
import { readFileSync } from 'node:fs';

const [reportPath, extra = '0'] = process.argv.slice(2);
let passed = 0;
let failed = Number(extra);
try {
  const report = JSON.parse(readFileSync(reportPath, 'utf8'));
  passed = report.numPassedTests;
  failed += report.numFailedTests + (report.numRuntimeErrorTestSuites || 0);
  for (const file of report.testResults) {
    if (file.status === 'failed' && file.assertionResults.length === 0)
      console.log(`FAILED ${file.name}: ${(file.message || '').slice(0, 400)}`);
    for (const test of file.assertionResults)
      if (test.status === 'failed')
        console.log(`FAILED ${file.name} > ${test.fullName}: ${(test.failureMessages[0] || '').split('\n').slice(0, 12).join(' | ').slice(0, 2000)}`);
  }
} catch {
  failed += 1;
}
console.log(`${passed} passed, ${failed} failed`);
