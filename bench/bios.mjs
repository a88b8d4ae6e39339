#!/usr/bin/env node
/**
 * tskvm's BIOS against QEMU with SeaBIOS (qemu-system-x86_64 -accel kvm), on the same boot sector
 * (guests/build/bios-bench.boot.bin: one line through INT 10h teletype, then a debug-exit write,
 * which QEMU sees through -device isa-debug-exit):
 *   1. Boot time: process start to the end of the run, for `tskvm run` and for QEMU; and, in
 *      process, runGuest() from call to result (VM creation, POST, INT 19h, the line).
 *   2. The cost of one teletype call (INT 10h AH=0Eh): a 100-line image against the 1-line one,
 *      in process, divided by the extra calls.
 * QEMU is skipped (and said so) when qemu-system-x86_64 is not installed. Median of --rounds N
 * (default 5) runs, interleaved so that host drift hits both alike.
 * Exports runBiosBench() for bench/run.mjs; run alone it prints its table.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { median } from './stats.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bootSector = path.join(root, 'guests', 'build', 'bios-bench.boot.bin');
const cli = path.join(root, 'bin', 'tskvm.js');
const QEMU = process.env.QEMU ?? 'qemu-system-x86_64';
const LINE = 'Hello from the BIOS!\r\n';
const MANY_LINES = 100;
const EXIT_VALUE = 0x31;
/** QEMU's isa-debug-exit turns the value v into the exit status (v << 1) | 1. */
const QEMU_EXIT_STATUS = (EXIT_VALUE << 1) | 1;

function haveQemu() {
  return spawnSync(QEMU, ['--version'], { stdio: 'ignore' }).status === 0;
}

/** The benchmark guest with `lines` lines, assembled into a temporary directory. */
function buildManyLines(dir, lines) {
  const src = path.join(root, 'guests', 'bios-bench.boot.S');
  const lib = path.join(root, 'guests', 'lib');
  const obj = path.join(dir, 'bench.o');
  const elf = path.join(dir, 'bench.elf');
  const bin = path.join(dir, 'bench.bin');
  execFileSync('as', ['--32', '-I', lib, `--defsym`, `BIOS_BENCH_LINES=${lines}`, '-o', obj, src]);
  execFileSync('ld', ['-m', 'elf_i386', '-nostdlib', '-N', '-e', '0', '-Ttext', '0x7c00', '-o', elf, obj], { stdio: 'pipe' });
  execFileSync('objcopy', ['-O', 'binary', '-j', '.text', elf, bin]);
  const code = readFileSync(bin);
  const image = Buffer.alloc(512);
  code.copy(image);
  image[510] = 0x55;
  image[511] = 0xaa;
  writeFileSync(bin, image);
  return bin;
}

function timeProcess(command, args, expectStatus) {
  const t0 = performance.now();
  const r = spawnSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== expectStatus) throw new Error(`${command} ${args.join(' ')} ended with ${r.status}: ${r.stderr}`);
  return { ms, stdout: r.stdout };
}

const qemuArgs = (image) => [
  '-accel',
  'kvm',
  '-m',
  '16',
  '-nodefaults',
  '-vga',
  'std',
  '-display',
  'none',
  '-serial',
  'none',
  '-monitor',
  'none',
  '-device',
  'isa-debug-exit,iobase=0xf4,iosize=0x04',
  '-drive',
  `file=${image},format=raw,if=ide,index=0`,
];

export async function runBiosBench({ rounds = 5, log = console.log } = {}) {
  const { runGuest } = await import(pathToFileURL(path.join(root, 'dist', 'index.js')).href);
  const dir = mkdtempSync(path.join(tmpdir(), 'tskvm-bios-bench-'));
  try {
    const many = buildManyLines(dir, MANY_LINES);
    const qemu = haveQemu();
    // A QEMU disk image must not be the file tskvm reads: copy it, QEMU may lock it.
    const qemuImage = path.join(dir, 'qemu.img');
    writeFileSync(qemuImage, readFileSync(bootSector));
    // Warm up: page cache, worker pool, JIT.
    await runGuest({ image: bootSector });
    timeProcess(process.execPath, [cli, 'run', bootSector], EXIT_VALUE);
    const inProcess = [];
    const cliRuns = [];
    const qemuRuns = [];
    const oneLine = [];
    const manyLines = [];
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      const r = await runGuest({ image: bootSector });
      inProcess.push(performance.now() - t0);
      if (r.bios?.console !== LINE || r.exitCode !== EXIT_VALUE)
        throw new Error(`unexpected run: ${JSON.stringify(r.bios?.console)} ${r.exitCode}`);
      oneLine.push(r.durationMs);
      const m = await runGuest({ image: many });
      manyLines.push(m.durationMs);
      const c = timeProcess(process.execPath, [cli, 'run', bootSector], EXIT_VALUE);
      if (c.stdout !== LINE) throw new Error(`tskvm printed ${JSON.stringify(c.stdout)}`);
      cliRuns.push(c.ms);
      if (qemu) qemuRuns.push(timeProcess(QEMU, qemuArgs(qemuImage), QEMU_EXIT_STATUS).ms);
    }
    const perCall = ((median(manyLines) - median(oneLine)) * 1000) / ((MANY_LINES - 1) * LINE.length);
    const results = {
      tskvmCliMs: median(cliRuns),
      tskvmInProcessMs: median(inProcess),
      qemuMs: qemu ? median(qemuRuns) : undefined,
      teletypeUs: perCall,
    };
    log(`BIOS boot (guests/build/bios-bench.boot.bin: POST, INT 19h, one line via INT 10h, exit; median of ${rounds})`);
    log(`  tskvm run (process start to exit)      ${results.tskvmCliMs.toFixed(1)} ms`);
    log(`  runGuest() in process                  ${results.tskvmInProcessMs.toFixed(1)} ms`);
    if (qemu) {
      log(`  qemu-system-x86_64 -accel kvm, SeaBIOS ${results.qemuMs.toFixed(1)} ms`);
      log(`  ratio QEMU / tskvm run                 ${(results.qemuMs / results.tskvmCliMs).toFixed(1)}x`);
    } else {
      log(`  qemu-system-x86_64: not installed, skipped (apt-get install qemu-system-x86)`);
    }
    log(`  one INT 10h teletype call              ${perCall.toFixed(1)} us (${MANY_LINES} lines against 1, in process)`);
    return results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' } } });
  await runBiosBench({ rounds: Number(values.rounds) });
}
