#!/usr/bin/env node
/**
 * Density benchmark: what many small guests cost, reported as figures and ratios against a
 * reference measured in the same run (never pass/fail timings).
 *   (a) N one-vCPU guests at once in ONE process (startGuest spin.bin, sampled while all run):
 *       process RSS / peak and RSS per VM above a baseline; a full run of hello.bin x N for wall
 *       time. Compared with the same N guests as N `tskvm run` processes and as N
 *       qemu-system-x86_64 -accel kvm processes (when QEMU is installed): total RSS, RSS per VM,
 *       ratio tskvm-in-process / QEMU (target: below 0.5).
 *   (b) KSM: M identical VMs (Vm.create with ksm: true, 8 MiB of each filled from the host with
 *       the same non-zero pattern); KSM switched on for the measurement if it is off (root only;
 *       the previous settings are restored); pages merged and MiB saved.
 *   (c) VM create-run-destroy latency in-process for oneexit.bin: sequential and 8 at a time.
 * Options: --vms N (default 64), --ksm-vms M (default 16), --no-processes (skip the N-process
 * comparisons), --latency-runs N (default 200), --batches N (default 25).
 * Every child runs without NODE_EXTRA_CA_CERTS (bench/env.mjs), in its own process group, and is
 * killed (SIGTERM, then SIGKILL) on every path out; every wait is bounded.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchEnv } from './env.mjs';
import { median, percentile } from './stats.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    vms: { type: 'string', default: '64' },
    'ksm-vms': { type: 'string', default: '16' },
    'no-processes': { type: 'boolean', default: false },
    'latency-runs': { type: 'string', default: '200' },
    batches: { type: 'string', default: '25' },
  },
});
const VMS = Number(values.vms);
const KSM_VMS = Number(values['ksm-vms']);
const LATENCY_RUNS = Number(values['latency-runs']);
const BATCHES = Number(values.batches);
const BATCH = 8;
const PAGE = 4096;
const MiB = 1024 * 1024;

const guest = (file) => path.join(root, 'guests', 'build', file);
const { Vm, runGuest, startGuest, releaseIdleResources } = await import(path.join(root, 'dist', 'index.js'));

// ---------------------------------------------------------------- helpers

const mib = (kib) => `${(kib / 1024).toFixed(1)} MiB`;
const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;

/** Fields of /proc/<pid>/status in KiB (VmRSS, VmHWM, RssAnon, RssFile, RssShmem). */
function status(pid = 'self') {
  const out = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const m = /^(VmRSS|VmHWM|RssAnon|RssFile|RssShmem|Threads):\s+(\d+)/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

/** Proportional set size in KiB (shared pages divided among the processes mapping them). */
function pss(pid) {
  try {
    const m = /^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------- child processes

/** Every child still alive, so that any way out (error, signal, exit) kills its process group. */
const children = new Set();

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}

process.on('exit', () => {
  for (const c of children) killGroup(c, 'SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const c of children) killGroup(c, 'SIGKILL');
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });
}

/** Spawns a child in its own process group; resolves once `ready(child)` resolves (bounded). */
function spawnChild(command, args, { waitFor, timeoutMs }) {
  const child = spawn(command, args, { cwd: root, stdio: ['pipe', 'pipe', 'ignore'], detached: true, env: benchEnv });
  children.add(child);
  child.exited = new Promise((resolve) => child.once('exit', resolve));
  child.exited.then(() => children.delete(child));
  let out = '';
  const ready = new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, sig) => reject(new Error(`${command} exited early (${code ?? sig}): ${out.slice(0, 200)}`)));
    if (typeof waitFor === 'string') {
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes(waitFor)) resolve(child);
      });
    } else {
      child.stdout.resume();
      waitFor(child).then(() => resolve(child), reject);
    }
  });
  return withTimeout(ready, timeoutMs, `${command} ${args.join(' ')}`).catch((err) => {
    killGroup(child, 'SIGKILL');
    throw err;
  });
}

