#!/usr/bin/env node
/**
 * Where the time of an in-process create-run-destroy goes (issue 17): the one-exit guest through
 * runGuest(), then the same stages one by one — options validated, the image read, the machine
 * built (every KVM call timed from JS: the ioctl and its crossing), the vCPU run in its pooled
 * worker, the VM closed — and the same run with the exit loop on this thread instead (board built
 * here, no postMessage), so the difference is what the worker round trip costs; and runGuest with
 * vcpuThread 'caller' where the build has it; and the kernel's share, bench/kvm-create.c (the same
 * VM built, run and closed from C, no device model), in batches between them. Medians over
 * --runs (default 200), each variant interleaved with the others so that host drift hits all alike.
 *   node bench/create-stages.mjs [--runs N] [--dist DIR]   (DIR: a tsc outDir, default dist/)
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { boardHere } from './board-here.mjs';
import { buildCCreate, createBinary } from './c-loop.mjs';
import { median, percentile } from './stats.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { runs: { type: 'string', default: '200' }, dist: { type: 'string' } } });
const runs = Number(values.runs);
const dist = path.resolve(values.dist ?? path.join(root, 'dist'));
const image = path.join(root, 'guests', 'build', 'oneexit.bin');
const load = (file) => import(path.join(dist, file));

const { runGuest } = await load('index.js');
const { validateRunOptions } = await load('machine/options.js');
const { readGuestFiles } = await load('machine/guest-files.js');
const { buildMachine } = await load('machine/builder.js');
const { native } = await load('kvm/native.js');
const { runVcpu } = await load('vcpu/exit-loop.js');
const boardFor = await boardHere(dist);
/** The exit loop's view of a vCPU fd, as the vCPU threads make it; a dist older than vcpu/job.js has none, and no on-this-thread stages. */
const { loopVcpu } = await load('vcpu/job.js').catch(() => ({}));

// Every native call of this thread, timed by name (the worker has its own backend, untouched).
const n = native();
const names = new Map(Object.entries(n.ioctls).map(([name, number]) => [number, name]));
let calls = new Map();
const record = (name, dt) => {
  const c = calls.get(name) ?? { count: 0, ms: 0 };
  c.count++;
  c.ms += dt;
  calls.set(name, c);
};
for (const fn of ['open', 'close', 'setUserMemoryRegion', 'mmapAnonymous', 'mmapFd', 'munmap', 'madvise', 'externalBuffer']) {
  const orig = n[fn].bind(n);
  n[fn] = (...args) => {
    const t0 = performance.now();
    const r = orig(...args);
    record(fn === 'setUserMemoryRegion' ? 'KVM_SET_USER_MEMORY_REGION' : fn, performance.now() - t0);
    return r;
  };
}
for (const fn of ['ioctl', 'ioctlBuffer']) {
  const orig = n[fn].bind(n);
  n[fn] = (fd, request, ...rest) => {
    const t0 = performance.now();
    const r = orig(fd, request, ...rest);
    record(names.get(request) ?? `ioctl 0x${request.toString(16)}`, performance.now() - t0);
    return r;
  };
}

const options = { image };

/** runGuest({ vcpuThread: 'caller' }) where this dist has it: the exit loop on the caller's thread, through runGuest. */
const callerOptions =
  validateRunOptions({ image, vcpuThread: 'caller' }).vcpuThread === 'caller' ? { image, vcpuThread: 'caller' } : undefined;

async function whole(opts = options) {
  const t0 = performance.now();
  const r = await runGuest(opts);
  if (r.exitCode !== 7) throw new Error(`oneexit returned ${r.exitCode}`);
  return performance.now() - t0;
}

/** The stages of runGuest, one by one; `inline` runs the exit loop on this thread. */
async function staged(inline) {
  const t = {};
  let at = performance.now();
  const lap = (name) => {
    const now = performance.now();
    t[name] = now - at;
    at = now;
  };
  const config = validateRunOptions(options);
  lap('validate');
  const files = await readGuestFiles(config);
  lap('read files');
  calls = new Map();
  const machine = buildMachine(config, files);
  lap('build');
  t.buildCalls = new Map([...calls].map(([name, c]) => [name, { ...c }]));
  const vcpu = machine.vcpus[0];
  let result;
  if (inline) {
    const { devices, control } = boardFor(machine);
    lap('board (here)');
    result = runVcpu(loopVcpu(vcpu.fd), devices, control, {});
    lap('exit loop (here)');
  } else {
    result = await vcpu.run([null, null, null, null], machine.firmware);
    lap('vcpu.run (worker)');
  }
  if (result.outcome.reason !== 'debug-exit' || result.outcome.exitCode !== 7)
    throw new Error(`oneexit: ${JSON.stringify(result.outcome)}`);
  void machine.vm.close();
  lap('close');
  return t;
}

