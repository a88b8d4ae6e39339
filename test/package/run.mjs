#!/usr/bin/env node
// tskvm as a dependency of someone else's test suite (npm run test:package): packs the clone,
// installs the tarball into a fresh project outside it (no way to reach the clone's node_modules)
// with vitest and typescript from the registry, and there
//   - checks the tarball's contents (what must be in it, what must not, no stale dist/ file),
//   - runs the installed CLI on an example guest shipped in the package,
//   - runs test/package/fixture/*.spec.ts (two files, in parallel) with vitest in the forks, threads and vmThreads
//     pools under TSKVM_REQUIRE_KVM=1 (guests boot, are driven with expect/write, exit codes and
//     crashes checked), then with TSKVM_KVM_DEVICE=/nonexistent (guest tests skip; with
//     TSKVM_REQUIRE_KVM=1 they fail),
//   - runs a node:test file (tskvm/node-test),
//   - type-checks the suite against the installed types with tsc --strict,
//   - installs the tarball again with CC=CXX=/bin/false: the install succeeds without the addon
//     and tskvm runs the guest through the ffi-rs backend.
//
// Usage: node test/package/run.mjs [--prepack] [--keep] [--skip-no-compiler]
//   --prepack           let `npm pack` run prepack (a clean build of dist/ and the guests); by
//                       default it packs what `npm test`'s pretest has just built (--ignore-scripts)
//   --keep              leave the temporary projects (their paths are printed)
//   --skip-no-compiler  skip the install without a compiler
// Environment: TSKVM_PACKAGE_VITEST, TSKVM_PACKAGE_TYPESCRIPT: the versions to install (default:
// the clone's devDependencies). Where /dev/kvm is unusable the booting runs are skipped, unless
// TSKVM_REQUIRE_KVM=1, which makes that a failure.
// Exit status: 0 when every check passed, 1 otherwise.

import { spawn } from 'node:child_process';
import { closeSync, constants, cpSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURE = join(ROOT, 'test', 'package', 'fixture');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const args = new Set(process.argv.slice(2));
for (const arg of args) {
  if (!['--prepack', '--keep', '--skip-no-compiler'].includes(arg)) {
    process.stderr.write(
      `test/package/run.mjs: unknown option ${arg}\nusage: node test/package/run.mjs [--prepack] [--keep] [--skip-no-compiler]\n`,
    );
    process.exit(1);
  }
}

/** The tarball must stay small: it is what every user downloads. */
const MAX_TARBALL_BYTES = 2 * 1024 * 1024;
/** Entries every tarball must have: the library and its types per export, the addon's sources, the example guests. */
const REQUIRED = [
  'package.json',
  'README.md',
  'LICENSE',
  'bin/tskvm.js',
  'bin/tskvm-qemu.js',
  'dist/qemu/main.js',
  'binding.gyp',
  'native/kvm_shim.c',
  'native/kvm_shim.h',
  'native/teardown.c',
  'native/file_read.c',
  'native/addon.cc',
  'dist/index.js.map',
  'dist/kvm/ffi-backend.cjs',
  'dist/vcpu/worker.js',
  'dist/bundle/cli.cjs',
  'dist/bundle/run.cjs',
  'dist/cli/code-cache.cjs',
  'dist/bundle/worker.js',
  'guests/build/hello.bin',
];
/** What a user's install has no use for. */
const FORBIDDEN =
  /^(test|bench|docs|examples|src|scripts|\.ci|node_modules|build|coverage)\/|^guests\/build\/obj\/|^guests\/[^/]+\.S$|\.tsbuildinfo$|\.log$/;

/**
 * A base directory none of whose ancestors has a node_modules (Node would look there for what the
 * fresh project lacks: a /tmp/node_modules linked to a clone's would hide a missing dependency).
 */
function isolatedBase() {
  const candidates = [tmpdir(), '/var/tmp', '/dev/shm', homedir()];
  const clean = (dir) => {
    for (let at = dir; ; at = dirname(at)) {
      if (existsSync(join(at, 'node_modules'))) return false;
      if (dirname(at) === at) return true;
    }
  };
  const base = candidates.find((dir) => existsSync(dir) && clean(dir));
  if (!base) {
    process.stderr.write(
      `test/package/run.mjs: every candidate (${candidates.join(', ')}) has a node_modules above it; remove it or set TMPDIR\n`,
    );
    process.exit(1);
  }
  return base;
}

const started = performance.now();
const failures = [];
const work = mkdtempSync(join(isolatedBase(), 'tskvm-package-'));
const kvmUsable = (() => {
  try {
    closeSync(openSync('/dev/kvm', constants.O_RDWR));
    return true;
  } catch {
    return false;
  }
})();
const requireKvm = process.env.TSKVM_REQUIRE_KVM === '1';

function log(line) {
  process.stdout.write(`${line}\n`);
}

function check(ok, what, detail = '') {
  log(`${ok ? 'ok' : 'FAIL'}  ${what}${!ok && detail ? `\n${detail.replace(/^/gm, '      ')}` : ''}`);
  if (!ok) failures.push(what);
  return ok;
}

/**
 * The environment of a command in the fresh project: none of npm's `npm_*` variables from the
 * `npm run` that started this script (npm_config_local_prefix would point npm back at the
 * clone), no NODE_PATH or NODE_OPTIONS, no tskvm or vitest variables but those given.
 */
function cleanEnv(extra = {}) {
  const env = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(npm_|INIT_CWD$|NODE_PATH$|NODE_OPTIONS$|TSKVM_|VITEST)/i.test(name)) continue;
    env[name] = value;
  }
  return { ...env, NO_COLOR: '1', ...extra };
}