/** SIGTERM every group, wait (bounded) for them to exit, SIGKILL what is left. */
async function stopChildren(list) {
  for (const c of list) killGroup(c, 'SIGTERM');
  await Promise.race([Promise.all(list.map((c) => c.exited)), sleep(10_000)]);
  for (const c of list) if (children.has(c)) killGroup(c, 'SIGKILL');
  await Promise.race([Promise.all(list.map((c) => c.exited)), sleep(5_000)]);
}

/** Resolves once the child's VmRSS has stopped changing for `stableMs` (at least `minMs` after spawn). */
async function rssSettled(child, { minMs = 1000, stableMs = 500, maxMs = 30_000 } = {}) {
  const t0 = performance.now();
  let last = -1;
  let since = t0;
  for (;;) {
    await sleep(100);
    if (child.exitCode !== null || child.signalCode !== null) throw new Error('exited');
    const rss = status(child.pid).VmRSS ?? 0;
    const now = performance.now();
    if (rss !== last) {
      last = rss;
      since = now;
    } else if (now - t0 >= minMs && now - since >= stableMs) return;
    if (now - t0 > maxMs) return;
  }
}

/**
 * Starts `count` processes in batches, each batch waited for before the next; samples their
 * memory while all run; then stops them all (also on error).
 */
async function measureProcesses(label, count, batch, start) {
  const list = [];
  const t0 = performance.now();
  try {
    for (let i = 0; i < count; i += batch) {
      const n = Math.min(batch, count - i);
      const started = await Promise.allSettled(Array.from({ length: n }, () => start()));
      for (const s of started) if (s.status === 'fulfilled') list.push(s.value);
      const failed = started.find((s) => s.status === 'rejected');
      if (failed) throw failed.reason;
    }
    const startMs = performance.now() - t0;
    await sleep(500);
    let rss = 0;
    let hwm = 0;
    let pssSum = 0;
    let pssKnown = true;
    for (const c of list) {
      const st = status(c.pid);
      rss += st.VmRSS ?? 0;
      hwm += st.VmHWM ?? 0;
      const p = pss(c.pid);
      if (p === undefined) pssKnown = false;
      else pssSum += p;
    }
    return { label, count: list.length, startMs, rss, hwm, pss: pssKnown ? pssSum : undefined };
  } finally {
    await stopChildren(list);
  }
}

// ---------------------------------------------------------------- (a) density

