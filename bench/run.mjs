#!/usr/bin/env node
/**
 * npm run bench: tskvm against a minimal C loop around KVM_RUN, on the same guest in the same
 * run, reported as ratios (never as absolute pass/fail timings).
 *   1. PIO exit path: exits per second of guests/build/pioloop.bin under bench/kvm-loop.c and
 *      under runGuest() in-process (exit loop in a worker, and on the caller's thread); ratio
 *      tskvm / C (goal >= 0.98); the same loop to a port a TypeScript device decodes (the RTC's
 *      index, 0x70: port 0x80 is decoded by nothing, so the addon takes those exits itself, as the
 *      C loop does); the ffi-rs backend's exit cost against the addon's (goal <= 2x).
 *   2. In-process VM create-run-destroy latency for a one-exit guest (goal <= 2 ms, issue 17), then
 *      bench/create-stages.mjs, in a process of its own: the same run stage by stage (options,
 *      files, build with every KVM call timed, the vCPU run in its worker or on this thread, close).
 *   3. What --stats and --trace cost when on, against the same guest with them off (off is the
 *      plain loop of item 1: one untaken branch per exit).
 *   4. bench/launch.mjs, in a process of its own: `tskvm run` of a one-exit guest against
 *      `node -e 0` and against the C loop's own launch, the CLI's 200k-exit run against the C
 *      loop (start-up included), peak RSS of one-vCPU CLI runs.
 *   5. Then bench/density.mjs, in a process of its own: 64 guests in one process against 64 tskvm
 *      and 64 QEMU processes (RSS), KSM merging across 16 VMs, batched create-run-destroy.
 * Options: --rounds N (default 5), --pairs N (default 15: tskvm runs of each kind on the
 * exit path of item 1, each between two C runs), --latency-runs N (default 200).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildCLoop, loopBinary } from './c-loop.mjs';
import { median, percentile, quartiles } from './stats.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    pairs: { type: 'string', default: '15' },
    'latency-runs': { type: 'string', default: '200' },
  },
});
const rounds = Number(values.rounds);
const pairs = Number(values.pairs);
const latencyRuns = Number(values['latency-runs']);

const guest = (name) => path.join(root, 'guests', 'build', `${name}.bin`);

/** OUT imm8, AL: pioloop's one `out %al, $0x80`. */
const OUT_AL_IMM8 = 0xe6;
const POST_PORT = 0x80;
/** The MC146818 RTC's index register: a TypeScript device, so every exit comes back to JavaScript. */
const RTC_INDEX_PORT = 0x70;

/** pioloop.bin with its port changed to `port` (a file in `dir`). */
function pioloopTo(port, dir) {
  const image = Buffer.from(readFileSync(guest('pioloop')));
  const at = image.indexOf(Buffer.of(OUT_AL_IMM8, POST_PORT));
  if (at < 0 || image.indexOf(Buffer.of(OUT_AL_IMM8, POST_PORT), at + 1) >= 0) throw new Error('pioloop.bin: expected one out %al, $0x80');
  image[at + 1] = port;
  const file = path.join(dir, `pioloop-${port.toString(16)}.bin`);
  writeFileSync(file, image);
  return file;
}

