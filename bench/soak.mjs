#!/usr/bin/env node
/**
 * Soak test: for N minutes, start and stop many guests in this process through the library
 * (startGuest from dist/index.js), each with a random fault, and check after every round that
 * what the process holds returns to its baseline once the guests are gone and
 * releaseIdleResources() has run: threads (/proc/self/task), file descriptors (/proc/self/fd),
 * memory mappings (/proc/self/maps lines) and RSS. Not part of `npm test`: `npm run soak [-- MINUTES]`.
 *
 * Threads, fds and shared mappings (guest RAM, each vCPU's kvm_run) must be exactly back to the
 * baseline after every round. All mappings and RSS also move with the allocators (V8's heap, a
 * glibc arena per thread that ever ran), which grow to a plateau: they are held to the highest
 * value of the first 15 rounds plus a slack, and their trend over the run is reported.
 *
 * Faults, one per guest, drawn at random (with 1 or 2 vCPUs where the guest allows):
 *   crash           triple.bin: reason 'crash'
 *   timeout         spin.bin with timeoutMs: reason 'timeout'
 *   abort           spin.bin, AbortSignal aborted after a while (or before the start): 'stopped'
 *   pause-stop      spin.bin, pause() then stop() while paused: 'stopped'
 *   stop-at-once    spin.bin, stop() right after startGuest: 'stopped'
 *   stalled-sink    bigout.bin (1 MiB of output), onSerial that stops settling after a few chunks
 *                   (a reader that went away), then the run aborted: 'stopped'
 *   throwing-sink   hello.bin, onSerial that throws (or rejects): UsageError ECALLBACK
 *   clean           hello.bin (debug-exit 42), echo.bin with input (exit = its length), halt.bin
 * Every run must settle within RUN_DEADLINE_MS with the outcome its fault implies.
 *
 * Options: MINUTES (positional, default 2), --concurrency N guests per round (default 4),
 * --seed S (default: from the clock; printed), --rss-slack MiB (default 64), --maps-slack N
 * (default 64), --faults a,b,... (only these; default all), --quiet. Run with --expose-gc (the npm script does) so RSS is measured after a GC.
 * Exit status: 0 when nothing leaked and every run ended as expected; 1 otherwise; 2 on bad usage.
 */
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MiB = 1024 * 1024;
/** A run that has not settled after this long is hung: a failure in itself. */
const RUN_DEADLINE_MS = 30_000;
/** Background teardown (VM fds close asynchronously) gets this long to finish before a count is a leak. */
const SETTLE_MS = 2_000;
const SETTLE_STEP_MS = 50;
const GUEST_MEMORY = '4M';
/** How long the stalled-sink fault waits for its sink to stall before aborting anyway. */
const STALL_WAIT_MS = 2_000;
const HELLO_EXIT = 42;

let args;
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      concurrency: { type: 'string', default: '4' },
      seed: { type: 'string' },
      'rss-slack': { type: 'string', default: '64' },
      'maps-slack': { type: 'string', default: '64' },
      faults: { type: 'string' },
      quiet: { type: 'boolean', default: false },
    },
  });
} catch (err) {
  console.error(`soak: ${err.message}`);
  process.exit(2);
}
const minutes = Number(args.positionals[0] ?? '2');
const concurrency = Number(args.values.concurrency);
const rssSlack = Number(args.values['rss-slack']) * MiB;
const mapsSlack = Number(args.values['maps-slack']);
const seed = args.values.seed === undefined ? Date.now() % 2 ** 31 : Number(args.values.seed);
for (const [name, value] of [
  ['MINUTES', minutes],
  ['--concurrency', concurrency],
  ['--seed', seed],
  ['--rss-slack', rssSlack],
  ['--maps-slack', mapsSlack],
]) {
  if (!Number.isFinite(value) || value < 0) {
    console.error(`soak: ${name} must be a non-negative number`);
    process.exit(2);
  }
}

const guest = (file) => path.join(root, 'guests', 'build', file);
const GUESTS = ['spin.bin', 'hello.bin', 'echo.bin', 'triple.bin', 'halt.bin', 'bigout.bin'];
const missing = [path.join(root, 'dist', 'index.js'), ...GUESTS.map(guest)].filter((f) => !existsSync(f));
if (missing.length > 0) {
  console.error(`soak: missing ${missing.join(', ')}: run \`npm run build:ts && npm run build:guests\` first`);
  process.exit(2);
}
const { startGuest, releaseIdleResources, UsageError } = await import(path.join(root, 'dist', 'index.js'));

// ---------------------------------------------------------------- randomness (seeded, replayable)

let state = seed >>> 0 || 1;
/** xorshift32: enough to pick faults and delays reproducibly from --seed. */
function random() {
  state ^= state << 13;
  state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5;
  state >>>= 0;
  return state / 2 ** 32;
}
const between = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));
const pick = (list) => list[Math.floor(random() * list.length)];