async function main() {
  const report = [];
  const t00 = performance.now();
  console.log('');
  console.log(`Density (bench/density.mjs): ${VMS} one-vCPU guests, ${KSM_VMS} for KSM; ${(await import('node:os')).cpus().length} CPUs`);

  const a = await inProcessDensity();

  const inProcKiB = a.sample.VmRSS - a.base.VmRSS;
  console.log(`(a) ${VMS} guests in one process`);
  console.log(`  baseline before: VmRSS ${mib(a.base.VmRSS)} (node + addon + loaded code, no VM)`);
  console.log(
    `  ${VMS} x spin.bin running: started in ${secs(a.sample.startMs)}, VmRSS ${mib(a.sample.VmRSS)} (anon ${mib(a.sample.RssAnon)}, file ${mib(a.sample.RssFile)}, shmem ${mib(a.sample.RssShmem)}), VmHWM ${mib(a.sample.VmHWM)}, ${a.sample.threads} threads; stopped in ${a.stopMs.toFixed(1)} ms`,
  );
  console.log(
    `  RSS per VM above the baseline: ${(inProcKiB / VMS).toFixed(0)} KiB  ((${mib(a.sample.VmRSS)} - ${mib(a.base.VmRSS)}) / ${VMS})`,
  );
  console.log(
    `  ${VMS} x hello.bin, full concurrent runs: wall ${secs(a.helloMs)} (${a.helloOk}/${VMS} correct), ${(VMS / (a.helloMs / 1000)).toFixed(0)} VMs/s, VmHWM after ${mib(a.helloHwm)}`,
  );
  report.push({
    setup: `tskvm, ${VMS} VMs in one process`,
    rss: a.sample.VmRSS,
    pss: a.sample.VmRSS,
    perVm: inProcKiB / VMS,
    note: `per VM above a ${mib(a.base.VmRSS)} baseline`,
  });

  let tskvmProcs;
  let qemu;
  let qemuSkip;
  if (values['no-processes']) {
    qemuSkip = 'skipped: --no-processes';
    console.log('  separate processes: skipped (--no-processes)');
  } else {
    // 64 `tskvm run spin.bin` processes; a batch at a time, each waited for until it prints "spinning".
    tskvmProcs = await measureProcesses(`tskvm run, ${VMS} processes`, VMS, 8, () =>
      spawnChild(process.execPath, [path.join(root, 'bin', 'tskvm.js'), 'run', guest('spin.bin')], {
        waitFor: 'spinning',
        timeoutMs: 90_000,
      }),
    );
    console.log(
      `  ${VMS} x \`tskvm run spin.bin\` processes: all up in ${secs(tskvmProcs.startMs)}, sum VmRSS ${mib(tskvmProcs.rss)}, sum PSS ${tskvmProcs.pss === undefined ? 'n/a' : mib(tskvmProcs.pss)}`,
    );
    report.push({
      setup: tskvmProcs.label,
      rss: tskvmProcs.rss,
      pss: tskvmProcs.pss,
      perVm: tskvmProcs.rss / VMS,
      note: 'sum over processes',
    });
    await releaseIdleResources();

    const qemuBin = findQemu();
    if (!qemuBin) {
      qemuSkip = 'skipped: QEMU not installed';
      console.log(`  qemu-system-x86_64: ${qemuSkip}`);
    } else {
      // A multiboot kernel that finds the MP table and then halts with interrupts off (no
      // isa-debug-exit device: its exit write is ignored), so QEMU stays up with a live, idle guest.
      const args = [
        '-accel',
        'kvm',
        '-m',
        '16M',
        '-display',
        'none',
        '-monitor',
        'none',
        '-serial',
        'none',
        '-net',
        'none',
        '-no-reboot',
        '-kernel',
        guest('mptable.elf'),
      ];
      try {
        qemu = await measureProcesses(`qemu-system-x86_64 -accel kvm, ${VMS} processes`, VMS, 8, () =>
          spawnChild(qemuBin, args, { waitFor: (c) => rssSettled(c, { minMs: 1000, stableMs: 400, maxMs: 20_000 }), timeoutMs: 60_000 }),
        );
        console.log(
          `  ${VMS} x \`qemu-system-x86_64 ${args.join(' ').replace(root + '/', '')}\`: all up in ${secs(qemu.startMs)}, sum VmRSS ${mib(qemu.rss)}, sum PSS ${qemu.pss === undefined ? 'n/a' : mib(qemu.pss)}`,
        );
        report.push({ setup: qemu.label, rss: qemu.rss, pss: qemu.pss, perVm: qemu.rss / VMS, note: 'sum over processes' });
      } catch (err) {
        qemuSkip = `skipped: QEMU failed (${err.message})`;
        console.log(`  qemu-system-x86_64: ${qemuSkip}`);
      }
    }
  }

  console.log('');
  console.log(`  ${'setup'.padEnd(44)} ${'total RSS'.padStart(12)} ${'total PSS'.padStart(12)} ${'RSS per VM'.padStart(12)}`);
  for (const r of report) {
    console.log(
      `  ${r.setup.padEnd(44)} ${mib(r.rss).padStart(12)} ${(r.pss === undefined ? 'n/a' : mib(r.pss)).padStart(12)} ${mib(r.perVm).padStart(12)}   ${r.note}`,
    );
  }
  if (qemu) {
    const ratio = a.sample.VmRSS / qemu.rss;
    console.log(`  ratio tskvm-in-process / QEMU, total RSS: ${ratio.toFixed(3)}   (target < 0.5)`);
    if (qemu.pss !== undefined)
      console.log(
        `  ratio tskvm-in-process / QEMU, total PSS: ${(a.sample.VmRSS / qemu.pss).toFixed(3)}   (PSS splits the shared binary and libraries among the QEMU processes)`,
      );
    console.log(`  ratio per VM above baseline, tskvm-in-process / QEMU process: ${(inProcKiB / qemu.rss).toFixed(3)}`);
  } else {
    console.log(`  ratio tskvm-in-process / QEMU: ${qemuSkip}`);
  }
  if (tskvmProcs)
    console.log(`  ratio tskvm-in-process / ${VMS} tskvm processes, total RSS: ${(a.sample.VmRSS / tskvmProcs.rss).toFixed(3)}`);
  console.log(
    "  (RSS is user memory only: KVM's own kernel allocations per VM — vCPU state, EPT/shadow page tables, irqchip — are in no setup's RSS.)",
  );
  await releaseIdleResources();

  // ------------------------------------------------------------ (b) KSM
  console.log('');
  await ksmSection();
  await releaseIdleResources();

  // ------------------------------------------------------------ (c) latency
  console.log('');
  await latencySection();
  await releaseIdleResources();
  console.log(`Density bench done in ${secs(performance.now() - t00)}`);
}

