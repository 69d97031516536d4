import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start real processes on loopback ports; keep parallelism modest on 2 cores.
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
    // Gathers the fault rows of the run into the reliability report (test/reliability-report.ts).
    globalSetup: ['test/reliability-report.ts'],
  },
});
