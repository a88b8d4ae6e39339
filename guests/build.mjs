#!/usr/bin/env node
// Assembles the test guests in guests/*.S into guests/build/: flat binaries, boot sectors and kernels.
//
// Usage: node guests/build.mjs [--force] [NAME ...]
//   (npm run build:guests)
//   NAME    only build these guests: a source file name (`hello.S`, `mbinfo.mb.S`), its name
//           without `.S` (`hello`, `mbinfo.mb`) or its output's name (`mbinfo`, `mbinfo.elf`);
//           default: every guests/*.S
//   --force rebuild even if the output is newer than its inputs
//
// Kinds of guest, by source suffix:
//   <name>.S       flat binary -> build/<name>.bin, linked at origin 0 (it runs at CS=0x1000,
//                  IP=0; loaded at 0x10000).
//   <name>.boot.S  boot sector -> build/<name>.boot.bin, linked at 0x7C00; the output must be
//                  exactly 512 bytes ending 0x55 0xAA (the build pads the image to 510 bytes and
//                  appends the signature if the source does not place it itself, and fails if the
//                  code is too big).
//   <name>.mb.S    32-bit multiboot kernel -> build/<name>.elf, an ELF32 (`as --32`,
//                  `ld -m elf_i386 -T lib/kernel.ld`: linked at 1 MiB, .multiboot header first);
//                  the build checks that the multiboot header is in the file's first 8 KiB.
//   <name>.elf64.S 64-bit kernel -> build/<name>.elf, an ELF64 (`as --64`,
//                  `ld -m elf_x86_64 -T lib/kernel.ld`: linked at 1 MiB), entered in long mode.
//   <name>.aout.S  multiboot "a.out kludge" kernel -> build/<name>.bin, a flat binary linked at
//                  0x100000 (its multiboot header, with the load addresses, must come first).
//   <name>.floppy.S a 1.44 MB floppy image -> build/<name>.floppy.img, linked at 0x7C00: the
//                  source puts the 0x55 0xAA signature at offset 510 itself (its first sector is
//                  the boot sector; what follows are the next sectors); padded with zeros.
//   <name>.disk.S  a hard disk image -> build/<name>.disk.img, as .floppy.S but padded to whole
//                  sectors only (so never a floppy size: the BIOS makes it drive 0x80).
// Two sources that would write the same output are an error.
//
// Tools: GNU binutils `as` (--32, or --64 for .elf64.S; sources say `.code16`/`.code32`/`.code64`
// themselves), `ld`, `objcopy`. Sources may `.include "serial.inc"` etc. from guests/lib/
// (passed as -I).
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
const AOUT_ORIGIN = 0x100000;
const KERNEL_LD_SCRIPT = join(LIB_DIR, 'kernel.ld');
const MULTIBOOT_HEADER_MAGIC = 0x1badb002;
const MULTIBOOT_SEARCH_BYTES = 8192; // the header must lie (4-byte aligned) in the first 8 KiB
const BOOT_SECTOR_SIZE = 512;
const FLOPPY_1440K = 1474560;
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

/**
 * What a source file builds into: its kind (by suffix, longest first) and its output file.
 * hello.S -> flat hello.bin, bootsector.boot.S -> boot bootsector.boot.bin,
 * mbinfo.mb.S -> multiboot mbinfo.elf, long64.elf64.S -> elf64 long64.elf, mbaout.aout.S -> aout mbaout.bin.
 */
function guestKind(file) {
  const stem = file.slice(0, -'.S'.length);
  const suffixed = (suffix, kind, ext) =>
    file.endsWith(suffix) && file.length > suffix.length ? { kind, stem, out: `${file.slice(0, -suffix.length)}.${ext}` } : null;
  return (
    suffixed('.boot.S', 'boot', 'boot.bin') ??
    suffixed('.floppy.S', 'floppy', 'floppy.img') ??
    suffixed('.disk.S', 'disk', 'disk.img') ??
    suffixed('.mb.S', 'multiboot', 'elf') ??
    suffixed('.elf64.S', 'elf64', 'elf') ??
    suffixed('.aout.S', 'aout', 'bin') ?? { kind: 'flat', stem, out: `${stem}.bin` }
  );
}

/** Builds an ELF kernel (.mb.S, .elf64.S) straight into `tmp`. */
function buildKernel(src, kind, obj, tmp, what) {
  const is64 = kind === 'elf64';
  run(AS, [is64 ? '--64' : '--32', '-I', LIB_DIR, '-I', GUESTS_DIR, '-o', obj, src], what);
  run(LD, ['-m', is64 ? 'elf_x86_64' : 'elf_i386', '-nostdlib', '-T', KERNEL_LD_SCRIPT, '-o', tmp, obj], what);
  const image = readFileSync(tmp);
  if (kind === 'multiboot' && findMultibootHeader(image) < 0) {
    throw new BuildError(
      `${what}: no multiboot header (magic 0x1BADB002, valid checksum) in the first ${MULTIBOOT_SEARCH_BYTES} bytes of the ELF; use the multiboot_header macro (guests/lib/multiboot.inc)`,
    );
  }
}

