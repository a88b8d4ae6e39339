import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { elfBootState, isElf, loadElf, parseElf } from '../../src/loader/elf.js';
import { loaderError, haveBinutils } from './helpers.js';

const MiB = 2 ** 20;
const PT_LOAD = 1;
const PT_NOTE = 4;

interface SegmentSpec {
  type?: number;
  paddr: number | bigint;
  vaddr?: number | bigint;
  data: Uint8Array;
  memsz?: number | bigint;
  /** Override p_filesz / p_offset (defaults: data.length, where the builder put the data). */
  filesz?: number | bigint;
  offset?: number | bigint;
}

interface ElfSpec {
  class: 32 | 64;
  machine?: number;
  type?: number;
  entry: number | bigint;
  segments: SegmentSpec[];
}

/** Assembles a little-endian ELF executable: header, program headers, then each segment's bytes (16-byte aligned). */
function buildElf(spec: ElfSpec): Uint8Array {
  const is64 = spec.class === 64;
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  let cursor = ehsize + phentsize * spec.segments.length;
  const offsets = spec.segments.map((s) => {
    cursor = Math.ceil(cursor / 16) * 16;
    const at = cursor;
    cursor += s.data.length;
    return at;
  });
  const image = new Uint8Array(cursor);
  const v = new DataView(image.buffer);
  image.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1]);
  v.setUint16(16, spec.type ?? 2, true);
  v.setUint16(18, spec.machine ?? (is64 ? 62 : 3), true);
  v.setUint32(20, 1, true);
  const addr = (at: number, value: number | bigint): void => {
    if (is64) v.setBigUint64(at, BigInt(value), true);
    else v.setUint32(at, Number(value), true);
  };
  addr(24, spec.entry);
  addr(is64 ? 32 : 28, ehsize); // e_phoff
  v.setUint16(is64 ? 52 : 40, ehsize, true);
  v.setUint16(is64 ? 54 : 42, phentsize, true);
  v.setUint16(is64 ? 56 : 44, spec.segments.length, true);
  spec.segments.forEach((s, i) => {
    const ph = ehsize + i * phentsize;
    v.setUint32(ph, s.type ?? PT_LOAD, true);
    const offset = s.offset ?? offsets[i]!;
    const filesz = s.filesz ?? s.data.length;
    const memsz = s.memsz ?? s.data.length;
    if (is64) {
      v.setUint32(ph + 4, 7, true); // p_flags RWX
      v.setBigUint64(ph + 8, BigInt(offset), true);
      v.setBigUint64(ph + 16, BigInt(s.vaddr ?? s.paddr), true);
      v.setBigUint64(ph + 24, BigInt(s.paddr), true);
      v.setBigUint64(ph + 32, BigInt(filesz), true);
      v.setBigUint64(ph + 40, BigInt(memsz), true);
      v.setBigUint64(ph + 48, 16n, true);
    } else {
      v.setUint32(ph + 4, Number(offset), true);
      v.setUint32(ph + 8, Number(s.vaddr ?? s.paddr), true);
      v.setUint32(ph + 12, Number(s.paddr), true);
      v.setUint32(ph + 16, Number(filesz), true);
      v.setUint32(ph + 20, Number(memsz), true);
      v.setUint32(ph + 24, 7, true);
      v.setUint32(ph + 28, 16, true);
    }
    image.set(s.data, offsets[i]!);
  });
  return image;
}

function pattern(length: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 13 + seed) & 0xff || 1;
  return bytes;
}

/** Guest memory pre-filled with 0xAA so zeroed bss and untouched bytes both show. */
function dirtyMemory(size = 4 * MiB): Uint8Array {
  return new Uint8Array(size).fill(0xaa);
}

const text = pattern(0x40, 3);
const data = pattern(0x30, 7);

function twoSegmentElf(cls: 32 | 64): Uint8Array {
  return buildElf({
    class: cls,
    entry: 0x100010,
    segments: [
      { paddr: 0x100000, vaddr: 0xc0100000, data: text },
      { type: PT_NOTE, paddr: 0, data: new Uint8Array(8) },
      { paddr: 0x102000, data, memsz: 0x1000 },
    ],
  });
}

describe('isElf', () => {
  it('recognises the \\x7FELF magic', () => {
    expect(isElf(twoSegmentElf(32))).toBe(true);
    expect(isElf(new Uint8Array([0x7f, 0x45, 0x4c]))).toBe(false);
    expect(isElf(new Uint8Array([0x7f, 0x45, 0x4c, 0x47]))).toBe(false);
  });
});

