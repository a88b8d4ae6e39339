// The vitest configuration bench/testsuite.mjs runs its two suites with (one file at a time).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: { include: ['bench/testsuite/*.suite.mjs'], pool: 'forks', testTimeout: 120_000, hookTimeout: 120_000 },
});