/** Starts spin.bin in-process; `ready` resolves once the guest has printed "spinning" (it then loops). */
async function startSpin() {
  let text = '';
  let markReady;
  const ready = new Promise((resolve) => {
    markReady = resolve;
  });
  const run = await startGuest({
    image: guest('spin.bin'),
    onSerial: (chunk) => {
      text += Buffer.from(chunk).toString('latin1');
      if (text.includes('spinning')) markReady();
    },
  });
  return { run, ready };
}

async function inProcessDensity() {
  // Warm up (the addon, the loader, one vCPU worker), then release it all: the baseline holds no VM.
  await runGuest({ image: guest('hello.bin') });
  await releaseIdleResources();
  await sleep(200);
  const base = status();

  const t0 = performance.now();
  const runs = [];
  let sample;
  let stopMs;
  try {
    const started = await withTimeout(
      Promise.allSettled(
        Array.from({ length: VMS }, async () => {
          const { run, ready } = await startSpin();
          runs.push(run);
          await withTimeout(ready, 60_000, 'a spin guest printing "spinning"');
          return run;
        }),
      ),
      120_000,
      `starting ${VMS} spin guests`,
    );
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    const startMs = performance.now() - t0;
    await sleep(500);
    const st = status();
    sample = { startMs, ...st, threads: st.Threads };
  } finally {
    const s0 = performance.now();
    runs.forEach((r) => r.stop());
    const results = await withTimeout(Promise.all(runs.map((r) => r.result)), 60_000, 'stopping the spin guests');
    stopMs = performance.now() - s0;
    const bad = results.filter((r) => r.reason !== 'stopped');
    if (bad.length) console.log(`  warning: ${bad.length} spin guests ended with ${bad[0].reason}`);
  }
  await releaseIdleResources();

  // A full run of hello.bin x VMS, concurrently: wall time from the first start to the last end.
  const h0 = performance.now();
  const hello = await withTimeout(
    Promise.all(Array.from({ length: VMS }, () => runGuest({ image: guest('hello.bin') }))),
    120_000,
    `${VMS} hello runs`,
  );
  const helloMs = performance.now() - h0;
  const helloOk = hello.filter((r) => r.exitCode === 42 && r.serial === 'Hello from a tskvm guest!\n').length;
  const afterHello = status();
  await releaseIdleResources();
  return { base, sample, stopMs, helloMs, helloOk, helloHwm: afterHello.VmHWM };
}

function findQemu() {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.join(dir || '.', 'qemu-system-x86_64');
    if (existsSync(p)) return p;
  }
  return undefined;
}

// ---------------------------------------------------------------- (b) KSM

const KSM = '/sys/kernel/mm/ksm';
const readKsm = (name) => {
  try {
    return readFileSync(`${KSM}/${name}`, 'utf8').trim();
  } catch {
    return undefined;
  }
};
const ksmNum = (name) => Number(readKsm(name) ?? NaN);
function selfMergingPages() {
  try {
    return Number(readFileSync('/proc/self/ksm_merging_pages', 'utf8').trim());
  } catch {
    return undefined;
  }
}