describe.each([32, 64] as const)('loadElf: ELF%i', (cls) => {
  it('loads PT_LOAD segments at p_paddr, zeroes their bss and ignores other segments', () => {
    const memory = dirtyMemory();
    const elf = loadElf(twoSegmentElf(cls), memory, 'k.elf');
    expect(elf.class).toBe(cls);
    expect(elf.entry).toBe(0x100010);
    expect(elf.segments.map(({ paddr, filesz, memsz }) => ({ paddr, filesz, memsz }))).toEqual([
      { paddr: 0x100000, filesz: 0x40, memsz: 0x40 },
      { paddr: 0x102000, filesz: 0x30, memsz: 0x1000 },
    ]);
    expect(elf.lowest).toBe(0x100000);
    expect(elf.highest).toBe(0x103000);
    expect(memory.subarray(0x100000, 0x100040)).toEqual(text);
    expect(memory[0x100040]).toBe(0xaa); // between segments: untouched
    expect(memory.subarray(0x102000, 0x102030)).toEqual(data);
    expect(memory.subarray(0x102030, 0x103000).every((b) => b === 0)).toBe(true);
    expect(memory[0x103000]).toBe(0xaa);
    expect(memory[0]).toBe(0xaa); // the PT_NOTE was not loaded
  });

  it('ignores empty PT_LOAD segments', () => {
    const image = buildElf({
      class: cls,
      entry: 0x100000,
      segments: [
        { paddr: 0x100000, data: text },
        { paddr: 0x7fff0000, data: new Uint8Array(0) },
      ],
    });
    expect(loadElf(image, dirtyMemory(), 'k').segments).toHaveLength(1);
  });
});

describe('elfBootState', () => {
  it('starts an ELF32 in protected mode and an ELF64 in long mode at e_entry', () => {
    const memory = dirtyMemory();
    expect(elfBootState(loadElf(twoSegmentElf(32), memory, 'k'))).toEqual({ mode: 'protected', rip: 0x100010, regs: {} });
    expect(elfBootState(loadElf(twoSegmentElf(64), memory, 'k'))).toEqual({ mode: 'long', rip: 0x100010n, regs: {} });
  });

  it('starts an ELF32 in long mode when asked', () => {
    expect(elfBootState(loadElf(twoSegmentElf(32), dirtyMemory(), 'k'), { longMode: true })).toEqual({
      mode: 'long',
      rip: 0x100010n,
      regs: {},
    });
  });
});

