#!/usr/bin/env node
/**
 * Snapshot benchmark (bench/run.mjs calls it; also `node bench/snapshot.mjs`), figures only,
 * never pass/fail timings:
 *   1. Time to snapshot (pause → the file fsynced and renamed into place) a 16 MiB and a 256 MiB
 *      guest, two ways: every page touched (guests/build/memtouch.elf writes a word into each page
 *      from 2 MiB up) and a small guest that touched a few pages (guests/build/snapticks.elf).
 *   2. Time from startGuest({ restore }) to the guest running, in-process (median and p90), with
 *      and without the memory CRC check, against startGuest({ image }) booting the same guest.
 *   3. 100 guests restored from one snapshot at once, in one process, against 100 booted
 *      (memtouch, 16 MiB, every page touched): the process's PSS, and per guest. Restored guests
 *      read their pages from the snapshot's page cache, shared; booted ones each own theirs.
 *      Each side runs in a child process of its own, so neither sees the other's pages.
 * Firecracker publishes, for comparison: snapshot resume under 8 ms (5 ms p90) for a 2-vCPU 512 MiB
 * microVM on m5d.metal, and a full-snapshot creation baseline of 180 ms for 2 vCPUs / 256 MiB.
 * Options: --runs N (default 7), --guests N (default 100), --dir DIR (where snapshots are written;
 * default the OS temp dir), --json (one JSON object on stdout instead of the table).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, percentile } from './stats.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    guests: { type: 'string', default: '100' },
    dir: { type: 'string' },
    json: { type: 'boolean', default: false },
    // Internal: this process is one side of the density comparison.
    density: { type: 'string' },
    file: { type: 'string' },
  },
});
const RUNS = Number(values.runs);
const GUESTS = Number(values.guests);
const MiB = 1024 * 1024;
const MEMTOUCH = path.join(root, 'guests', 'build', 'memtouch.elf');
const SNAPTICKS = path.join(root, 'guests', 'build', 'snapticks.elf');
/** A guest that never prints again once it has: only a stop ends it. */
const TIMEOUT_MS = 120_000;

const { runGuest, startGuest, releaseIdleResources } = await import(path.join(root, 'dist', 'index.js'));

/** Resolves once `text` has appeared in the COM1 output collected by `sink`. */
function serialWatcher(text) {
  let seen = '';
  let resolve;
  const reached = new Promise((r) => (resolve = r));
  return {
    reached,
    onSerial: (chunk) => {
      seen += chunk.toString('latin1');
      if (seen.includes(text)) resolve();
    },
  };
}

/** Saves `image` with `memory` once its output shows `pattern`; returns the run's `saved`. */
async function save(file, image, memory, pattern) {
  const result = await runGuest({ image, memory, timeoutMs: TIMEOUT_MS, collectSerial: false, save: { path: file, onSerial: pattern } });
  if (result.reason !== 'saved') throw new Error(`${path.basename(image)} ended '${result.reason}' before it could be saved`);
  return result.saved;
}

/** startGuest(options) until the guest runs; returns the milliseconds, and stops it. */
async function timeToRunning(options) {
  const t0 = performance.now();
  const run = await startGuest({ ...options, timeoutMs: TIMEOUT_MS, collectSerial: false });
  while (run.state !== 'running' && run.state !== 'stopped') await new Promise((r) => setImmediate(r));
  const ms = performance.now() - t0;
  run.stop();
  await run.result;
  return ms;
}