// Warm-up: the worker pool, the JIT, the page cache.
for (let i = 0; i < 20; i++) {
  await whole();
  if (callerOptions) await whole(callerOptions);
  await staged(false);
  if (loopVcpu) await staged(true);
}

buildCCreate();
/** The C reference's median over a batch of `n` runs in a process of its own (ms). */
const cBatch = (n) => {
  const r = spawnSync(createBinary, [image, String(n)], { encoding: 'utf8' });
  const m = /median_ms=([\d.]+)/.exec(r.stdout);
  if (r.status !== 0 || !m) throw new Error(`bench/kvm-create failed: ${r.stderr || r.stdout}`);
  return Number(m[1]);
};
const C_BATCH = 20;
cBatch(C_BATCH); // warm-up
const cMedians = [];

const totals = [];
const callerTotals = [];
const worker = [];
const inline = [];
const callTimes = new Map();
for (let i = 0; i < runs; i++) {
  totals.push(await whole());
  if (callerOptions) callerTotals.push(await whole(callerOptions));
  const w = await staged(false);
  worker.push(w);
  if (loopVcpu) inline.push(await staged(true));
  if (i % C_BATCH === 0) cMedians.push(cBatch(C_BATCH));
  for (const [name, c] of w.buildCalls) {
    const list = callTimes.get(name) ?? [];
    list.push(c);
    callTimes.set(name, list);
  }
}

const f = (ms) => `${ms.toFixed(3).padStart(7)} ms`;
const stage = (list, name) => median(list.map((t) => t[name]));
const sum = (t, keys) => keys.reduce((a, k) => a + t[k], 0);
console.log(`In-process create-run-destroy, one-exit guest, ${runs} runs, medians (dist: ${path.relative(root, dist) || dist})`);
console.log(`  runGuest() whole            ${f(median(totals))}   p95 ${f(percentile(totals, 95))}   min ${f(Math.min(...totals))}`);
if (callerOptions) {
  const c = callerTotals;
  console.log(`  runGuest() vcpuThread caller ${f(median(c))}   p95 ${f(percentile(c, 95))}   min ${f(Math.min(...c))}`);
}
const cMed = median(cMedians);
console.log(`  C, the same VM (bench/kvm-create.c) ${f(cMed)}   (median of ${cMedians.length} batch medians: the kernel's share)`);
console.log(
  `  ratio to C: runGuest() ${(median(totals) / cMed).toFixed(2)}` +
    (callerOptions ? `, vcpuThread caller ${(median(callerTotals) / cMed).toFixed(2)}` : ''),
);
const wKeys = ['validate', 'read files', 'build', 'vcpu.run (worker)', 'close'];
const iKeys = ['validate', 'read files', 'build', 'board (here)', 'exit loop (here)', 'close'];
console.log('  stages, exit loop in the pooled worker:');
for (const k of wKeys) console.log(`    ${k.padEnd(26)}${f(stage(worker, k))}`);
console.log(`    ${'sum'.padEnd(26)}${f(median(worker.map((t) => sum(t, wKeys))))}`);
if (loopVcpu) {
  console.log('  stages, exit loop on this thread:');
  for (const k of iKeys) console.log(`    ${k.padEnd(26)}${f(stage(inline, k))}`);
  console.log(`    ${'sum'.padEnd(26)}${f(median(inline.map((t) => sum(t, iKeys))))}`);
  const roundTrip = stage(worker, 'vcpu.run (worker)') - stage(inline, 'board (here)') - stage(inline, 'exit loop (here)');
  console.log(`  worker round trip (vcpu.run - board - loop)   ${f(roundTrip)}`);
} else {
  console.log('  stages, exit loop on this thread: not run (this dist has no vcpu/job.js loopVcpu)');
}
console.log(
  `  runGuest beyond the stages (Run: bridges, consoles, result)   ${f(median(totals) - median(worker.map((t) => sum(t, wKeys))))}`,
);
console.log('  build: native calls from this thread (median per run: count, time)');
const rows = [...callTimes].map(([name, list]) => [name, median(list.map((c) => c.count)), median(list.map((c) => c.ms))]);
rows.sort((a, b) => b[2] - a[2]);
for (const [name, count, ms] of rows) console.log(`    ${name.padEnd(28)} ×${String(count).padEnd(3)} ${f(ms)}`);
const native_ = median(worker.map((t) => [...t.buildCalls.values()].reduce((a, c) => a + c.ms, 0)));
console.log(`    ${'all native calls'.padEnd(33)}${f(native_)}   JS of build: ${f(stage(worker, 'build') - native_)}`);
