/**
 * tskvm/testing's assemble(): GNU as (and NASM where installed) source strings into flat binaries,
 * boot sectors and ELF kernels with the host's binutils, cached by content, with the assembler's
 * messages (and the lines they point at) in a UsageError when the source is wrong.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { assemble, assembleFile, defaultCacheDir } from '../../src/testing/assemble.js';
import { haveBinutils } from './helpers.js';

const cacheDir = mkdtempSync(path.join(tmpdir(), 'tskvm-assemble-test-'));
const haveNasm = (() => {
  try {
    execFileSync('nasm', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

// .ci/run installs nasm and sets TSKVM_REQUIRE_NASM=1: there, a missing nasm fails instead of skipping.
if (!haveNasm && process.env.TSKVM_REQUIRE_NASM === '1')
  throw new Error('TSKVM_REQUIRE_NASM=1 but nasm is not installed: apt-get install -y nasm');

const EXIT_42 = 'mov $42, %al\nout %al, $0xf4\n';

async function usageError(promise: Promise<unknown>): Promise<UsageError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UsageError);
  return err as UsageError;
}

describe.skipIf(!haveBinutils())('assemble (GNU as)', () => {
  it('builds a flat binary in 16-bit code (.code16 implied), linked at 0', async () => {
    const bytes = await assemble(`start: ${EXIT_42}jmp start\n`, { cacheDir });
    // mov al, 42 (B0 2A); out 0xF4, al (E6 F4); jmp short back to 0 (EB FA)
    expect([...bytes]).toEqual([0xb0, 0x2a, 0xe6, 0xf4, 0xeb, 0xfa]);
  });

  it('keeps labels at the origin: data addressed from offset 0 unless told otherwise', async () => {
    const at0 = await assemble('mov $msg, %si\nmsg: .ascii "hi"\n', { cacheDir });
    expect([...at0.subarray(0, 3)]).toEqual([0xbe, 0x03, 0x00]); // mov si, 3
    const at100 = await assemble('mov $msg, %si\nmsg: .ascii "hi"\n', { cacheDir, origin: 0x100 });
    expect([...at100.subarray(0, 3)]).toEqual([0xbe, 0x03, 0x01]);
  });

  it('pads and signs a boot sector, linked at 0x7C00', async () => {
    const sector = await assemble('mov $here, %bx\nhere: hlt\n', { format: 'bootsector', cacheDir });
    expect(sector.length).toBe(512);
    expect([sector[510], sector[511]]).toEqual([0x55, 0xaa]);
    expect([...sector.subarray(0, 3)]).toEqual([0xbb, 0x03, 0x7c]); // mov bx, 0x7C03
  });

  it('keeps a boot sector that places its own signature', async () => {
    const sector = await assemble('hlt\n.org 510\n.word 0xaa55\n', { format: 'bootsector', cacheDir });
    expect(sector.length).toBe(512);
    expect(sector[0]).toBe(0xf4);
  });

  it('refuses a boot sector too big for its signature', async () => {
    const err = await usageError(assemble('.fill 511, 1, 0x90\n', { format: 'bootsector', cacheDir }));
    expect(err.code).toBe('EIMAGE');
    expect(err.message).toMatch(/511 bytes, but at most 510 fit before the 0x55 0xAA signature/);
  });

  it('links ELF32 and ELF64 kernels at 1 MiB with their entry symbol', async () => {
    const source32 = '.code32\n.globl _start\nnop\n_start: mov $1, %eax\nout %al, $0xf4\n.data\nvalue: .long 7\n';
    const elf32 = await assemble(source32, { format: 'elf32', cacheDir });
    expect([...elf32.subarray(0, 5)]).toEqual([0x7f, 0x45, 0x4c, 0x46, 1]); // \x7fELF, ELFCLASS32
    expect(elf32.readUInt16LE(18)).toBe(3); // EM_386
    expect(elf32.readUInt32LE(24)).toBe(0x100001); // e_entry: _start, after the nop
    expect(elf32.readUInt16LE(44)).toBe(2); // two program headers: code, data

    const elf64 = await assemble('.globl _start\n_start: mov $64, %eax\nout %eax, $0xf4\n', { format: 'elf64', cacheDir });
    expect(elf64[4]).toBe(2); // ELFCLASS64
    expect(elf64.readUInt16LE(18)).toBe(62); // EM_X86_64
    expect(elf64.readBigUInt64LE(24)).toBe(0x100000n);
  });

  it('puts a .multiboot section first, in the first 8 KiB of the file', async () => {
    const source = ['.section .multiboot', '.long 0x1BADB002, 0, -0x1BADB002', '.text', '.globl _start', '_start: hlt', ''].join('\n');
    const elf = await assemble(source, { format: 'elf32', cacheDir });
    const at = elf.indexOf(Buffer.from([0x02, 0xb0, 0xad, 0x1b]));
    expect(at).toBeGreaterThan(0);
    expect(at).toBeLessThan(8192);
    expect(at % 4).toBe(0);
  });

  it('shows the assembler messages with the source lines they name', async () => {
    const err = await usageError(assemble('nop\nmovx %al, %bl\nnop\n', { cacheDir, name: 'broken.S' }));
    expect(err.code).toBe('EIMAGE');
    expect(err.message).toMatch(/^assemble: as failed on broken\.S \(exit status 1\):/);
    expect(err.message).toMatch(/broken\.S:2: Error: .*movx/);
    expect(err.message).toContain('     2 | movx %al, %bl');
    expect(err.message).not.toContain(cacheDir); // the private work directory is not in the message
  });

  it('says what to install when a tool is missing', async () => {
    const saved = process.env.AS;
    process.env.AS = '/nonexistent/as';
    try {
      const err = await usageError(assemble('nop # missing tool\n', { cacheDir }));
      expect(err.message).toMatch(/cannot run \/nonexistent\/as \(GNU as\).*apt-get install binutils/);
    } finally {
      if (saved === undefined) delete process.env.AS;
      else process.env.AS = saved;
    }
  });

  it('checks its options', async () => {
    await expect(usageError(assemble('   \n', { cacheDir }))).resolves.toMatchObject({ message: /source is empty/ });
    await expect(usageError(assemble('nop', { format: 'pe' as 'flat', cacheDir }))).resolves.toMatchObject({
      message: /options.format 'pe'/,
    });
    await expect(usageError(assemble('nop', { origin: -1, cacheDir }))).resolves.toMatchObject({ message: /options.origin -1/ });
    await expect(usageError(assemble('nop', { name: '../x.S', cacheDir }))).resolves.toMatchObject({ message: /plain file name/ });
  });

  describe('the cache', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tskvm-assemble-cache-'));

    it('builds each distinct input once, and a change of source, format or include file builds anew', async () => {
      const include = path.join(dir, 'inc');
      mkdirSync(include);
      writeFileSync(path.join(include, 'exit.inc'), 'mov $1, %al\nout %al, $0xf4\n');
      const source = '.include "exit.inc"\n';
      const first = await assembleFile(source, { cacheDir: dir, includeDirs: [include] });
      const built = statSync(first).mtimeMs;
      const again = await assembleFile(source, { cacheDir: dir, includeDirs: [include] });
      expect(again).toBe(first);
      expect(statSync(again).mtimeMs).toBe(built);
      // Parallel requests for one guest share one build.
      const same = await Promise.all([1, 2, 3].map(() => assembleFile(`${source}nop\n`, { cacheDir: dir, includeDirs: [include] })));
      expect(new Set(same).size).toBe(1);

      writeFileSync(path.join(include, 'exit.inc'), 'mov $2, %al\nout %al, $0xf4\n');
      const changed = await assembleFile(source, { cacheDir: dir, includeDirs: [include] });
      expect(changed).not.toBe(first);
      expect([...(await assemble(source, { cacheDir: dir, includeDirs: [include] }))]).toEqual([0xb0, 0x02, 0xe6, 0xf4]);
      expect(await assembleFile(source, { cacheDir: dir, includeDirs: [include], format: 'bootsector' })).toMatch(/\.boot\.bin$/);
      // Only finished images are left: no build directories.
      expect(readdirSync(dir).filter((name) => name.startsWith('.build-'))).toEqual([]);
    });

    it('defaults to TSKVM_CACHE_DIR, then node_modules/.cache/tskvm', () => {
      const saved = process.env.TSKVM_CACHE_DIR;
      try {
        process.env.TSKVM_CACHE_DIR = dir;
        expect(defaultCacheDir()).toBe(path.join(dir, 'assemble'));
        delete process.env.TSKVM_CACHE_DIR;
        expect(defaultCacheDir()).toBe(path.join(process.cwd(), 'node_modules', '.cache', 'tskvm', 'assemble'));
      } finally {
        if (saved !== undefined) process.env.TSKVM_CACHE_DIR = saved;
      }
    });
  });

  it('links extra object files', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tskvm-assemble-obj-'));
    const object = path.join(dir, 'exit.o');
    const part = path.join(dir, 'exit.S');
    writeFileSync(part, '.code32\n.globl do_exit\ndo_exit: out %al, $0xf4\nret\n');
    execFileSync('as', ['--32', '-o', object, part]);
    const elf = await assemble('.code32\n.globl _start\n_start: mov $5, %al\ncall do_exit\n', {
      format: 'elf32',
      objects: [object],
      cacheDir,
    });
    expect(elf.includes(Buffer.from([0xe6, 0xf4, 0xc3]))).toBe(true); // do_exit's code is in the image
  });
});

afterEach(() => {
  expect(readdirSync(cacheDir).filter((name) => name.startsWith('.build-'))).toEqual([]);
});

describe.skipIf(!haveNasm)('assemble (NASM)', () => {
  it('builds a flat binary and a boot sector (the source sets org and bits)', async () => {
    const flat = await assemble('bits 16\nmov al, 42\nout 0xf4, al\n', { syntax: 'nasm', cacheDir });
    expect([...flat]).toEqual([0xb0, 0x2a, 0xe6, 0xf4]);
    const sector = await assemble('org 0x7c00\nbits 16\nmov bx, here\nhere: hlt\n', { syntax: 'nasm', format: 'bootsector', cacheDir });
    expect(sector.length).toBe(512);
    expect([...sector.subarray(0, 3), sector[510], sector[511]]).toEqual([0xbb, 0x03, 0x7c, 0x55, 0xaa]);
  });

  it('links an ELF64 and reports errors with the line', async () => {
    const elf = await assemble('global _start\nsection .text\nbits 64\n_start: mov eax, 64\nout 0xf4, eax\n', {
      syntax: 'nasm',
      format: 'elf64',
      cacheDir,
    });
    expect(elf[4]).toBe(2);
    const err = await usageError(assemble('bits 16\nmov al,\n', { syntax: 'nasm', cacheDir }));
    expect(err.message).toMatch(/nasm failed on guest\.asm/);
    expect(err.message).toMatch(/guest\.asm:2: error/);
    expect(err.message).toContain('     2 | mov al,');
  });
});