/** One run of the C loop, which times its own KVM_RUN loop and prints exits per second. */
function cLoopExitsPerSecond(image = guest('pioloop')) {
  const r = spawnSync(loopBinary, [image], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const m = /exits=(\d+) .*exits_per_sec=([\d.]+)/.exec(r.stderr ?? '');
  if (r.status !== 0 || !m) throw new Error(`kvm-loop failed (status ${r.status}): ${r.stderr}`);
  return { exits: Number(m[1]), perSecond: Number(m[2]) };
}

/**
 * Each variant's exit rate against the C loop's at the same moment: C, variant 1, C, variant 2,
 * C, ... `runs` times over; every tskvm run is divided by the mean of the C runs on either side.
 * Returns the C median, and per variant the median rate and the median of its paired ratios.
 */
async function pairedWithC(image, variants, runs, runGuest, rate) {
  const c = [cLoopExitsPerSecond(image).perSecond];
  const out = Object.fromEntries(Object.keys(variants).map((name) => [name, { rates: [], ratios: [] }]));
  for (let i = 0; i < runs; i++) {
    for (const [name, options] of Object.entries(variants)) {
      const r = rate(await runGuest({ image, ...options }));
      c.push(cLoopExitsPerSecond(image).perSecond);
      out[name].rates.push(r);
      out[name].ratios.push(r / ((c.at(-2) + c.at(-1)) / 2));
    }
  }
  const result = { c: median(c) };
  for (const [name, { rates, ratios }] of Object.entries(out)) result[name] = { rate: median(rates), ratio: median(ratios), ratios };
  return result;
}

/** The middle half of a set of ratios, as text. */
const spread = (ratios) => {
  const { q1, q3 } = quartiles(ratios);
  return `quartiles ${q1.toFixed(3)}-${q3.toFixed(3)}`;
};

async function main() {
  buildCLoop();
  const { runGuest } = await import(path.join(root, 'dist', 'index.js'));

  // Warm up both (page cache, worker pool, JIT).
  await runGuest({ image: guest('pioloop') });
  cLoopExitsPerSecond();

  const rate = (r) => Object.values(r.exits).reduce((a, b) => a + b, 0) / (r.durationMs / 1000);
  // The exit loop in a worker thread (the library's default) and on this thread (what `tskvm run`
  // uses), each run between two runs of the C loop and compared with their mean: this host's speed
  // drifts by several per cent within seconds, so a ratio of medians taken minutes apart measures
  // the drift as much as tskvm (a plain ratio of the medians is printed too).
  const threads = { worker: {}, caller: { vcpuThread: 'caller' } };
  const paired = await pairedWithC(guest('pioloop'), threads, pairs, runGuest, rate);
  console.log('PIO exit path (guests/build/pioloop.bin, 200001 exits per run, %d runs of each, each between two C runs)', pairs);
  const cMed = paired.c;
  const tsMed = paired.worker.rate;
  console.log(`  C loop around KVM_RUN   ${fmt(cMed)} exits/s  (${(1e6 / cMed).toFixed(2)} us/exit)`);
  console.log(`  tskvm (runGuest)        ${fmt(tsMed)} exits/s  (${(1e6 / tsMed).toFixed(2)} us/exit)`);
  console.log(
    `  ratio tskvm / C         ${paired.worker.ratio.toFixed(3)}   (goal >= 0.98 in-process; median of the paired ratios, ${spread(paired.worker.ratios)}; ratio of the medians ${(tsMed / cMed).toFixed(3)})`,
  );
  console.log(
    `  on the caller's thread  ${fmt(paired.caller.rate)} exits/s  (${(1e6 / paired.caller.rate).toFixed(2)} us/exit)  ratio to C ${paired.caller.ratio.toFixed(3)}  (${spread(paired.caller.ratios)}; ratio of the medians ${(paired.caller.rate / cMed).toFixed(3)})`,
  );

  // Port 0x80 is decoded by no device, so the addon takes those exits without JavaScript (as the
  // C loop does). The same loop to a port a TypeScript device decodes shows the JavaScript path.
  const scratch = mkdtempSync(path.join(tmpdir(), 'tskvm-bench-'));
  try {
    const rtcImage = pioloopTo(RTC_INDEX_PORT, scratch);
    await runGuest({ image: rtcImage });
    const device = await pairedWithC(rtcImage, threads, rounds, runGuest, rate);
    console.log(`The same loop to the RTC's index port 0x70 (a TypeScript device: every exit through JavaScript; ${rounds} runs of each)`);
    console.log(`  C loop around KVM_RUN   ${fmt(device.c)} exits/s  (${(1e6 / device.c).toFixed(2)} us/exit)`);
    console.log(`  tskvm (runGuest)        ${fmt(device.worker.rate)} exits/s  ratio to C ${device.worker.ratio.toFixed(3)}`);
    console.log(`  on the caller's thread  ${fmt(device.caller.rate)} exits/s  ratio to C ${device.caller.ratio.toFixed(3)}`);

    // The ffi-rs backend against the addon: each in a process of its own (a process picks its
    // backend once), in turn, so that the load hits both alike. The ffi-rs backend has no native
    // loop, so on port 0x80 it also pays the JavaScript that the addon skips; on 0x70 both do.
    const backendRate = (name, image) => {
      const args = [path.join(root, 'bench', 'pioloop-rate.mjs'), String(Math.max(1, Math.ceil(rounds / 2))), image];
      const run = spawnSync(process.execPath, args, { env: { ...process.env, TSKVM_BACKEND: name }, encoding: 'utf8' });
      if (run.status !== 0) throw new Error(`the ${name} backend run failed: ${run.stderr}`);
      return JSON.parse(run.stdout).median;
    };
    for (const [label, image] of [
      ['port 0x80', guest('pioloop')],
      ['port 0x70', rtcImage],
    ]) {
      const byBackend = { addon: [], ffi: [] };
      for (let i = 0; i < 3; i++) for (const name of ['addon', 'ffi']) byBackend[name].push(backendRate(name, image));
      const addonMed = median(byBackend.addon);
      const ffiMed = median(byBackend.ffi);
      console.log(`  tskvm, ffi-rs backend, ${label}  ${fmt(ffiMed)} exits/s  (${(1e6 / ffiMed).toFixed(2)} us/exit)`);
      console.log(
        `  exit cost ffi-rs / addon, ${label} ${(addonMed / ffiMed).toFixed(2)}x  (addon ${fmt(addonMed)} exits/s in the same turns; goal <= 2x)`,
      );
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }

  // Tracing and statistics: off (the runs above) against on, same guest, interleaved.
  const devNull = openSync('/dev/null', 'w');
  const variants = { stats: { stats: true }, trace: { trace: { fd: devNull } } };
  const on = { stats: [], trace: [] };
  for (let i = 0; i < Math.max(1, Math.floor(rounds / 2)); i++) {
    for (const [name, extra] of Object.entries(variants)) {
      const r = await runGuest({ image: guest('pioloop'), ...extra });
      on[name].push(200_001 / (r.durationMs / 1000));
    }
  }
  closeSync(devNull);
  console.log('Tracing and statistics (same guest; "off" is the tskvm figure above)');
  console.log(`  --stats on               ${fmt(median(on.stats))} exits/s  ratio to off ${(median(on.stats) / tsMed).toFixed(3)}`);
  console.log(`  --trace on (to /dev/null) ${fmt(median(on.trace))} exits/s  ratio to off ${(median(on.trace) / tsMed).toFixed(3)}`);
  console.log(`  off vs C loop            ratio ${(tsMed / cMed).toFixed(3)}: tracing off costs nothing measurable`);

  // Create-run-destroy latency, in-process, for a guest that exits once.
  for (let i = 0; i < 10; i++) await runGuest({ image: guest('oneexit') });
  const lat = [];
  for (let i = 0; i < latencyRuns; i++) {
    const t0 = performance.now();
    const r = await runGuest({ image: guest('oneexit') });
    lat.push(performance.now() - t0);
    if (r.exitCode !== 7) throw new Error(`oneexit returned ${r.exitCode}`);
  }
  console.log(`VM create-run-destroy, one-exit guest, in-process (${latencyRuns} runs)`);
  console.log(
    `  median ${median(lat).toFixed(2)} ms, p95 ${percentile(lat, 95).toFixed(2)} ms, min ${Math.min(...lat).toFixed(2)} ms   (goal <= 2 ms)`,
  );
  const stages = spawnSync(process.execPath, [path.join(root, 'bench', 'create-stages.mjs'), '--runs', String(latencyRuns)], {
    stdio: 'inherit',
    timeout: 10 * 60_000,
    killSignal: 'SIGTERM',
  });
  if (stages.status !== 0) {
    console.error(`bench/create-stages.mjs failed (status ${stages.status}${stages.signal ? `, signal ${stages.signal}` : ''})`);
    process.exitCode = 1;
  }

  // Launch: whole processes, so in a process of its own that runs nothing in between.
  console.log('');
  const launch = spawnSync(process.execPath, [path.join(root, 'bench', 'launch.mjs')], {
    stdio: 'inherit',
    timeout: 10 * 60_000,
    killSignal: 'SIGTERM',
  });
  if (launch.status !== 0) {
    console.error(`bench/launch.mjs failed (status ${launch.status}${launch.signal ? `, signal ${launch.signal}` : ''})`);
    process.exitCode = 1;
  }

  // Density (many VMs at once, KSM, batched create-run-destroy): its own process, so that its
  // memory baseline is not this one's; its report follows the figures above.
  const density = spawnSync(process.execPath, [path.join(root, 'bench', 'density.mjs')], {
    stdio: 'inherit',
    timeout: 10 * 60_000,
    killSignal: 'SIGTERM',
  });
  if (density.status !== 0) {
    console.error(
      `bench/density.mjs failed (status ${density.status}${density.signal ? `, signal ${density.signal}` : ''}${density.error ? `, ${density.error.message}` : ''})`,
    );
    process.exitCode = 1;
  }

  // The BIOS against SeaBIOS, snapshots, and a 50-test suite against QEMU: each in its own process.
  for (const script of ['bios.mjs', 'snapshot.mjs', 'testsuite.mjs']) {
    const file = path.join(root, 'bench', script);
    if (!existsSync(file)) continue;
    console.log('');
    const child = spawnSync(process.execPath, [file], { stdio: 'inherit', timeout: 15 * 60_000, killSignal: 'SIGTERM' });
    if (child.status !== 0) {
      console.error(`bench/${script} failed (status ${child.status}${child.signal ? `, signal ${child.signal}` : ''})`);
      process.exitCode = 1;
    }
  }
}

const fmt = (n) => Math.round(n).toLocaleString('en-US').padStart(9);

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