// ---------------------------------------------------------------- what the process holds

function rssBytes() {
  const line = readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? 0) * 1024;
}

/**
 * threads, fds, mappings (all, and shared ones: guest RAM and each vCPU's kvm_run are MAP_SHARED,
 * while the allocators' anonymous private mappings come and go), RSS in bytes.
 */
function sample() {
  const maps = readFileSync('/proc/self/maps', 'utf8').split('\n').filter(Boolean);
  return {
    threads: readdirSync('/proc/self/task').length,
    fds: readdirSync('/proc/self/fd').length,
    maps: maps.length,
    sharedMaps: maps.filter((line) => line.split(/\s+/)[1]?.[3] === 's').length,
    rss: rssBytes(),
  };
}

/** What the fds and threads are, for the report when they did not return to the baseline. */
function describeHoldings() {
  const fds = readdirSync('/proc/self/fd').map((fd) => {
    try {
      return `${fd} -> ${readlinkSync(`/proc/self/fd/${fd}`)}`;
    } catch {
      return `${fd} -> ?`;
    }
  });
  const threads = readdirSync('/proc/self/task').map((tid) => {
    try {
      return `${tid} ${readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim()}`;
    } catch {
      return `${tid} ?`;
    }
  });
  return { fds, threads };
}

function collectGarbage() {
  if (typeof globalThis.gc === 'function') {
    globalThis.gc();
    globalThis.gc();
  }
}

/** Releases what tskvm keeps idle, collects garbage, and samples once threads and fds are back (or SETTLE_MS passed). */
async function settledSample(baseline) {
  await releaseIdleResources();
  const deadline = performance.now() + SETTLE_MS;
  for (;;) {
    collectGarbage();
    const s = sample();
    const back = baseline && s.threads <= baseline.threads && s.fds <= baseline.fds && s.sharedMaps <= baseline.sharedMaps;
    if (!baseline || back || performance.now() > deadline) return s;
    await sleep(SETTLE_STEP_MS);
    await releaseIdleResources();
  }
}

// ---------------------------------------------------------------- faults

/** Each returns { run options, drive(run) to apply the fault, expect(outcome) -> problem or undefined }. */
const FAULTS = {
  crash: () => ({
    options: { image: guest('triple.bin') },
    expect: reason('crash'),
  }),
  timeout: () => ({
    options: { image: guest('spin.bin'), timeoutMs: between(5, 150), cpus: between(1, 2) },
    expect: reason('timeout'),
  }),
  abort: () => {
    const controller = new AbortController();
    const early = random() < 0.2;
    if (early) controller.abort();
    return {
      options: { image: guest('spin.bin'), signal: controller.signal, cpus: between(1, 2) },
      drive: async () => {
        await sleep(between(0, 100));
        controller.abort();
      },
      expect: reason('stopped'),
    };
  },
  'pause-stop': () => ({
    options: { image: guest('spin.bin'), cpus: between(1, 2) },
    drive: async (run) => {
      await sleep(between(0, 60));
      await run.pause();
      if (run.state !== 'paused' && run.state !== 'stopped') return `state after pause() is ${run.state}`;
      await sleep(between(0, 20));
      run.stop();
      return undefined;
    },
    expect: reason('stopped'),
  }),
  'stop-at-once': () => ({
    options: { image: guest('spin.bin'), cpus: between(1, 2) },
    drive: async (run) => run.stop(),
    expect: reason('stopped'),
  }),
  'stalled-sink': () => {
    const controller = new AbortController();
    let chunks = 0;
    const readFor = between(0, 8);
    let stall;
    const stalled = new Promise((resolve) => (stall = resolve));
    return {
      options: {
        image: guest('bigout.bin'),
        signal: controller.signal,
        collectSerial: random() < 0.5,
        // A reader that goes away: after a few chunks, a promise that never settles.
        onSerial: () => {
          if (chunks++ < readFor) return undefined;
          stall();
          return new Promise(() => {});
        },
      },
      drive: async () => {
        // Abort once the reader has stopped (or after a while if the guest never got that far).
        await Promise.race([stalled, sleep(STALL_WAIT_MS)]);
        await sleep(between(0, 50));
        controller.abort();
      },
      // The guest may have written all its output (exit 0) into the buffers before the abort.
      expect: (outcome) =>
        outcome.result?.reason === 'stopped' || outcome.result?.reason === 'debug-exit' ? undefined : describe(outcome),
    };
  },
  'throwing-sink': () => {
    const rejects = random() < 0.5;
    return {
      options: {
        image: guest('hello.bin'),
        onSerial: () => {
          if (rejects) return Promise.reject(new Error('soak: sink rejects'));
          throw new Error('soak: sink throws');
        },
      },
      expect: (outcome) =>
        outcome.error instanceof UsageError && outcome.error.code === 'ECALLBACK'
          ? undefined
          : `expected ECALLBACK, got ${describe(outcome)}`,
    };
  },
  clean: () => {
    const kind = pick(['hello', 'echo', 'halt']);
    if (kind === 'hello') return { options: { image: guest('hello.bin') }, expect: reason('debug-exit', HELLO_EXIT) };
    if (kind === 'halt') return { options: { image: guest('halt.bin') }, expect: reason('halt') };
    const text = 'soak'.repeat(between(0, 8));
    return { options: { image: guest('echo.bin'), serialInput: `${text}\0` }, expect: reason('debug-exit', text.length) };
  },
};
const FAULT_NAMES = args.values.faults === undefined ? Object.keys(FAULTS) : args.values.faults.split(',');
const unknown = FAULT_NAMES.filter((n) => !(n in FAULTS));
if (unknown.length > 0 || FAULT_NAMES.length === 0) {
  console.error(`soak: unknown fault ${unknown.join(', ')}: --faults takes a comma-separated list of ${Object.keys(FAULTS).join(', ')}`);
  process.exit(2);
}

