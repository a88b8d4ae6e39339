import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pcE820Map } from '../../src/arch/x86/e820.js';
import { findMultibootHeader, loadMultiboot, type MultibootModule } from '../../src/loader/multiboot.js';
import { DEFAULT_BOOT_GDT_ADDRESS } from '../../src/arch/x86/pc-layout.js';
import { loaderError, haveBinutils } from './helpers.js';

const MiB = 2 ** 20;
const MAGIC = 0x1badb002;
const AOUT = 1 << 16;
const PAGE_ALIGN = 1 << 0;
const MEMORY_INFO = 1 << 1;
const VIDEO_MODE = 1 << 2;
const MEMORY = 16 * MiB;

interface Aout {
  headerAddr: number;
  loadAddr: number;
  loadEndAddr: number;
  bssEndAddr: number;
  entryAddr: number;
}

/** A multiboot header: magic, flags, checksum (computed unless given), then the a.out fields if any. */
function mbHeader(flags: number, aout?: Aout, checksum?: number): Uint8Array {
  const bytes = new Uint8Array(aout ? 32 : 12);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, MAGIC, true);
  v.setUint32(4, flags >>> 0, true);
  v.setUint32(8, checksum ?? (2 ** 32 - ((MAGIC + (flags >>> 0)) % 2 ** 32)) % 2 ** 32, true);
  if (aout) {
    v.setUint32(12, aout.headerAddr, true);
    v.setUint32(16, aout.loadAddr, true);
    v.setUint32(20, aout.loadEndAddr, true);
    v.setUint32(24, aout.bssEndAddr, true);
    v.setUint32(28, aout.entryAddr, true);
  }
  return bytes;
}

function imageWith(length: number, at: number, header: Uint8Array): Uint8Array {
  const image = new Uint8Array(length);
  for (let i = 0; i < length; i++) image[i] = (i * 13 + 1) & 0xff;
  image.set(header, at);
  return image;
}

/** An ELF32 (EM_386, or `machine`/`cls` if given) with one PT_LOAD of `text` at `paddr`. */
function elfKernel(text: Uint8Array, paddr: number, entry: number, bss = 0, cls: 32 | 64 = 32, machine = 3): Uint8Array {
  const is64 = cls === 64;
  const ehsize = is64 ? 64 : 52;
  const phsize = is64 ? 56 : 32;
  const offset = 0x100;
  const image = new Uint8Array(offset + text.length);
  const v = new DataView(image.buffer);
  image.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1]);
  v.setUint16(16, 2, true); // ET_EXEC
  v.setUint16(18, machine, true);
  v.setUint32(20, 1, true);
  if (is64) {
    v.setBigUint64(24, BigInt(entry), true);
    v.setBigUint64(32, BigInt(ehsize), true);
    v.setUint16(54, phsize, true);
    v.setUint16(56, 1, true);
    v.setUint32(ehsize, 1, true);
    v.setBigUint64(ehsize + 8, BigInt(offset), true);
    v.setBigUint64(ehsize + 24, BigInt(paddr), true);
    v.setBigUint64(ehsize + 32, BigInt(text.length), true);
    v.setBigUint64(ehsize + 40, BigInt(text.length + bss), true);
  } else {
    v.setUint32(24, entry, true);
    v.setUint32(28, ehsize, true);
    v.setUint16(42, phsize, true);
    v.setUint16(44, 1, true);
    v.setUint32(ehsize, 1, true);
    v.setUint32(ehsize + 4, offset, true);
    v.setUint32(ehsize + 12, paddr, true);
    v.setUint32(ehsize + 16, text.length, true);
    v.setUint32(ehsize + 20, text.length + bss, true);
  }
  image.set(text, offset);
  return image;
}

/** Kernel text that starts with a multiboot header (flags 3), then some code bytes. */
function mbText(length = 0x123, flags = PAGE_ALIGN | MEMORY_INFO): Uint8Array {
  const text = imageWith(length, 0, mbHeader(flags));
  return text;
}