/** Runs a command; resolves with its status and output (never rejects). */
function run(command, commandArgs, { cwd, env = cleanEnv(), timeoutMs = 300_000 } = {}) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(command, commandArgs, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ status: null, stdout, stderr: `${stderr}${err.message}`, ms: performance.now() - t0 });
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status: status ?? signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
const tail = (text, lines = 30) => text.trim().split('\n').slice(-lines).join('\n');

/** npm pack into the work directory; returns the tarball's path and npm's description of it. */
async function pack() {
  const packArgs = ['pack', '--json', '--pack-destination', work, ...(args.has('--prepack') ? [] : ['--ignore-scripts'])];
  const r = await run('npm', packArgs, { cwd: ROOT, env: cleanEnv() });
  if (!check(r.status === 0, `npm pack (${seconds(r.ms)})`, tail(r.stderr))) return undefined;
  const info = JSON.parse(r.stdout.slice(r.stdout.indexOf('[')))[0];
  return { tarball: join(work, info.filename), info };
}

/** The tarball's contents: required entries, nothing forbidden, a dist/ file for a source that still exists, its size. */
function checkContents(info) {
  const files = info.files.map((f) => f.path);
  const set = new Set(files);
  const exportFiles = Object.values(pkg.exports)
    .flatMap((target) => (typeof target === 'string' ? [target] : Object.values(target)))
    .filter((target) => !target.includes('*'))
    .map((target) => target.replace(/^\.\//, ''));
  const missing = [...REQUIRED, ...exportFiles].filter((file) => !set.has(file));
  check(
    missing.length === 0,
    'the tarball has the library, its types for every export, the addon sources and the guests',
    `missing: ${missing.join(', ')}`,
  );
  // A code cache names the place it was made in every stack it gives (src/cli/code-cache.cts):
  // the install makes its own.
  check(
    files.includes('dist/bundle/cli.cjs') && !files.some((file) => file.endsWith('.cache')),
    "the tarball has the command line's bundle, and no code cache made on the packing machine",
  );
  const junk = files.filter((file) => FORBIDDEN.test(file));
  check(
    junk.length === 0,
    'the tarball has no tests, benchmarks, docs, sources or build leftovers',
    `found: ${junk.slice(0, 20).join(', ')}`,
  );
  const stale = files
    // dist/bundle/ is scripts/bundle.mjs's (built from the sources each time), not one file per module.
    .filter((file) => file.startsWith('dist/') && !file.startsWith('dist/bundle/'))
    .filter((file) => {
      const stem = file.replace(/^dist\//, 'src/').replace(/(\.d)?\.(c?js)(\.map)?$|\.d\.c?ts$/, '');
      return !existsSync(join(ROOT, `${stem}.ts`)) && !existsSync(join(ROOT, `${stem}.cts`));
    });
  check(
    stale.length === 0,
    'every dist/ file comes from a source that exists (no stale module)',
    `stale: ${stale.slice(0, 20).join(', ')}`,
  );
  check(
    info.size <= MAX_TARBALL_BYTES,
    `the tarball is small: ${(info.size / 1024).toFixed(0)} KiB packed, ${(info.unpackedSize / 1024 / 1024).toFixed(1)} MiB unpacked, ${files.length} files`,
    `over ${MAX_TARBALL_BYTES / 1024} KiB`,
  );
}

/** A fresh project with the tarball (and vitest and typescript, with `tools`) installed; returns its directory, or undefined. */
async function project(name, tarball, { env = {}, tools = true } = {}) {
  const dir = join(work, name);
  cpSync(FIXTURE, dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    `${JSON.stringify({ name: `tskvm-package-test-${name}`, private: true, type: 'module', scripts: { test: 'vitest run' } }, null, 2)}\n`,
  );
  const vitest = process.env.TSKVM_PACKAGE_VITEST || pkg.devDependencies.vitest;
  const typescript = process.env.TSKVM_PACKAGE_TYPESCRIPT || pkg.devDependencies.typescript;
  const types = pkg.devDependencies['@types/node'];
  const extra = tools ? [`vitest@${vitest}`, `typescript@${typescript}`, `@types/node@${types}`] : [];
  const r = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball, ...extra], {
    cwd: dir,
    env: cleanEnv(env),
  });
  const what = tools ? `the tarball, vitest@${vitest} and typescript@${typescript}` : 'the tarball alone';
  const ok = check(r.status === 0, `${name}: npm install of ${what} (${seconds(r.ms)})`, tail(`${r.stdout}${r.stderr}`));
  return ok ? dir : undefined;
}

/** vitest in the project with a JSON report: its status and each test's status by name. */
async function vitest(dir, pool, env) {
  const report = join(dir, `report-${pool}-${Object.keys(env).join('-') || 'plain'}.json`);
  const vitestArgs = [join(dir, 'node_modules', 'vitest', 'vitest.mjs'), 'run', `--pool=${pool}`, '--reporter=default', '--reporter=json'];
  const r = await run(process.execPath, [...vitestArgs, `--outputFile.json=${report}`], { cwd: dir, env: cleanEnv(env) });
  let tests = {};
  try {
    const json = JSON.parse(readFileSync(report, 'utf8'));
    tests = Object.fromEntries(json.testResults.flatMap((file) => file.assertionResults.map((t) => [t.fullName, t.status])));
  } catch {
    // no report: the status and output say why
  }
  return { ...r, tests, output: `${r.stdout}${r.stderr}` };
}

const GUEST_TESTS = [
  'a guest assembled in the test answers what it is asked',
  'input typed before the prompt waits for the guest',
  'a crash is a crash',
  'the low-level layer (tskvm/kvm) opens /dev/kvm and reads its API version',
  'guest A answers its own console',
  'guest B answers its own console',
  'guest C answers its own console',
];
const PLAIN_TESTS = ['without a guest the package exports what its types say'];

function statuses(tests, names) {
  return names.map((name) => tests[name] ?? 'missing');
}

async function main() {
  log(`tskvm package test in ${work}`);
  const packed = await pack();
  if (!packed) return;
  checkContents(packed.info);

  const dir = await project('project', packed.tarball);
  if (!dir) return;
  const installed = join(dir, 'node_modules', 'tskvm');
  check(existsSync(join(installed, 'build', 'Release', 'tskvm.node')), 'the install built the native addon');
  check(!existsSync(join(installed, 'node_modules', 'vitest')), 'vitest is a peer of tskvm, not a dependency it brings');
  // The install script made the bundle's code cache in place: V8 accepts it, and the stacks of the
  // functions it holds name the installed file.
  const loader = join(installed, 'dist', 'cli', 'code-cache.cjs');
  for (const name of ['cli.cjs', 'run.cjs']) {
    const bundle = join(installed, 'dist', 'bundle', name);
    const probe = `const r = require(${JSON.stringify(loader)}).loadBundle(${JSON.stringify(bundle)}, { rewrite: false });
r.exports.launch(null).catch((err) => console.log(r.cache, err.stack.split('\\n')[1].trim()));`;
    const cache = await run(process.execPath, ['-e', probe], { cwd: dir, env: cleanEnv() });
    check(
      cache.stdout.startsWith('accepted at ') && cache.stdout.includes(`(${bundle}:`),
      `the installed CLI's bundle ${name} loads with the code cache its install made, whose stacks name the installed bundle`,
      `${cache.stdout}${cache.stderr}`,
    );
  }

  const hello = join(installed, 'guests', 'build', 'hello.bin');
  if (kvmUsable) {
    const cli = await run(join(dir, 'node_modules', '.bin', 'tskvm'), ['run', hello], { cwd: dir });
    check(
      cli.status === 42 && cli.stdout === 'Hello from a tskvm guest!\n',
      'the installed CLI runs the example guest (exit 42)',
      `status ${cli.status}\n${cli.stdout}${cli.stderr}`,
    );
    const qemu = await run(join(dir, 'node_modules', '.bin', 'tskvm-qemu'), ['-display', 'none', '-serial', 'stdio', '-kernel', hello], {
      cwd: dir,
    });
    check(
      qemu.status === ((42 << 1) | 1) && qemu.stdout === 'Hello from a tskvm guest!\n',
      "the installed tskvm-qemu runs it with QEMU's exit status ((42 << 1) | 1)",
      `status ${qemu.status}\n${qemu.stdout}${qemu.stderr}`,
    );
    for (const pool of ['forks', 'threads', 'vmThreads']) {
      const r = await vitest(dir, pool, { TSKVM_REQUIRE_KVM: '1' });
      const all = statuses(r.tests, [...GUEST_TESTS, ...PLAIN_TESTS]);
      check(
        r.status === 0 && all.every((s) => s === 'passed'),
        `vitest --pool=${pool}: guests boot and pass (${seconds(r.ms)})`,
        `${all.join(', ')}\n${tail(r.output)}`,
      );
    }
  } else if (requireKvm) {
    check(false, 'TSKVM_REQUIRE_KVM=1, but /dev/kvm is unusable here: the guests could not be booted');
  } else {
    log('skip  the booting runs: /dev/kvm is unusable here (TSKVM_REQUIRE_KVM=1 makes this a failure)');
  }

  const noKvm = { TSKVM_KVM_DEVICE: '/nonexistent' };
  const skipped = await vitest(dir, 'forks', noKvm);
  const skippedStatuses = statuses(skipped.tests, GUEST_TESTS);
  check(
    skipped.status === 0 && skippedStatuses.every((s) => s === 'skipped') && statuses(skipped.tests, PLAIN_TESTS)[0] === 'passed',
    `without KVM (TSKVM_KVM_DEVICE=/nonexistent): the guest tests skip with the reason, the rest pass (${seconds(skipped.ms)})`,
    `${skippedStatuses.join(', ')}\n${tail(skipped.output)}`,
  );
  check(/no usable KVM: \/nonexistent is not available/.test(skipped.output), 'the skip says why', tail(skipped.output));
  const failed = await vitest(dir, 'forks', { ...noKvm, TSKVM_REQUIRE_KVM: '1' });
  const failedStatuses = statuses(failed.tests, GUEST_TESTS.slice(0, 3));
  check(
    failed.status === 1 &&
      failedStatuses.every((s) => s === 'failed') &&
      /TSKVM_REQUIRE_KVM=1, but guests cannot run here/.test(failed.output),
    `without KVM and TSKVM_REQUIRE_KVM=1: the guest tests fail, saying why (${seconds(failed.ms)})`,
    `status ${failed.status}: ${failedStatuses.join(', ')}\n${tail(failed.output)}`,
  );

  if (kvmUsable) {
    const nodeTest = await run(process.execPath, ['--test', '--test-reporter=tap', 'node-test.mjs'], {
      cwd: dir,
      env: cleanEnv({ TSKVM_REQUIRE_KVM: '1' }),
    });
    check(
      nodeTest.status === 0 && /^# pass 1$/m.test(nodeTest.stdout),
      `node --test with tskvm/node-test (${seconds(nodeTest.ms)})`,
      tail(`${nodeTest.stdout}${nodeTest.stderr}`),
    );
  }

  const tsc = await run(process.execPath, [join(dir, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--strict'], {
    cwd: dir,
  });
  check(
    tsc.status === 0,
    `tsc --strict type-checks the suite against the installed types (${seconds(tsc.ms)})`,
    tail(`${tsc.stdout}${tsc.stderr}`),
  );

  if (!args.has('--skip-no-compiler')) {
    // No compiler: node-gyp fails, the install script says so and succeeds; the ffi-rs backend runs guests.
    const bare = await project('no-compiler', packed.tarball, { env: { CC: '/bin/false', CXX: '/bin/false' }, tools: false });
    if (bare) {
      const addon = join(bare, 'node_modules', 'tskvm', 'build', 'Release', 'tskvm.node');
      check(!existsSync(addon), 'no-compiler: the install succeeded without building the addon');
      if (kvmUsable) {
        const cli = await run(join(bare, 'node_modules', '.bin', 'tskvm'), ['run', hello], { cwd: bare });
        check(
          cli.status === 42 && /using the ffi-rs backend/.test(cli.stderr),
          'no-compiler: tskvm runs the guest through the ffi-rs backend, and says so',
          `status ${cli.status}\n${cli.stdout}${cli.stderr}`,
        );
      }
    }
  }
}

try {
  await main();
} catch (err) {
  check(false, 'the package test ran to its end', err instanceof Error ? (err.stack ?? err.message) : String(err));
}
if (args.has('--keep')) log(`kept: ${work}`);
else rmSync(work, { recursive: true, force: true });
log(
  `${failures.length === 0 ? 'ok' : `${failures.length} FAILED`}: tskvm's package test in ${seconds(performance.now() - started)}${failures.length ? ` (${failures.join('; ')})` : ''}`,
);
process.exit(failures.length === 0 ? 0 : 1);
