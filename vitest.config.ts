import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start real processes on loopback ports; keep parallelism modest on 2 cores.
    pool: 'forks',
    maxWorkers: 2,
    // The run guard fails a CI run that skipped any test, and tells the reports whether every
    // test passed (test/run-guard.ts).
    reporters: ['default', './test/run-guard.ts'],
    // First dist/ is brought up to the current source (the tests run the CLI and workers from it:
    // test/fresh-dist.ts); then the fault rows of the run are gathered into the reliability
    // report (test/reliability-report.ts).
    globalSetup: ['test/fresh-dist.ts', 'test/reliability-report.ts'],
  },
});