describe('loadElf: bad images', () => {
  const good32 = (): Uint8Array => twoSegmentElf(32);
  const patched = (image: Uint8Array, at: number, bytes: number[]): Uint8Array => {
    const copy = image.slice();
    copy.set(bytes, at);
    return copy;
  };
  const u16 = (n: number): number[] => [n & 0xff, n >> 8];

  it.each([
    ['no magic', patched(good32(), 0, [0x7f, 0x45, 0x4c, 0x47]), /kernel 'k.elf' is not an ELF file/],
    ['class 0', patched(good32(), 4, [0]), /invalid ELF class 0/],
    ['class 3', patched(good32(), 4, [3]), /invalid ELF class 3/],
    ['big-endian', patched(good32(), 5, [2]), /big-endian/],
    ['data 0', patched(good32(), 5, [0]), /invalid ELF data encoding 0/],
    ['e_ident version', patched(good32(), 6, [0]), /ELF version 0 in e_ident/],
    ['e_version', patched(good32(), 20, [2, 0, 0, 0]), /ELF version 2 in e_version/],
    ['ARM', patched(good32(), 18, u16(40)), /is an ELF for machine 40 \(ARM\), not x86/],
    ['unknown machine', patched(good32(), 18, u16(999)), /machine 999 \(unknown\), not x86/],
    ['ELF32 for x86-64', patched(good32(), 18, u16(62)), /ELF32 for machine 62 \(x86-64\): tskvm loads ELF32 images for EM_386/],
    ['ELF64 for i386', patched(twoSegmentElf(64), 18, u16(3)), /ELF64 for machine 3 \(x86\)/],
    ['ET_DYN', patched(good32(), 16, u16(3)), /type 3 \(ET_DYN, a shared object or PIE.*not an executable \(ET_EXEC\)/],
    ['ET_REL', patched(good32(), 16, u16(1)), /type 1 \(ET_REL/],
    ['phentsize', patched(good32(), 42, u16(40)), /40-byte program headers \(e_phentsize\), but ELF32 program headers are 32 bytes/],
    ['phentsize 64', patched(twoSegmentElf(64), 54, u16(32)), /ELF64 program headers are 56 bytes/],
    ['phnum 0', patched(good32(), 44, u16(0)), /has no program headers/],
    ['PN_XNUM', patched(good32(), 44, u16(0xffff)), /extended program header numbering/],
  ])('rejects %s', (_, image, message) => {
    expect(loaderError(() => loadElf(image, dirtyMemory(), 'k.elf')).message).toMatch(message);
  });

  it('rejects a file shorter than its ELF header', () => {
    expect(loaderError(() => loadElf(good32().subarray(0, 30), dirtyMemory(), 'k.elf')).message).toBe(
      "kernel 'k.elf' is truncated: its ELF32 header ends at byte 52 of a 30-byte file",
    );
    expect(loaderError(() => loadElf(twoSegmentElf(64).subarray(0, 60), dirtyMemory(), 'k')).message).toMatch(
      /ELF64 header ends at byte 64 of a 60-byte file/,
    );
    expect(loaderError(() => loadElf(good32().subarray(0, 10), dirtyMemory(), 'k')).message).toMatch(/truncated/);
  });

  it('rejects a program header table that runs past the end of the file', () => {
    // Three 32-byte program headers at 52..148: cut the file inside the third.
    const cut = good32().slice(0, 140);
    expect(loaderError(() => loadElf(cut, dirtyMemory(), 'k.elf')).message).toBe(
      "kernel 'k.elf' is truncated: program header 2 ends at byte 148 of a 140-byte file",
    );
    const farOff = patched(good32(), 28, [0x00, 0x10, 0, 0]); // e_phoff = 4096
    expect(loaderError(() => loadElf(farOff, dirtyMemory(), 'k.elf')).message).toBe(
      `kernel 'k.elf' is truncated: program header 0 ends at byte ${4096 + 32} of a ${farOff.length}-byte file`,
    );
  });

  it.each([32, 64] as const)('ELF%i: rejects a segment whose file bytes run past the end of the file', (cls) => {
    const image = buildElf({
      class: cls,
      entry: 0x100000,
      segments: [
        { paddr: 0x100000, data: text },
        { paddr: 0x200000, data, filesz: 0x1000 },
      ],
    });
    expect(loaderError(() => loadElf(image, dirtyMemory(), 'k.elf')).message).toMatch(
      new RegExp(`^kernel 'k.elf' is truncated: segment 1 \\(file bytes \\d+-\\d+\\) ends at byte \\d+ of a ${image.length}-byte file$`),
    );
  });

  it('rejects p_filesz > p_memsz', () => {
    const image = buildElf({ class: 32, entry: 0x100000, segments: [{ paddr: 0x100000, data: text, memsz: 0x10 }] });
    expect(loaderError(() => loadElf(image, dirtyMemory(), 'k')).message).toMatch(/segment 0 with p_filesz 64 larger than its p_memsz 16/);
  });

  it.each([32, 64] as const)('ELF%i: rejects a segment outside guest RAM and names --memory', (cls) => {
    const image = buildElf({
      class: cls,
      entry: 0x100000,
      segments: [
        { paddr: 0x100000, data: text },
        { paddr: 0x100000 + 0x1000, data, memsz: 0x7f000 },
      ],
    });
    const memory = dirtyMemory(MiB + 0x40000);
    expect(loaderError(() => loadElf(image, memory, 'k.elf')).message).toBe(
      `kernel 'k.elf': segment 1 (0x101000-0x180000) lies outside guest RAM (${MiB + 0x40000} bytes): raise options.memory to at least 2M`,
    );
    expect(memory.every((b) => b === 0xaa)).toBe(true); // segment 0 was valid but nothing was written
  });

  it('rejects a segment that wraps around the 32-bit address space', () => {
    const image = buildElf({ class: 32, entry: 0x100000, segments: [{ paddr: 0xfffff000, data: text, memsz: 0x2000 }] });
    expect(loaderError(() => loadElf(image, dirtyMemory(), 'k')).message).toMatch(
      /segment 0 \(0xfffff000 \+ 0x2000 bytes\) wrapping around the end of the 32-bit address space/,
    );
  });

  it('rejects a segment that wraps around the 64-bit address space', () => {
    const image = buildElf({ class: 64, entry: 0x100000, segments: [{ paddr: 2n ** 64n - 0x1000n, data: text, memsz: 0x2000 }] });
    expect(loaderError(() => loadElf(image, dirtyMemory(), 'k')).message).toMatch(/wrapping around the end of the 64-bit address space/);
  });

  it('rejects a 64-bit segment far above RAM without losing precision', () => {
    const image = buildElf({ class: 64, entry: 0x100000, segments: [{ paddr: 2n ** 60n, data: text }] });
    expect(loaderError(() => loadElf(image, dirtyMemory(), 'k')).message).toMatch(
      /segment 0 \(0x1000000000000000-0x1000000000000040\) lies outside guest RAM/,
    );
  });

  it('rejects overlapping segments', () => {
    const image = buildElf({
      class: 32,
      entry: 0x100000,
      segments: [
        { paddr: 0x100000, data: text, memsz: 0x2000 },
        { paddr: 0x101000, data },
      ],
    });
    expect(loaderError(() => loadElf(image, dirtyMemory(), 'k')).message).toMatch(
      /overlapping segments 0 \(0x100000-0x102000\) and 1 \(0x101000-0x101030\)/,
    );
  });

  it('rejects an image with no non-empty PT_LOAD', () => {
    const image = buildElf({ class: 32, entry: 0x100000, segments: [{ type: PT_NOTE, paddr: 0, data: text }] });
    expect(loaderError(() => loadElf(image, dirtyMemory(), 'k')).message).toMatch(/no non-empty PT_LOAD segment/);
  });

  it('rejects an ELF64 entry point above the identity-mapped 4 GiB', () => {
    const image = buildElf({ class: 64, entry: 0xffffffff80100000n, segments: [{ paddr: 0x100000, data: text }] });
    expect(loaderError(() => loadElf(image, dirtyMemory(), 'k')).message).toMatch(/entry point at 0xffffffff80100000, above 4 GiB/);
  });

  it('parseElf validates without writing', () => {
    const memory = dirtyMemory();
    const elf = parseElf(twoSegmentElf(64), memory.length, 'k');
    expect(elf.highest).toBe(0x103000);
    expect(memory.every((b) => b === 0xaa)).toBe(true);
  });
});

describe.skipIf(!haveBinutils())('loadElf: images built by GNU as and ld', () => {
  const source = [
    '.globl _start',
    '_start:',
    '  mov $0x2a, %eax',
    '  hlt',
    '.data',
    'msg: .ascii "hi"',
    '.bss',
    'buf: .space 4096',
    '',
  ].join('\n');

  it.each([
    [32, '--32', 'elf_i386'],
    [64, '--64', 'elf_x86_64'],
  ] as const)('loads an ELF%i from as %s / ld -m %s', (cls, asFlag, emulation) => {
    const dir = mkdtempSync(join(tmpdir(), 'tskvm-elf-'));
    try {
      writeFileSync(join(dir, 'k.s'), (cls === 32 ? '.code32\n' : '') + source);
      execFileSync('as', [asFlag, '-o', join(dir, 'k.o'), join(dir, 'k.s')]);
      execFileSync('ld', ['-m', emulation, '-Ttext', '0x100000', '-o', join(dir, 'k.elf'), join(dir, 'k.o')]);
      const image = new Uint8Array(readFileSync(join(dir, 'k.elf')));
      const memory = dirtyMemory();
      const elf = loadElf(image, memory, 'k.elf');
      expect(elf.class).toBe(cls);
      expect(elf.entry).toBe(0x100000);
      // mov $0x2a, %eax; hlt
      expect([...memory.subarray(0x100000, 0x100006)]).toEqual([0xb8, 0x2a, 0, 0, 0, 0xf4]);
      const dataSegment = elf.segments.find((s) => s.memsz > s.filesz);
      expect(dataSegment).toBeDefined();
      const d = dataSegment!;
      expect(String.fromCharCode(...memory.subarray(d.paddr, d.paddr + 2))).toBe('hi');
      expect(memory.subarray(d.paddr + d.filesz, d.paddr + d.memsz).every((b) => b === 0)).toBe(true);
      expect(elf.highest).toBe(d.paddr + d.memsz);
      expect(elfBootState(elf).mode).toBe(cls === 64 ? 'long' : 'protected');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