const fmt = (ms) => `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;

/** PSS and RSS of this process, in KiB (smaps_rollup). */
function memory() {
  const text = readFileSync('/proc/self/smaps_rollup', 'utf8');
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { pss: field('Pss'), rss: field('Rss'), pssAnon: field('Pss_Anon'), pssFile: field('Pss_File'), pssShmem: field('Pss_Shmem') };
}

/** One side of the density comparison, in this (child) process: prints one JSON line. */
async function densityChild(mode, file) {
  const before = memory();
  const runs = [];
  try {
    if (mode === 'boot') {
      for (let i = 0; i < GUESTS; i++) {
        const watch = serialWatcher('touched');
        const run = await startGuest({
          image: MEMTOUCH,
          memory: '16M',
          timeoutMs: TIMEOUT_MS,
          collectSerial: false,
          onSerial: watch.onSerial,
        });
        runs.push(run);
        await watch.reached;
      }
    } else {
      for (let i = 0; i < GUESTS; i++) runs.push(await startGuest({ restore: file, timeoutMs: TIMEOUT_MS, collectSerial: false }));
    }
    const during = memory();
    process.stdout.write(`${JSON.stringify({ mode, guests: GUESTS, before, during })}\n`);
  } finally {
    for (const run of runs) run.stop();
    await Promise.all(runs.map((run) => run.result.catch(() => {})));
    await releaseIdleResources();
  }
}

function child(mode, file) {
  return new Promise((resolve, reject) => {
    const args = [fileURLToPath(import.meta.url), '--density', mode, '--guests', String(GUESTS), ...(file ? ['--file', file] : [])];
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), 10 * 60_000);
    p.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`density child (${mode}) exited with ${code}`));
      resolve(JSON.parse(out.trim().split('\n').at(-1)));
    });
  });
}

async function main() {
  const dir = mkdtempSync(path.join(values.dir ?? os.tmpdir(), 'tskvm-snapbench-'));
  const report = { snapshot: [], restore: [], density: undefined };
  try {
    // Warm-up: worker pool, JIT, page cache of the images.
    await save(path.join(dir, 'warm.snap'), SNAPTICKS, '16M', 'round 1:');

    // 1. Snapshot time.
    const cases = [
      { name: '16 MiB, every page touched', image: MEMTOUCH, memory: '16M', pattern: 'touched' },
      { name: '256 MiB, every page touched', image: MEMTOUCH, memory: '256M', pattern: 'touched' },
      { name: '16 MiB, a few pages touched', image: SNAPTICKS, memory: '16M', pattern: 'round 1:' },
      { name: '256 MiB, a few pages touched', image: SNAPTICKS, memory: '256M', pattern: 'round 1:' },
    ];
    for (const c of cases) {
      const file = path.join(dir, `${c.image === MEMTOUCH ? 'full' : 'sparse'}-${c.memory}.snap`);
      const saved = [];
      for (let i = 0; i < (c.memory === '256M' ? Math.max(3, Math.ceil(RUNS / 2)) : RUNS); i++)
        saved.push(await save(file, c.image, c.memory, c.pattern));
      c.file = file;
      report.snapshot.push({
        guest: c.name,
        medianMs: median(saved.map((s) => s.durationMs)),
        pages: saved[0].pages,
        fileBytes: statSync(file).size,
      });
    }

    // 2. Restore to running, against booting.
    const restoreCases = [
      { name: 'restore 16 MiB (a few pages)', options: { restore: cases[2].file } },
      { name: 'restore 16 MiB (a few pages), no CRC check', options: { restore: { path: cases[2].file, verifyMemory: false } } },
      { name: 'restore 16 MiB (every page)', options: { restore: cases[0].file } },
      { name: 'restore 16 MiB (every page), no CRC check', options: { restore: { path: cases[0].file, verifyMemory: false } } },
      { name: 'restore 256 MiB (every page), no CRC check', options: { restore: { path: cases[1].file, verifyMemory: false } } },
      { name: 'boot 16 MiB (memtouch.elf), for comparison', options: { image: MEMTOUCH, memory: '16M' } },
      { name: 'boot 16 MiB (snapticks.elf), for comparison', options: { image: SNAPTICKS, memory: '16M' } },
    ];
    // Interleaved, so that drift in the host's load hits every case alike.
    for (const c of restoreCases) await timeToRunning(c.options); // warm-up (the files' page cache)
    const times = restoreCases.map(() => []);
    for (let i = 0; i < RUNS * 3; i++) {
      for (const [j, c] of restoreCases.entries()) times[j].push(await timeToRunning(c.options));
    }
    restoreCases.forEach((c, j) => report.restore.push({ what: c.name, medianMs: median(times[j]), p90Ms: percentile(times[j], 90) }));
    await releaseIdleResources();

    // 3. Density: one snapshot, many guests.
    const file = path.join(dir, 'density.snap');
    await save(file, MEMTOUCH, '16M', 'touched');
    const booted = await child('boot');
    const restored = await child('restore', file);
    const per = (side) => (side.during.pss - side.before.pss) / side.guests;
    report.density = { guests: GUESTS, booted, restored, pssPerGuestKiB: { booted: per(booted), restored: per(restored) } };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  if (values.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  console.log(`Snapshots (guest -> file in ${values.dir ?? os.tmpdir()}, fsync and rename included; median)`);
  for (const s of report.snapshot) {
    console.log(
      `  ${s.guest.padEnd(30)} ${fmt(s.medianMs).padStart(10)}   ${String(s.pages).padStart(6)} pages, file ${(s.fileBytes / MiB).toFixed(2)} MiB`,
    );
  }
  console.log('  (Firecracker: full snapshot of 2 vCPUs / 256 MiB, 180 ms baseline)');
  console.log('startGuest() to the guest running, in-process (median, p90)');
  for (const r of report.restore) console.log(`  ${r.what.padEnd(46)} ${fmt(r.medianMs).padStart(10)} ${fmt(r.p90Ms).padStart(10)}`);
  console.log('  (Firecracker: snapshot resume under 8 ms, 5 ms p90, 2 vCPUs / 512 MiB)');
  const d = report.density;
  const mib = (kib) => `${(kib / 1024).toFixed(1)} MiB`;
  console.log(
    `${d.guests} guests of 16 MiB, every page touched, in one process: PSS (guest RAM: shmem when booted, the file when restored)`,
  );
  const row = (name, side, per) => {
    const delta = (k) => mib((side.during[k] - side.before[k]) / d.guests).padStart(9);
    console.log(
      `  ${name}  total ${mib(side.during.pss).padStart(10)}   per guest ${mib(per).padStart(9)}  (anon ${delta('pssAnon')}, shmem ${delta('pssShmem')}, file ${delta('pssFile')})`,
    );
  };
  row('booted  ', d.booted, d.pssPerGuestKiB.booted);
  row('restored', d.restored, d.pssPerGuestKiB.restored);
  console.log(`  ratio restored / booted, per guest: ${(d.pssPerGuestKiB.restored / d.pssPerGuestKiB.booted).toFixed(3)}`);
}

if (values.density) await densityChild(values.density, values.file);
else await main();