function describe(outcome) {
  if (outcome.error) return `${outcome.error.name}${outcome.error.code ? ` ${outcome.error.code}` : ''}: ${outcome.error.message}`;
  return `reason ${outcome.result.reason} exitCode ${outcome.result.exitCode}`;
}

function reason(expected, exitCode) {
  return (outcome) => {
    if (outcome.error || outcome.result.reason !== expected || (exitCode !== undefined && outcome.result.exitCode !== exitCode))
      return `expected ${expected}${exitCode === undefined ? '' : ` ${exitCode}`}, got ${describe(outcome)}`;
    return undefined;
  };
}

/** One guest with one fault: undefined if it ended as expected, else what went wrong. */
async function runOne(name) {
  const fault = FAULTS[name]();
  let deadline;
  const hung = new Promise((resolve) => {
    deadline = setTimeout(() => resolve({ hung: true }), RUN_DEADLINE_MS);
  });
  try {
    const outcome = await Promise.race([
      (async () => {
        let run;
        try {
          run = await startGuest({ memory: GUEST_MEMORY, ...fault.options });
        } catch (error) {
          return { error };
        }
        const driven = fault.drive ? fault.drive(run).catch((err) => `drive failed: ${err.message}`) : undefined;
        const settled = await run.result.then(
          (result) => ({ result }),
          (error) => ({ error }),
        );
        const problem = await driven;
        return problem ? { ...settled, problem } : settled;
      })(),
      hung,
    ]);
    if (outcome.hung) return `did not end within ${RUN_DEADLINE_MS} ms`;
    return outcome.problem ?? fault.expect(outcome);
  } finally {
    clearTimeout(deadline);
  }
}

// ---------------------------------------------------------------- the soak

const mib = (bytes) => `${(bytes / MiB).toFixed(1)} MiB`;
const log = (line) => {
  if (!args.values.quiet) console.log(line);
};

console.log(
  `soak: ${minutes} min, ${concurrency} guests a round, --seed ${seed}${typeof globalThis.gc === 'function' ? '' : ' (no --expose-gc: RSS is noisier)'}`,
);

// Warm up: the native addon, worker code and libuv's pool are loaded once; that is not a leak.
const failures = [];
for (const name of FAULT_NAMES) {
  const problem = await runOne(name);
  if (problem) failures.push(`warm-up, ${name}: ${problem}`);
}
await settledSample();
const baseline = await settledSample();
console.log(`baseline: ${baseline.threads} threads, ${baseline.fds} fds, ${baseline.maps} mappings, RSS ${mib(baseline.rss)}`);
// With no guest left, nothing of KVM may remain: a VM fd or guest RAM here leaked in the warm-up.
const kvmHeld = describeHoldings().fds.filter((fd) => /kvm/.test(fd));
if (kvmHeld.length > 0 || baseline.sharedMaps > 0) {
  failures.push(`the warm-up left ${kvmHeld.join(', ') || 'no KVM fd'} and ${baseline.sharedMaps} shared mapping(s) behind`);
  console.log(`baseline: NOT CLEAN: ${failures.at(-1)}`);
}

const counts = Object.fromEntries(FAULT_NAMES.map((n) => [n, 0]));
const leaks = [];
let rounds = 0;
let guests = 0;
const peak = { ...baseline };
/**
 * Private anonymous mappings and RSS grow to a plateau as the allocators (V8's heap, one glibc
 * arena per thread that ever ran) settle: their reference is the highest seen in the first
 * WARMUP_ROUNDS rounds, and a leak is growth past it by the slack (or a steady trend, reported).
 */