const dirtyMemory = (size = MEMORY): Uint8Array => new Uint8Array(size).fill(0xaa);
const u32 = (memory: Uint8Array, at: number): number => new DataView(memory.buffer, memory.byteOffset).getUint32(at, true);
const u64 = (memory: Uint8Array, at: number): bigint => new DataView(memory.buffer, memory.byteOffset).getBigUint64(at, true);
function cString(memory: Uint8Array, at: number): string {
  let end = at;
  while (memory[end] !== 0) end++;
  return new TextDecoder().decode(memory.subarray(at, end));
}

describe('findMultibootHeader', () => {
  it('finds a header at offset 0', () => {
    expect(findMultibootHeader(mbHeader(MEMORY_INFO))).toEqual({ offset: 0, flags: MEMORY_INFO });
  });

  it.each([4, 8, 0x40, 4096, 8176, 8180])('finds a header at 4-byte-aligned offset %i', (offset) => {
    expect(findMultibootHeader(imageWith(10000, offset, mbHeader(PAGE_ALIGN)))?.offset).toBe(offset);
  });

  it.each([8184, 8188, 8192, 8196, 9000])('does not find a header not wholly within the first 8192 bytes (offset %i)', (offset) => {
    expect(findMultibootHeader(imageWith(10000, offset, mbHeader(PAGE_ALIGN)))).toBeUndefined();
  });

  it.each([1, 2, 3, 6, 0x41])('does not find a header at unaligned offset %i', (offset) => {
    expect(findMultibootHeader(imageWith(1000, offset, mbHeader(PAGE_ALIGN)))).toBeUndefined();
  });

  it('returns undefined for images without the magic, including tiny ones', () => {
    expect(findMultibootHeader(imageWith(9000, 0, new Uint8Array(0)))).toBeUndefined();
    expect(findMultibootHeader(new Uint8Array(0))).toBeUndefined();
    expect(findMultibootHeader(mbHeader(0).subarray(0, 8))).toBeUndefined();
  });

  it('rejects a header with a bad checksum', () => {
    const image = imageWith(1000, 0x40, mbHeader(MEMORY_INFO, undefined, 0x12345678));
    expect(loaderError(() => findMultibootHeader(image)).message).toMatch(
      /^multiboot header at offset 0x40 has a bad checksum: .* must be 0: set checksum to 0xE4524FFC$/,
    );
    expect(loaderError(() => findMultibootHeader(image, 'k')).message).toMatch(
      /^kernel 'k': multiboot header at offset 0x40 has a bad checksum/,
    );
  });

  it('skips a bad-checksum magic when a valid header follows (as QEMU and GRUB do)', () => {
    const image = imageWith(1000, 0x40, mbHeader(MEMORY_INFO, undefined, 0));
    image.set(mbHeader(PAGE_ALIGN), 0x80);
    expect(findMultibootHeader(image)).toEqual({ offset: 0x80, flags: PAGE_ALIGN });
  });

  it('reads the a.out-kludge fields', () => {
    const aout = { headerAddr: 0x100010, loadAddr: 0x100000, loadEndAddr: 0x100200, bssEndAddr: 0x101000, entryAddr: 0x100030 };
    expect(findMultibootHeader(imageWith(0x200, 0x10, mbHeader(AOUT, aout)))).toEqual({ offset: 0x10, flags: AOUT, aout });
  });
});

