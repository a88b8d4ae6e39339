#!/usr/bin/env node
/**
 * A guest test suite's cost: one vitest file of N guest tests (default 50) written with
 * tskvm/vitest — each boots a boot sector in-process, waits for its prompt, types a name, waits
 * for the answer, checks the exit code — against the same N tests written the way such tests are
 * written today, each spawning `qemu-system-x86_64 -accel kvm -nographic -serial stdio -device
 * isa-debug-exit,iobase=0xf4,iosize=0x04` (bench/testsuite/*.suite.mjs, guest in greeter.mjs).
 * Prints a table: the vitest process's wall time, the tests' own time, and the per-test median
 * and p95. Sequential within the file (vitest's default); `--concurrent K` also runs both with K
 * tests at a time (vitest --sequence.concurrent --maxConcurrency K).
 *
 * Usage: node bench/testsuite.mjs [--tests N] [--concurrent K] [--json FILE]
 * Needs a built dist/ (npm run build:ts), /dev/kvm, binutils and qemu-system-x86; without QEMU
 * only tskvm's figures are printed. Called by bench/run.mjs.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, percentile } from './stats.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: { tests: { type: 'string', default: '50' }, concurrent: { type: 'string' }, json: { type: 'string' } },
});
const tests = Number(values.tests);
const concurrent = values.concurrent === undefined ? undefined : Number(values.concurrent);
if (!Number.isInteger(tests) || tests < 1 || (concurrent !== undefined && (!Number.isInteger(concurrent) || concurrent < 1))) {
  process.stderr.write('usage: node bench/testsuite.mjs [--tests N] [--concurrent K] [--json FILE]\n');
  process.exit(2);
}
const vitestBin = path.join(root, 'node_modules', 'vitest', 'vitest.mjs');
const config = path.join(root, 'bench', 'testsuite', 'vitest.config.mjs');
const out = mkdtempSync(path.join(tmpdir(), 'tskvm-bench-testsuite-'));
const haveQemu = spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }).status === 0;

/** Runs one suite file in its own vitest; returns its wall time and each test's duration. */
function runSuite(file, concurrency) {
  const report = path.join(out, `${path.basename(file)}-${concurrency ?? 1}.json`);
  const args = [vitestBin, 'run', '--config', config, file, '--reporter=dot', '--reporter=json', `--outputFile.json=${report}`];
  if (concurrency !== undefined) args.push('--sequence.concurrent', `--maxConcurrency=${concurrency}`);
  const env = { ...process.env, TSKVM_BENCH_TESTS: String(tests), NO_COLOR: '1' };
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status) => {
      const wallMs = performance.now() - t0;
      const json = JSON.parse(readFileSync(report, 'utf8'));
      const results = json.testResults.flatMap((f) => f.assertionResults);
      const failed = results.filter((r) => r.status !== 'passed');
      if (status !== 0 || failed.length > 0 || results.length !== tests) {
        reject(
          new Error(`${file}: vitest exited ${status}, ${failed.length} of ${results.length} tests not passed\n${stderr.slice(-2000)}`),
        );
        return;
      }
      resolve({ wallMs, durations: results.map((r) => r.duration) });
    });
  });
}

function summary(run) {
  const sum = run.durations.reduce((a, b) => a + b, 0);
  return {
    wallMs: run.wallMs,
    testsMs: sum,
    perTestMedianMs: median(run.durations),
    perTestP95Ms: percentile(run.durations, 95),
    perTestWallMs: run.wallMs / tests,
  };
}

const fmt = (ms) => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);

const suites = [
  { label: 'tskvm (tskvm/vitest, in-process)', file: 'bench/testsuite/tskvm.suite.mjs' },
  ...(haveQemu ? [{ label: 'QEMU (a process per test)', file: 'bench/testsuite/qemu.suite.mjs' }] : []),
];
const modes = [undefined, ...(concurrent !== undefined ? [concurrent] : [])];
const figures = [];
const failures = [];
try {
  for (const mode of modes) {
    for (const suite of suites) {
      process.stderr.write(`bench/testsuite: ${tests} tests, ${suite.label}${mode ? `, ${mode} at a time` : ''}...\n`);
      try {
        figures.push({ suite: suite.label, concurrency: mode ?? 1, ...summary(await runSuite(suite.file, mode)) });
      } catch (err) {
        failures.push(err.message);
        process.stderr.write(`bench/testsuite: ${err.message}\n`);
      }
    }
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}

const rows = [
  ['', 'at a time', 'wall time (vitest process)', 'wall time per test', 'sum of test times', 'per test, median', 'per test, p95'],
  ...figures.map((f) => [
    f.suite,
    String(f.concurrency),
    fmt(f.wallMs),
    fmt(f.perTestWallMs),
    fmt(f.testsMs),
    fmt(f.perTestMedianMs),
    fmt(f.perTestP95Ms),
  ]),
];
for (const mode of modes) {
  const ours = figures.find((f) => f.concurrency === (mode ?? 1) && f.suite.startsWith('tskvm'));
  const theirs = figures.find((f) => f.concurrency === (mode ?? 1) && f.suite.startsWith('QEMU'));
  if (ours && theirs)
    rows.push([
      `QEMU / tskvm`,
      String(mode ?? 1),
      `${(theirs.wallMs / ours.wallMs).toFixed(1)}×`,
      '',
      `${(theirs.testsMs / ours.testsMs).toFixed(1)}×`,
      `${(theirs.perTestMedianMs / ours.perTestMedianMs).toFixed(1)}×`,
      '',
    ]);
}
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
const line = (r) => `| ${r.map((cell, c) => cell.padEnd(widths[c])).join(' | ')} |`;
console.log(`\nA vitest file of ${tests} guest tests (boot, prompt, type a line, check the answer and the exit code):\n`);
console.log(line(rows[0]));
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const r of rows.slice(1)) console.log(line(r));
if (!haveQemu) console.log('\n(qemu-system-x86_64 is not installed: no QEMU figures)');
if (values.json) writeFileSync(values.json, `${JSON.stringify({ tests, figures, failures }, null, 2)}\n`);
if (failures.length > 0) process.exitCode = 1;