async function ksmSection() {
  const FILL = 8 * MiB;
  const MEM = 16 * MiB;
  console.log(
    `(b) KSM: ${KSM_VMS} VMs (Vm.create, ${MEM / MiB} MiB, ksm: true), the same ${FILL / MiB} MiB non-zero pattern written into each from the host`,
  );
  if (!existsSync(KSM)) {
    console.log(`  skipped: ${KSM} does not exist (kernel without CONFIG_KSM)`);
    return;
  }
  const saved = { run: readKsm('run'), pages_to_scan: readKsm('pages_to_scan'), sleep_millisecs: readKsm('sleep_millisecs') };
  const changed = [];
  const vms = [];
  try {
    if (saved.run !== '1' || Number(saved.pages_to_scan) < 10000 || Number(saved.sleep_millisecs) > 10) {
      try {
        // Scan rate first, then run: the daemon starts at the fast rate.
        for (const [k, v] of [
          ['pages_to_scan', '10000'],
          ['sleep_millisecs', '10'],
          ['run', '1'],
        ]) {
          if (readKsm(k) !== v) {
            writeFileSync(`${KSM}/${k}`, v);
            changed.push(k);
          }
        }
      } catch (err) {
        console.log(
          `  skipped: cannot switch KSM on for the measurement (${err.code ?? err.message}: writing ${KSM} needs root); run is ${saved.run}`,
        );
        return;
      }
      console.log(
        `  KSM was run=${saved.run} pages_to_scan=${saved.pages_to_scan} sleep_millisecs=${saved.sleep_millisecs}; set to run=1, 10000 pages per 10 ms for the measurement (restored after)`,
      );
    }
    console.log(
      `  use_zero_pages=${readKsm('use_zero_pages')} (zero pages are merged only when 1; the pattern here is non-zero, so it does not matter)`,
    );
    const before = {
      sharing: ksmNum('pages_sharing'),
      shared: ksmNum('pages_shared'),
      self: selfMergingPages() ?? 0,
      scans: ksmNum('full_scans'),
    };
    const rssBefore = status().VmRSS;

    // The same content in every VM; each page distinct within a VM (its index in the first word),
    // so merging can only happen across VMs: expected sharing = (VMs - 1) x pages.
    const pattern = new Uint8Array(FILL);
    const words = new Uint32Array(pattern.buffer);
    for (let i = 0; i < words.length; i++) words[i] = (0x9e3779b9 * (i + 1)) >>> 0;
    for (let p = 0; p < FILL / PAGE; p++) words[(p * PAGE) / 4] = p;
    for (let i = 0; i < KSM_VMS; i++) {
      const vm = Vm.create({ memorySize: MEM, ksm: true });
      vms.push(vm);
      vm.memory.bytes.set(pattern, 1 * MiB);
    }
    const rssFilled = status().VmRSS;
    const pagesPerVm = FILL / PAGE;
    const expected = (KSM_VMS - 1) * pagesPerVm;
    const scansAtFill = ksmNum('full_scans');

    // Wait (up to 20 s) for the counters to stop growing: two full scans after the fill (KSM needs
    // one to see a page unchanged, one to merge it) and no growth for 1 s.
    const t0 = performance.now();
    let last = -1;
    let stableSince = t0;
    let sharing = 0;
    let self = 0;
    for (;;) {
      await sleep(250);
      sharing = ksmNum('pages_sharing') - before.sharing;
      self = (selfMergingPages() ?? 0) - before.self;
      const now = performance.now();
      if (sharing !== last) {
        last = sharing;
        stableSince = now;
      }
      if (ksmNum('full_scans') >= scansAtFill + 2 && now - stableSince >= 1000) break;
      if (now - t0 > 20_000) break;
    }
    const waited = performance.now() - t0;
    const shared = ksmNum('pages_shared') - before.shared;
    console.log(
      `  filled: ${KSM_VMS} x ${pagesPerVm} pages (process VmRSS ${mib(rssBefore)} -> ${mib(rssFilled)}); waited ${secs(waited)} (${ksmNum('full_scans') - scansAtFill} full scans)`,
    );
    console.log(`  this process: ksm_merging_pages +${self}  (of ${KSM_VMS * pagesPerVm} filled pages)`);
    console.log(`  system: pages_shared +${shared} (distinct pages kept), pages_sharing +${sharing} (page sites deduplicated onto them)`);
    console.log(
      `  saved: ${((sharing * PAGE) / MiB).toFixed(1)} MiB of ${((KSM_VMS * FILL) / MiB).toFixed(0)} MiB filled; expected for full merging ${expected} pages = ${((expected * PAGE) / MiB).toFixed(1)} MiB; ratio ${(sharing / expected).toFixed(3)}`,
    );
    console.log(
      "  (system-wide counters include any other mergeable memory on the host; VmRSS does not drop: a merged page still counts in each mapping's RSS)",
    );
  } finally {
    await Promise.all(vms.map((vm) => vm.close()));
    for (const k of ['run', 'sleep_millisecs', 'pages_to_scan']) {
      if (changed.includes(k) && saved[k] !== undefined) {
        try {
          writeFileSync(`${KSM}/${k}`, saved[k]);
        } catch (err) {
          console.log(`  warning: could not restore ${KSM}/${k} to ${saved[k]}: ${err.message}`);
        }
      }
    }
    if (changed.length)
      console.log(
        `  KSM settings restored (run=${readKsm('run')} pages_to_scan=${readKsm('pages_to_scan')} sleep_millisecs=${readKsm('sleep_millisecs')})`,
      );
  }
}

