#!/usr/bin/env node
// Assembles the test guests in guests/*.S into flat binaries in guests/build/<name>.bin.
//
// Usage: node guests/build.mjs [--force] [NAME ...]
//   (npm run build:guests)
//   NAME    only build these guests (e.g. `hello` or `hello.S`); default: every guests/*.S
//   --force rebuild even if the output is newer than its inputs
//
// Two kinds of guest:
//   <name>.S       flat binary, linked at origin 0 (it runs at CS=0x1000, IP=0; loaded at 0x10000).
//   <name>.boot.S  boot sector, linked at 0x7C00; the output must be exactly 512 bytes ending
//                  0x55 0xAA (the build pads the image to 510 bytes and appends the signature if
//                  the source does not place it itself, and fails if the code is too big).
//
// Tools: GNU binutils `as` (--32; sources say `.code16` themselves), `ld -m elf_i386`, `objcopy`.
// Sources may `.include "serial.inc"` etc. from guests/lib/ (passed as -I).
// An output is up to date when it is newer than its source, every file in guests/lib/ and this
// script. Nothing is printed to stdout; one summary line (or the errors) goes to stderr.
// Exit status: 0 on success, 1 if any guest failed to build, 2 on bad usage / missing tools.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const GUESTS_DIR = dirname(fileURLToPath(import.meta.url));
const LIB_DIR = join(GUESTS_DIR, 'lib');
const OUT_DIR = join(GUESTS_DIR, 'build');
const OBJ_DIR = join(OUT_DIR, 'obj');

const FLAT_ORIGIN = 0x0;
const BOOT_ORIGIN = 0x7c00;
const BOOT_SECTOR_SIZE = 512;
const BOOT_SIGNATURE = [0x55, 0xaa];

const AS = process.env.AS ?? 'as';
const LD = process.env.LD ?? 'ld';
const OBJCOPY = process.env.OBJCOPY ?? 'objcopy';

const rel = (p) => relative(process.cwd(), p) || p;

class BuildError extends Error {}

function run(tool, args, what) {
  const r = spawnSync(tool, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) {
    const hint = r.error.code === 'ENOENT' ? ` (is GNU binutils installed? e.g. apt-get install binutils)` : '';
    throw new BuildError(`${what}: cannot run ${tool}: ${r.error.message}${hint}`);
  }
  if (r.status !== 0) {
    const out = `${r.stderr}${r.stdout}`.trim();
    throw new BuildError(`${what}: ${tool} failed (exit ${r.status ?? r.signal})${out ? `:\n${out}` : ''}`);
  }
}

function mtimeMs(p) {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return -Infinity;
  }
}

function build(src, sharedInputsMtime, force) {
  const file = basename(src);
  const isBoot = file.endsWith('.boot.S');
  const name = file.slice(0, -'.S'.length); // hello.S -> hello, bootsector.boot.S -> bootsector.boot
  const out = join(OUT_DIR, `${name}.bin`);
  const outMtime = mtimeMs(out);
  if (!force && outMtime > mtimeMs(src) && outMtime > sharedInputsMtime) return false;

  const what = rel(src);
  const obj = join(OBJ_DIR, `${name}.o`);
  const elf = join(OBJ_DIR, `${name}.elf`);
  const tmp = `${out}.tmp`;
  run(AS, ['--32', '-I', LIB_DIR, '-I', GUESTS_DIR, '-o', obj, src], what);
  const origin = isBoot ? BOOT_ORIGIN : FLAT_ORIGIN;
  run(LD, ['-m', 'elf_i386', '-nostdlib', '-N', '-e', '0', '-Ttext', `0x${origin.toString(16)}`, '-o', elf, obj], what);
  run(OBJCOPY, ['-O', 'binary', '-j', '.text', '-j', '.data', '-j', '.rodata', elf, tmp], what);

  let image = readFileSync(tmp);
  if (image.length === 0) throw new BuildError(`${what}: the assembled image is empty`);
  if (isBoot) {
    const hasSig = image.length === BOOT_SECTOR_SIZE && image[510] === BOOT_SIGNATURE[0] && image[511] === BOOT_SIGNATURE[1];
    if (!hasSig) {
      if (image.length > BOOT_SECTOR_SIZE - BOOT_SIGNATURE.length) {
        throw new BuildError(
          `${what}: boot sector code is ${image.length} bytes; at most ${BOOT_SECTOR_SIZE - 2} fit before the 0x55AA signature`,
        );
      }
      const padded = Buffer.alloc(BOOT_SECTOR_SIZE);
      image.copy(padded);
      padded[510] = BOOT_SIGNATURE[0];
      padded[511] = BOOT_SIGNATURE[1];
      image = padded;
    }
    if (image.length !== BOOT_SECTOR_SIZE || image[510] !== 0x55 || image[511] !== 0xaa) {
      throw new BuildError(`${what}: boot sector must be exactly 512 bytes ending 0x55 0xAA (got ${image.length} bytes)`);
    }
  }
  writeFileSync(tmp, image);
  renameSync(tmp, out); // atomic: a reader never sees a half-written image
  return true;
}

function main(argv) {
  let force = false;
  const only = [];
  for (const a of argv) {
    if (a === '--force' || a === '-f') force = true;
    else if (a === '--help' || a === '-h') {
      process.stderr.write('usage: node guests/build.mjs [--force] [NAME ...]\n');
      return 0;
    } else if (a.startsWith('-')) {
      process.stderr.write(`build:guests: unknown option ${a}\nusage: node guests/build.mjs [--force] [NAME ...]\n`);
      return 2;
    } else only.push(a.replace(/\.S$/, '').replace(/^.*\//, ''));
  }

  let sources = readdirSync(GUESTS_DIR)
    .filter((f) => f.endsWith('.S'))
    .sort()
    .map((f) => join(GUESTS_DIR, f));
  if (only.length > 0) {
    const wanted = new Set(only);
    const missing = only.filter((n) => !existsSync(join(GUESTS_DIR, `${n}.S`)));
    if (missing.length > 0) {
      process.stderr.write(`build:guests: no such guest: ${missing.map((n) => `guests/${n}.S`).join(', ')}\n`);
      return 2;
    }
    sources = sources.filter((s) => wanted.has(basename(s).slice(0, -2)));
  }

  let shared = mtimeMs(fileURLToPath(import.meta.url));
  if (existsSync(LIB_DIR)) for (const f of readdirSync(LIB_DIR)) shared = Math.max(shared, mtimeMs(join(LIB_DIR, f)));

  mkdirSync(OBJ_DIR, { recursive: true });
  const started = process.hrtime.bigint();
  let built = 0;
  let upToDate = 0;
  const failed = [];
  for (const src of sources) {
    try {
      if (build(src, shared, force)) built++;
      else upToDate++;
    } catch (e) {
      if (!(e instanceof BuildError)) throw e;
      rmSync(join(OUT_DIR, `${basename(src).slice(0, -2)}.bin`), { force: true }); // no stale output
      rmSync(join(OUT_DIR, `${basename(src).slice(0, -2)}.bin.tmp`), { force: true });
      failed.push(basename(src));
      process.stderr.write(`build:guests: error: ${e.message}\n`);
    }
  }
  const ms = Number((process.hrtime.bigint() - started) / 1_000_000n);
  process.stderr.write(
    `build:guests: ${built} built, ${upToDate} up to date${failed.length ? `, ${failed.length} FAILED (${failed.join(', ')})` : ''} -> ${rel(OUT_DIR)}/ (${ms} ms)\n`,
  );
  return failed.length ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