const WARMUP_ROUNDS = 15;
const reference = { ...baseline };
const trend = { maps: [], rss: [] };
const end = performance.now() + minutes * 60_000;
const started = performance.now();

while (performance.now() < end) {
  rounds++;
  const names = Array.from({ length: concurrency }, () => pick(FAULT_NAMES));
  const problems = await Promise.all(names.map((name) => runOne(name)));
  names.forEach((name, i) => {
    counts[name]++;
    guests++;
    if (problems[i]) failures.push(`round ${rounds}, ${name}: ${problems[i]}`);
  });
  const now = await settledSample(baseline);
  for (const key of Object.keys(peak)) peak[key] = Math.max(peak[key], now[key]);
  const over = [];
  // What a guest holds (threads, fds, guest RAM and kvm_run mappings) must all be back.
  if (now.threads > baseline.threads) over.push(`threads ${baseline.threads} -> ${now.threads}`);
  if (now.fds > baseline.fds) over.push(`fds ${baseline.fds} -> ${now.fds}`);
  if (now.sharedMaps > baseline.sharedMaps) over.push(`shared mappings ${baseline.sharedMaps} -> ${now.sharedMaps}`);
  if (rounds <= WARMUP_ROUNDS) {
    reference.maps = Math.max(reference.maps, now.maps);
    reference.rss = Math.max(reference.rss, now.rss);
  } else {
    trend.maps.push([rounds, now.maps]);
    trend.rss.push([rounds, now.rss]);
    if (now.maps > reference.maps + mapsSlack) over.push(`mappings ${reference.maps} -> ${now.maps}`);
    if (now.rss > reference.rss + rssSlack) over.push(`RSS ${mib(reference.rss)} -> ${mib(now.rss)}`);
  }
  if (over.length > 0) {
    leaks.push({ round: rounds, over, holdings: describeHoldings() });
    console.log(`round ${rounds}: NOT BACK TO BASELINE: ${over.join(', ')}`);
  } else if (rounds % 10 === 0) {
    log(
      `round ${rounds} (${guests} guests, ${((performance.now() - started) / 1000).toFixed(0)} s): ${now.threads} threads, ${now.fds} fds, ` +
        `${now.maps} mappings (${now.sharedMaps} shared), RSS ${mib(now.rss)}`,
    );
  }
  if (leaks.length >= 3) break; // the evidence is in; no need to soak a leaking process further
}

/** Least-squares slope of [x, y] points (0 with fewer than two). */
function slope(points) {
  if (points.length < 2) return 0;
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const num = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  const den = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

const final = await settledSample(baseline);
console.log('');
console.log(`soak summary (--seed ${seed}): ${rounds} rounds, ${guests} guests in ${((performance.now() - started) / 1000).toFixed(0)} s`);
console.log(`  faults: ${FAULT_NAMES.map((n) => `${n} ${counts[n]}`).join(', ')}`);
console.log(`  threads  baseline ${baseline.threads}, final ${final.threads}, peak after a round ${peak.threads}`);
console.log(`  fds      baseline ${baseline.fds}, final ${final.fds}, peak after a round ${peak.fds}`);
console.log(
  `  shared mappings (guest RAM, kvm_run) baseline ${baseline.sharedMaps}, final ${final.sharedMaps}, peak after a round ${peak.sharedMaps}`,
);
console.log(
  `  mappings baseline ${baseline.maps}, after warm-up ${reference.maps}, final ${final.maps}, peak after a round ${peak.maps} ` +
    `(slack ${mapsSlack}; trend ${(slope(trend.maps) * 100).toFixed(1)} per 100 rounds)`,
);
console.log(
  `  RSS      baseline ${mib(baseline.rss)}, after warm-up ${mib(reference.rss)}, final ${mib(final.rss)}, peak after a round ${mib(peak.rss)} ` +
    `(slack ${mib(rssSlack)}; trend ${mib(slope(trend.rss) * 100)} per 100 rounds)`,
);
if (failures.length > 0) {
  console.log(`  ${failures.length} run(s) did not end as expected:`);
  for (const f of failures.slice(0, 20)) console.log(`    ${f}`);
}
for (const leak of leaks.slice(0, 3)) {
  console.log(`  round ${leak.round} not back to baseline: ${leak.over.join(', ')}`);
  console.log(`    fds: ${leak.holdings.fds.join('; ')}`);
  console.log(`    threads: ${leak.holdings.threads.join('; ')}`);
}
const leaked = leaks.length > 0 || final.threads > baseline.threads || final.fds > baseline.fds || final.sharedMaps > baseline.sharedMaps;
console.log(leaked || failures.length > 0 ? 'soak: FAILED' : 'soak: OK (nothing leaked, every run ended as expected)');
process.exit(leaked || failures.length > 0 ? 1 : 0);