/** Offset of the first valid multiboot v1 header (4-byte aligned, in the first 8 KiB), or -1. */
function findMultibootHeader(image) {
  const end = Math.min(image.length, MULTIBOOT_SEARCH_BYTES) - 12;
  for (let off = 0; off <= end; off += 4) {
    const magic = image.readUInt32LE(off);
    if (magic === MULTIBOOT_HEADER_MAGIC && (magic + image.readUInt32LE(off + 4) + image.readUInt32LE(off + 8)) >>> 0 === 0) return off;
  }
  return -1;
}

function build(src, sharedInputsMtime, force) {
  const file = basename(src);
  const { kind, stem: name, out: outName } = guestKind(file);
  const isBoot = kind === 'boot';
  const out = join(OUT_DIR, outName);
  const outMtime = mtimeMs(out);
  if (!force && outMtime > mtimeMs(src) && outMtime > sharedInputsMtime) return false;

  const what = rel(src);
  const obj = join(OBJ_DIR, `${name}.o`);
  const elf = join(OBJ_DIR, `${name}.elf`);
  const tmp = `${out}.tmp`;
  if (kind === 'multiboot' || kind === 'elf64') {
    buildKernel(src, kind, obj, tmp, what);
    renameSync(tmp, out); // atomic: a reader never sees a half-written image
    return true;
  }
  run(AS, ['--32', '-I', LIB_DIR, '-I', GUESTS_DIR, '-o', obj, src], what);
  const isDiskImage = kind === 'floppy' || kind === 'disk';
  const origin = isBoot || isDiskImage ? BOOT_ORIGIN : kind === 'aout' ? AOUT_ORIGIN : FLAT_ORIGIN;
  run(LD, ['-m', 'elf_i386', '-nostdlib', '-N', '-e', '0', '-Ttext', `0x${origin.toString(16)}`, '-o', elf, obj], what);
  run(OBJCOPY, ['-O', 'binary', '-j', '.text', '-j', '.data', '-j', '.rodata', elf, tmp], what);

  let image = readFileSync(tmp);
  if (image.length === 0) throw new BuildError(`${what}: the assembled image is empty`);
  if (kind === 'aout' && findMultibootHeader(image) < 0) {
    throw new BuildError(
      `${what}: no multiboot header (magic 0x1BADB002, valid checksum) in the first ${MULTIBOOT_SEARCH_BYTES} bytes; expand multiboot_aout_header (guests/lib/multiboot.inc) first in .text`,
    );
  }
  if (isDiskImage) {
    if (image.length < BOOT_SECTOR_SIZE || image[510] !== BOOT_SIGNATURE[0] || image[511] !== BOOT_SIGNATURE[1]) {
      throw new BuildError(`${what}: a disk image's first sector must end 0x55 0xAA (put \`.org 510; .word 0xaa55\` after the boot code)`);
    }
    const size = kind === 'floppy' ? FLOPPY_1440K : Math.ceil(image.length / BOOT_SECTOR_SIZE) * BOOT_SECTOR_SIZE;
    if (image.length > size) throw new BuildError(`${what}: ${image.length} bytes do not fit a 1.44 MB floppy`);
    const padded = Buffer.alloc(size);
    image.copy(padded);
    image = padded;
  }
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
    } else only.push(a.replace(/^.*\//, ''));
  }

  let sources = readdirSync(GUESTS_DIR)
    .filter((f) => f.endsWith('.S'))
    .sort()
    .map((f) => join(GUESTS_DIR, f));
  const byOutput = new Map();
  for (const s of sources) {
    const { out } = guestKind(basename(s));
    const other = byOutput.get(out);
    if (other) {
      process.stderr.write(`build:guests: ${rel(other)} and ${rel(s)} would both build ${rel(join(OUT_DIR, out))}; rename one\n`);
      return 2;
    }
    byOutput.set(out, s);
  }
  if (only.length > 0) {
    // A NAME is a source file name, that name without `.S`, or the output's name with or without its extension.
    const names = (s) => {
      const file = basename(s);
      const { stem, out } = guestKind(file);
      return [file, stem, out, out.replace(/\.(bin|elf|img)$/, '')];
    };
    const missing = only.filter((n) => !sources.some((s) => names(s).includes(n)));
    if (missing.length > 0) {
      process.stderr.write(`build:guests: no such guest: ${missing.map((n) => `guests/${n.endsWith('.S') ? n : `${n}.S`}`).join(', ')}\n`);
      return 2;
    }
    sources = sources.filter((s) => only.some((n) => names(s).includes(n)));
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
      const out = join(OUT_DIR, guestKind(basename(src)).out);
      rmSync(out, { force: true }); // no stale output
      rmSync(`${out}.tmp`, { force: true });
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
