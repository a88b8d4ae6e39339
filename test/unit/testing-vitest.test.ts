/**
 * tskvm/vitest's kvmTest and kvmDescribe where KVM is unusable (TSKVM_KVM_DEVICE=/nonexistent),
 * in a vitest of their own (test/unit/fixtures/kvm-gate.fixture.ts) under each pool: guest tests
 * are skipped with the reason and the rest run; under TSKVM_REQUIRE_KVM=1 they fail instead.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const VITEST = path.join(ROOT, 'node_modules', 'vitest', 'vitest.mjs');
const CONFIG = path.join(ROOT, 'test', 'unit', 'fixtures', 'vitest.config.ts');
const out = mkdtempSync(path.join(tmpdir(), 'tskvm-vitest-gate-'));
/** A vitest of its own starts in seconds, but slower on a loaded machine. */
const SUITE_TIMEOUT_MS = 120_000;

interface FixtureRun {
  status: number | null;
  text: string;
  tests: Record<string, string>;
}

/** Runs the fixture suite in its own vitest, returning its exit status, its verbose output and each test's status. */
function runFixture(pool: string, env: Record<string, string>): Promise<FixtureRun> {
  const json = path.join(out, `${pool}-${Object.keys(env).join('-')}.json`);
  const args = [VITEST, 'run', '--config', CONFIG, `--pool=${pool}`, '--reporter=verbose', '--reporter=json', `--outputFile.json=${json}`];
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, TSKVM_REQUIRE_KVM: '', ...env, NO_COLOR: '1' } });
  let text = '';
  child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status) => {
      const report = JSON.parse(readFileSync(json, 'utf8')) as {
        testResults: { assertionResults: { fullName: string; status: string }[] }[];
      };
      const tests = Object.fromEntries(report.testResults.flatMap((file) => file.assertionResults.map((t) => [t.fullName, t.status])));
      resolve({ status, text, tests });
    });
  });
}

describe('kvmTest and kvmDescribe without a usable KVM', () => {
  for (const pool of ['forks', 'threads', 'vmThreads']) {
    it(
      `skip guest tests with the reason, and run the others (pool ${pool})`,
      async () => {
        const run = await runFixture(pool, { TSKVM_KVM_DEVICE: '/nonexistent' });
        expect(run.tests).toEqual({
          'a guest test': 'skipped',
          'a guest suite a test in it': 'skipped',
          'a test without guests': 'passed',
        });
        expect(run.status).toBe(0);
        expect(run.text).toMatch(/↓ kvm-gate\.fixture\.ts > a guest test .*\[no usable KVM: \/nonexistent is not available \(ENOENT/);
        expect(run.text).toContain('tskvm: skipping the suites that boot guests: no usable KVM: /nonexistent');
      },
      SUITE_TIMEOUT_MS,
    );
  }

  it(
    'fail them under TSKVM_REQUIRE_KVM=1, saying why',
    async () => {
      const run = await runFixture('forks', { TSKVM_KVM_DEVICE: '/nonexistent', TSKVM_REQUIRE_KVM: '1' });
      expect(run.status).toBe(1);
      expect(run.tests['a guest test']).toBe('failed');
      expect(run.tests['a test without guests']).toBe('passed');
      expect(run.text).toMatch(
        /FAIL {2}kvm-gate\.fixture\.ts > a guest suite\nError: TSKVM_REQUIRE_KVM=1, but guests cannot run here: \/nonexistent/,
      );
      expect(run.text).toMatch(/FAIL {2}kvm-gate\.fixture\.ts > a guest test\nError: TSKVM_REQUIRE_KVM=1, but guests cannot run here/);
    },
    SUITE_TIMEOUT_MS,
  );
});