describe('loadMultiboot: a.out kludge', () => {
  const aout = { headerAddr: 0x100010, loadAddr: 0x100000, loadEndAddr: 0x100200, bssEndAddr: 0x102000, entryAddr: 0x100030 };
  const kernel = (): Uint8Array => imageWith(0x300, 0x10, mbHeader(AOUT | PAGE_ALIGN, aout));

  it('loads [load_addr, load_end_addr) from the file, zeroes up to bss_end_addr and enters at entry_addr', () => {
    const image = kernel();
    const memory = dirtyMemory();
    const r = loadMultiboot(image, memory, { name: 'k', e820: pcE820Map(MEMORY) });
    expect(memory.subarray(0x100000, 0x100200)).toEqual(image.subarray(0, 0x200));
    expect(memory.subarray(0x100200, 0x102000).every((b) => b === 0)).toBe(true);
    expect(u32(memory, 0x102000)).toBe((1 << 0) | (1 << 2) | (1 << 3) | (1 << 6) | (1 << 9)); // the boot information's flags
    expect(r.kernelStart).toBe(0x100000);
    expect(r.kernelEnd).toBe(0x102000);
    expect(r.entry).toBe(0x100030);
    // The boot information goes after the kernel (bss included), page-aligned, as QEMU puts it.
    expect(r.infoAddress).toBe(0x102000);
    expect(r.bootState).toEqual({ mode: 'protected', rip: 0x100030, regs: { rax: 0x2badb002, rbx: 0x102000 } });
    expect(r.bootTables).toEqual({ gdtAddress: DEFAULT_BOOT_GDT_ADDRESS });
    expect(r.notes).toEqual([]);
  });

  it('computes the text offset as header offset - (header_addr - load_addr)', () => {
    // Header at file offset 0x40 but 0x10 past load_addr: the text starts at file offset 0x30.
    const a = { ...aout, headerAddr: 0x100010, loadEndAddr: 0, bssEndAddr: 0 };
    const image = imageWith(0x300, 0x40, mbHeader(AOUT, a));
    const memory = dirtyMemory();
    const r = loadMultiboot(image, memory, { name: 'k', e820: pcE820Map(MEMORY) });
    // load_end_addr 0: to the end of the file; bss_end_addr 0: no bss.
    expect(memory.subarray(0x100000, 0x100000 + 0x300 - 0x30)).toEqual(image.subarray(0x30));
    expect(r.kernelEnd).toBe(0x100000 + 0x300 - 0x30);
    expect(memory[r.kernelEnd]).toBe(0xaa);
  });

  it.each([
    ['header_addr below load_addr', { headerAddr: 0xfffff }, /header_addr 0xFFFFF below load_addr 0x100000/],
    ['text before the file', { headerAddr: 0x100020 }, /more than the header's offset in the file \(16\)/],
    ['load_end_addr below load_addr', { loadEndAddr: 0xff000 }, /load_end_addr 0xFF000 below load_addr 0x100000/],
    [
      'bss_end_addr below load_end_addr',
      { bssEndAddr: 0x100100 },
      /bss_end_addr 0x100100 below the end of the loaded text and data \(0x100200\)/,
    ],
    [
      '32-bit overflow',
      { headerAddr: 0xfffffff0, loadAddr: 0xffffffe0, loadEndAddr: 0, bssEndAddr: 0 },
      /past the end of the 32-bit address space/,
    ],
    [
      'outside RAM',
      { bssEndAddr: 0x2000000 },
      /kernel 'k' \(0x100000-0x2000000\) lies outside guest RAM \(16777216 bytes\): raise options.memory to at least 32M/,
    ],
  ])('rejects %s', (_, change, message) => {
    const image = imageWith(0x300, 0x10, mbHeader(AOUT, { ...aout, ...change }));
    const memory = dirtyMemory();
    expect(loaderError(() => loadMultiboot(image, memory, { name: 'k', e820: pcE820Map(MEMORY) })).message).toMatch(message);
    expect(memory.every((b) => b === 0xaa)).toBe(true);
  });

  it('rejects a load_end_addr past the end of the file', () => {
    const image = imageWith(0x100, 0x10, mbHeader(AOUT, aout));
    expect(loaderError(() => loadMultiboot(image, dirtyMemory(), { name: 'k', e820: pcE820Map(MEMORY) })).message).toBe(
      "kernel 'k' is truncated: its multiboot header asks for 512 bytes from file offset 0, which end at byte 512 of a 256-byte file",
    );
  });

  it('rejects the a.out flag when the address fields are cut off', () => {
    const image = mbHeader(AOUT, aout).subarray(0, 20);
    expect(loaderError(() => loadMultiboot(image, dirtyMemory(), { name: 'k', e820: pcE820Map(MEMORY) })).message).toMatch(
      /a\.out kludge \(flag bit 16\), but its address fields/,
    );
  });

  it('loads a kernel linked low (0x8000, as kvm-unit-tests realmode.flat) with its boot data out of its way', () => {
    const low = { headerAddr: 0x8000, loadAddr: 0x8000, loadEndAddr: 0x8020, bssEndAddr: 0xda30, entryAddr: 0x8018 };
    const image = imageWith(0x20, 0, mbHeader(AOUT, low));
    const memory = dirtyMemory();
    const r = loadMultiboot(image, memory, { name: 'k', cmdline: 'x', e820: pcE820Map(MEMORY) });
    expect(memory.subarray(0x8000, 0x8020)).toEqual(image);
    expect(memory.subarray(0x8020, 0xda30).every((b) => b === 0)).toBe(true);
    expect(r.infoAddress).toBe(0xe000);
    expect(r.infoEnd).toBeLessThanOrEqual(0x9fc00);
    expect(r.bootTables.gdtAddress).toBe(DEFAULT_BOOT_GDT_ADDRESS);
    expect(cString(memory, u32(memory, r.infoAddress + 16))).toBe('k x');
  });

  it('keeps the boot GDT out of a kernel that covers the option-ROM area', () => {
    const wide = { headerAddr: 0x10000, loadAddr: 0x10000, loadEndAddr: 0x10020, bssEndAddr: 0xf0000, entryAddr: 0x10000 };
    const memory = dirtyMemory();
    const r = loadMultiboot(imageWith(0x20, 0, mbHeader(AOUT, wide)), memory, { name: 'k', e820: pcE820Map(MEMORY) });
    // Option-ROM area taken: the GDT goes to the lowest free conventional memory, after the BDA.
    expect(r.bootTables.gdtAddress).toBe(0x500);
    // Right after the kernel lies the BIOS area: the boot information goes past it, at 1 MiB.
    expect(r.infoAddress).toBe(0x100000);
  });

  it('refuses a kernel that leaves no room for its boot information', () => {
    const all = { headerAddr: 0x500, loadAddr: 0x500, loadEndAddr: 0x520, bssEndAddr: MEMORY, entryAddr: 0x500 };
    expect(
      loaderError(() => loadMultiboot(imageWith(0x20, 0, mbHeader(AOUT, all)), dirtyMemory(), { name: 'k', e820: pcE820Map(MEMORY) }))
        .message,
    ).toMatch(
      /there is no room in guest RAM \(16777216 bytes\) for the multiboot information .*; raise options.memory or link the kernel elsewhere/,
    );
  });
});

describe('loadMultiboot: header flags', () => {
  const aout = { headerAddr: 0x100000, loadAddr: 0x100000, loadEndAddr: 0, bssEndAddr: 0, entryAddr: 0x100000 };
  const load = (flags: number): ReturnType<typeof loadMultiboot> =>
    loadMultiboot(imageWith(0x100, 0, mbHeader(flags | AOUT, aout)), dirtyMemory(), { name: 'k', e820: pcE820Map(MEMORY) });

  it.each([
    [
      1 << 3,
      /requires features tskvm does not provide \(flag bit 3\); the multiboot specification says the boot loader must then refuse the kernel/,
    ],
    [(1 << 5) | (1 << 15), /\(flag bits 5, 15\)/],
  ])('rejects unknown required flags %#x', (flags, message) => {
    expect(loaderError(() => load(flags)).message).toMatch(message);
  });

  it('accepts unknown optional flags (bits 17-31)', () => {
    expect(load((1 << 17) | (1 << 31)).entry).toBe(0x100000);
  });

  it('ignores the video-mode request with a note', () => {
    expect(load(VIDEO_MODE).notes).toEqual([expect.stringMatching(/asks for a video mode \(multiboot flag bit 2\)/)]);
  });

  it('rejects an image without a header', () => {
    expect(loaderError(() => loadMultiboot(new Uint8Array(100), dirtyMemory(), { name: 'k', e820: [] })).message).toMatch(
      /kernel 'k' has no multiboot header/,
    );
  });
});

describe('loadMultiboot: ELF kernels', () => {
  it('loads an ELF32 and enters at e_entry', () => {
    const text = mbText(0x123);
    const memory = dirtyMemory();
    const r = loadMultiboot(elfKernel(text, 0x100000, 0x10000c, 0x1000), memory, { name: 'k.elf', e820: pcE820Map(MEMORY) });
    expect(memory.subarray(0x100000, 0x100123)).toEqual(text);
    expect(memory.subarray(0x100123, 0x101123).every((b) => b === 0)).toBe(true);
    expect(r.kernelEnd).toBe(0x101123);
    expect(r.bootState).toEqual({ mode: 'protected', rip: 0x10000c, regs: { rax: 0x2badb002, rbx: 0x102000 } });
  });

  it('rejects an ELF64 (as QEMU does)', () => {
    expect(
      loaderError(() => loadMultiboot(elfKernel(mbText(), 0x100000, 0x100000, 0, 64, 62), dirtyMemory(), { name: 'k', e820: [] })).message,
    ).toMatch(/kernel 'k' is a 64-bit ELF with a multiboot header, but multiboot v1 starts kernels in 32-bit mode/);
    expect(
      loaderError(() => loadMultiboot(elfKernel(mbText(), 0x100000, 0x100000, 0, 32, 62), dirtyMemory(), { name: 'k', e820: [] })).message,
    ).toMatch(/64-bit ELF/);
  });

  it('rejects a non-ELF without the a.out kludge', () => {
    expect(loaderError(() => loadMultiboot(mbText(), dirtyMemory(), { name: 'k', e820: [] })).message).toMatch(
      /without the a\.out kludge \(flag bit 16\), so it must be an ELF/,
    );
  });

  it("reports the ELF loader's errors", () => {
    expect(
      loaderError(() => loadMultiboot(elfKernel(mbText(), 0x100000, 0x100000, 32 * MiB), dirtyMemory(), { name: 'k', e820: [] })).message,
    ).toMatch(/lies outside guest RAM/);
  });
});

describe('loadMultiboot: boot information', () => {
  const modules: MultibootModule[] = [
    { name: 'm1', bytes: new Uint8Array(5000).fill(0x11), cmdline: 'args for m1' },
    { name: 'dir/m2', bytes: new Uint8Array(3).fill(0x22) },
  ];
  const load = (memory = dirtyMemory()): { r: ReturnType<typeof loadMultiboot>; memory: Uint8Array } => {
    // Kernel [0x100000, 0x100123): modules at 0x101000 and, 5000 bytes later, page-aligned 0x103000.
    const r = loadMultiboot(elfKernel(mbText(0x123), 0x100000, 0x10000c), memory, {
      name: 'k.elf',
      cmdline: 'console=ttyS0 quiet',
      modules,
      e820: pcE820Map(MEMORY),
    });
    return { r, memory };
  };

  it('places modules page-aligned after the kernel', () => {
    const { r, memory } = load();
    expect(r.modules).toEqual([
      { start: 0x101000, end: 0x101000 + 5000 },
      { start: 0x103000, end: 0x103003 },
    ]);
    expect(memory.subarray(0x101000, 0x101000 + 5000).every((b) => b === 0x11)).toBe(true);
    expect([...memory.subarray(0x103000, 0x103004)]).toEqual([0x22, 0x22, 0x22, 0xaa]);
  });

  it('writes flags, mem_lower/mem_upper, cmdline, modules, mmap and the boot loader name', () => {
    const { r, memory } = load();
    const mbi = r.infoAddress;
    // After the last module (0x103000-0x103003), page-aligned.
    expect(mbi).toBe(0x104000);
    // MEM (0) | CMDLINE (2) | MODS (3) | MMAP (6) | BOOT_LOADER_NAME (9); no BOOT_DEVICE (1).
    expect(u32(memory, mbi + 0)).toBe((1 << 0) | (1 << 2) | (1 << 3) | (1 << 6) | (1 << 9));
    expect(u32(memory, mbi + 4)).toBe(639);
    expect(u32(memory, mbi + 8)).toBe((MEMORY - MiB) / 1024);
    expect(u32(memory, mbi + 12)).toBe(0); // boot_device
    expect(cString(memory, u32(memory, mbi + 16))).toBe('k.elf console=ttyS0 quiet');
    expect(u32(memory, mbi + 20)).toBe(2);
    const mods = u32(memory, mbi + 24);
    expect([u32(memory, mods), u32(memory, mods + 4), u32(memory, mods + 12)]).toEqual([0x101000, 0x101000 + 5000, 0]);
    expect(cString(memory, u32(memory, mods + 8))).toBe('m1 args for m1');
    expect([u32(memory, mods + 16), u32(memory, mods + 20), u32(memory, mods + 28)]).toEqual([0x103000, 0x103003, 0]);
    expect(cString(memory, u32(memory, mods + 24))).toBe('dir/m2');
    expect(memory.subarray(mbi + 28, mbi + 44).every((b) => b === 0)).toBe(true); // syms
    expect(cString(memory, u32(memory, mbi + 64))).toBe('tskvm');
    // The memory map, module list and strings all follow the info structure inside its block.
    for (const field of [16, 24, 48, 64]) {
      const at = u32(memory, mbi + field);
      expect(at).toBeGreaterThanOrEqual(mbi + 88);
      expect(at).toBeLessThan(r.infoEnd);
    }
  });

  it('writes the memory map byte for byte: size 20, base u64, length u64, type u32', () => {
    const { r, memory } = load();
    const mmapLength = u32(memory, r.infoAddress + 44);
    const mmapAddr = u32(memory, r.infoAddress + 48);
    expect(mmapLength).toBe(4 * 24);
    const expected = new Uint8Array(4 * 24);
    const v = new DataView(expected.buffer);
    [
      [0n, 0x9fc00n, 1],
      [0x9fc00n, 0x400n, 2],
      [0xf0000n, 0x10000n, 2],
      [0x100000n, BigInt(MEMORY - MiB), 1],
    ].forEach(([base, length, type], i) => {
      v.setUint32(i * 24, 20, true);
      v.setBigUint64(i * 24 + 4, base as bigint, true);
      v.setBigUint64(i * 24 + 12, length as bigint, true);
      v.setUint32(i * 24 + 20, type as number, true);
    });
    expect(memory.subarray(mmapAddr, mmapAddr + mmapLength)).toEqual(expected);
    expect(u64(memory, mmapAddr + 3 * 24 + 12)).toBe(BigInt(MEMORY - MiB));
  });

  it("forms the command line as QEMU does, '<kernel> <append>', even with nothing appended", () => {
    const memory = dirtyMemory();
    const r = loadMultiboot(elfKernel(mbText(), 0x100000, 0x100000), memory, {
      name: '/boot/k.elf',
      e820: pcE820Map(MEMORY),
      bootLoaderName: 'qemu',
    });
    expect(cString(memory, u32(memory, r.infoAddress + 16))).toBe('/boot/k.elf ');
    expect(u32(memory, r.infoAddress + 20)).toBe(0);
    expect(cString(memory, u32(memory, r.infoAddress + 64))).toBe('qemu');
  });

  it('derives mem_upper from the RAM contiguous from 1 MiB', () => {
    const memory = dirtyMemory();
    const e820 = [
      { base: 0, length: 0x9fc00, type: 1 },
      { base: MiB, length: MiB, type: 1 },
      { base: 2 * MiB, length: MiB, type: 1 }, // adjoins: still contiguous
      { base: 3 * MiB, length: MiB, type: 2 },
      { base: 4 * MiB, length: MiB, type: 1 }, // after a hole: not counted
    ];
    const r = loadMultiboot(elfKernel(mbText(), 0x100000, 0x100000), memory, { name: 'k', e820 });
    expect(u32(memory, r.infoAddress + 4)).toBe(639);
    expect(u32(memory, r.infoAddress + 8)).toBe(2048);
  });

  it('takes a long command line (the block grows with it) and writes nothing past its end', () => {
    const memory = dirtyMemory();
    const r = loadMultiboot(elfKernel(mbText(), 0x100000, 0x100000), memory, {
      name: 'k',
      cmdline: 'x'.repeat(40000),
      e820: pcE820Map(MEMORY),
    });
    expect(cString(memory, u32(memory, r.infoAddress + 16))).toBe(`k ${'x'.repeat(40000)}`);
    expect(memory.subarray(r.infoEnd, r.infoEnd + 0x1000).every((b) => b === 0xaa)).toBe(true);
  });

  it('rejects a command line that does not fit in RAM and writes nothing', () => {
    const memory = dirtyMemory(2 * MiB);
    expect(
      loaderError(() =>
        loadMultiboot(elfKernel(mbText(), 0x100000, 0x100000), memory, {
          name: 'k',
          cmdline: 'x'.repeat(2 * MiB),
          e820: pcE820Map(2 * MiB),
        }),
      ).message,
    ).toMatch(/no room in guest RAM \(2097152 bytes\) for the multiboot information/);
    expect(memory.every((b) => b === 0xaa)).toBe(true);
  });

  it('rejects modules that do not fit in RAM and writes nothing', () => {
    const memory = dirtyMemory(2 * MiB);
    expect(
      loaderError(() =>
        loadMultiboot(elfKernel(mbText(), 0x100000, 0x100000), memory, {
          name: 'k',
          modules: [{ name: 'big', bytes: new Uint8Array(MiB) }],
          e820: pcE820Map(2 * MiB),
        }),
      ).message,
    ).toBe(`module 'big' (${MiB} bytes at 0x101000) does not fit in guest RAM (${2 * MiB} bytes): raise options.memory to at least 3M`);
    expect(memory.every((b) => b === 0xaa)).toBe(true);
  });
});

describe.skipIf(!haveBinutils())('loadMultiboot: a kernel built by GNU as and ld', () => {
  it('finds the header, loads the ELF32 and enters at _start', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tskvm-mb-'));
    try {
      const source = [
        '.set MAGIC, 0x1BADB002',
        '.set FLAGS, 3',
        '.code32',
        '.text',
        '.align 4',
        '.long MAGIC, FLAGS, -(MAGIC + FLAGS)',
        '.globl _start',
        '_start: hlt',
        '',
      ].join('\n');
      writeFileSync(join(dir, 'k.s'), source);
      execFileSync('as', ['--32', '-o', join(dir, 'k.o'), join(dir, 'k.s')]);
      execFileSync('ld', ['-m', 'elf_i386', '-Ttext', '0x100000', '-o', join(dir, 'k.elf'), join(dir, 'k.o')]);
      const image = new Uint8Array(readFileSync(join(dir, 'k.elf')));
      const memory = dirtyMemory();
      const r = loadMultiboot(image, memory, { name: 'k.elf', cmdline: 'hello', e820: pcE820Map(MEMORY) });
      expect(r.entry).toBe(0x10000c);
      expect(u32(memory, 0x100000)).toBe(MAGIC);
      expect(memory[0x10000c]).toBe(0xf4); // hlt
      expect(cString(memory, u32(memory, r.infoAddress + 16))).toBe('k.elf hello');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