// ---------------------------------------------------------------- (c) latency

async function latencySection() {
  const one = () => runGuest({ image: guest('oneexit.bin') });
  for (let i = 0; i < 10; i++) await one();
  const lat = [];
  for (let i = 0; i < LATENCY_RUNS; i++) {
    const t0 = performance.now();
    const r = await withTimeout(one(), 10_000, 'oneexit run');
    lat.push(performance.now() - t0);
    if (r.exitCode !== 7) throw new Error(`oneexit returned ${r.exitCode}`);
  }
  console.log(`(c) VM create-run-destroy, oneexit.bin, in-process`);
  console.log(
    `  sequential (${LATENCY_RUNS} runs): median ${median(lat).toFixed(2)} ms, p95 ${percentile(lat, 95).toFixed(2)} ms, min ${Math.min(...lat).toFixed(2)} ms`,
  );

  await releaseIdleResources();
  await Promise.all(Array.from({ length: BATCH }, one)); // warm the pool to 8 workers
  const batches = [];
  const t0 = performance.now();
  for (let i = 0; i < BATCHES; i++) {
    const b0 = performance.now();
    const rs = await withTimeout(Promise.all(Array.from({ length: BATCH }, one)), 20_000, 'a batch of oneexit runs');
    batches.push(performance.now() - b0);
    if (rs.some((r) => r.exitCode !== 7)) throw new Error('oneexit returned the wrong code');
  }
  const total = performance.now() - t0;
  const med = median(batches);
  console.log(
    `  ${BATCH} at a time (Promise.all, ${BATCHES} batches): median batch ${med.toFixed(2)} ms = ${(med / BATCH).toFixed(2)} ms per VM, p95 batch ${percentile(batches, 95).toFixed(2)} ms; throughput ${((BATCH * 1000) / med).toFixed(0)} VMs/s at the median (${((BATCH * BATCHES * 1000) / total).toFixed(0)} VMs/s over all ${BATCH * BATCHES})`,
  );
  console.log(`  ratio per-VM cost, ${BATCH} at a time / sequential median: ${(med / BATCH / median(lat)).toFixed(3)}`);
}

main()
  .then(() => process.exit(0))
  .catch((err) => {
    console.error(err);
    for (const c of children) killGroup(c, 'SIGKILL');
    process.exit(1);
  });
