/**
 * Boot data placement: the boot GDT, the long-mode page tables and the multiboot information go
 * where no kernel segment or module lies, so kernels linked low (kvm-unit-tests' realmode.flat
 * at 0x8000) load; applyBootState writes them where the loader said.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyBootState, DEFAULT_BOOT_TABLES, type BootCpu } from '../../src/arch/x86/boot-cpu.js';
import { pcE820Map } from '../../src/arch/x86/e820.js';
import { DEFAULT_BOOT_GDT_ADDRESS, DEFAULT_PAGE_TABLES_ADDRESS, OPTION_ROM_AREA_END } from '../../src/arch/x86/pc-layout.js';
import { KVM_REGS_FIELDS, type KvmRegs, type KvmSegment, type KvmSregs } from '../../src/kvm/structs.js';
import { loadGuest } from '../../src/loader/guest.js';
import { BootDataAllocator, placeBootTables } from '../../src/loader/placement.js';
import { haveBinutils, loaderError } from './helpers.js';

const MiB = 2 ** 20;
const MEMORY = 16 * MiB;
const FILL = 0xaa;
const dirtyMemory = (size = MEMORY): Uint8Array => new Uint8Array(size).fill(FILL);
const u64 = (m: Uint8Array, at: number): bigint => new DataView(m.buffer).getBigUint64(at, true);
const u32 = (m: Uint8Array, at: number): number => new DataView(m.buffer).getUint32(at, true);

describe('BootDataAllocator', () => {
  it('gives the first aligned free address in the first region with room', () => {
    const a = new BootDataAllocator(MEMORY, [{ start: 0xc0000, end: 0xc1234 }]);
    expect(a.allocate(0x1000, 0x1000, [{ start: 0xc0000, end: 0xf0000 }], 'x')).toBe(0xc2000);
    expect(a.allocate(0x10, 8, [{ start: 0xc0000, end: 0xf0000 }], 'y')).toBe(0xc1238);
    // Reserved by the first two requests: a third one goes after them.
    expect(a.allocate(0x1000, 0x1000, [{ start: 0xc0000, end: 0xf0000 }], 'z')).toBe(0xc3000);
  });

  it('never hands out the IVT, BDA, EBDA, VGA hole or BIOS area', () => {
    const a = new BootDataAllocator(MEMORY, []);
    expect(a.allocate(8, 8, [{ start: 0, end: 0x100000 }], 'x')).toBe(0x500);
    const b = new BootDataAllocator(MEMORY, [{ start: 0x500, end: 0x9fc00 }]);
    // 0x9FC00-0xC0000 and 0xF0000-0x100000 are the PC's: the option-ROM area is next.
    expect(b.allocate(0x1000, 0x1000, [{ start: 0x9f000, end: 0x101000 }], 'x')).toBe(0xc0000);
  });

  it('clips regions to RAM and falls through to the next region', () => {
    const a = new BootDataAllocator(0x80000, []);
    expect(a.tryAllocate(0x1000, 0x1000, [{ start: 0xc0000, end: 0xf0000 }])).toBeUndefined();
    expect(
      a.allocate(
        0x1000,
        0x1000,
        [
          { start: 0xc0000, end: 0xf0000 },
          { start: 0x500, end: 0x9fc00 },
        ],
        'x',
      ),
    ).toBe(0x1000);
  });

  it('names what did not fit and what is in the way', () => {
    const a = new BootDataAllocator(0x10000, [{ start: 0x500, end: 0x10000 }]);
    expect(loaderError(() => a.allocate(0x6000, 0x1000, [{ start: 0, end: 0x10000 }], 'the long-mode page tables')).message).toBe(
      'there is no room in guest RAM (65536 bytes) for the long-mode page tables (24576 bytes): the kernel, its modules and the ' +
        "PC's own areas use 0x0-0x500, 0x500-0x10000, 0x9fc00-0xc0000, 0xf0000-0x100000; raise options.memory or link the kernel elsewhere",
    );
  });

  it('places the tables in the option-ROM area when it is free, elsewhere when a kernel lies there', () => {
    expect(placeBootTables(new BootDataAllocator(MEMORY, []), true)).toEqual(DEFAULT_BOOT_TABLES);
    expect(DEFAULT_BOOT_TABLES).toEqual({ gdtAddress: DEFAULT_BOOT_GDT_ADDRESS, pageTablesAddress: DEFAULT_PAGE_TABLES_ADDRESS });
    const kernel = { start: 0xc0000, end: OPTION_ROM_AREA_END };
    expect(placeBootTables(new BootDataAllocator(MEMORY, [kernel]), true)).toEqual({ gdtAddress: 0x500, pageTablesAddress: 0x1000 });
    expect(placeBootTables(new BootDataAllocator(MEMORY, [kernel]), false)).toEqual({ gdtAddress: 0x500 });
  });
});

/** A BootCpu over plain structs, for applyBootState without KVM. */
class FakeCpu implements BootCpu {
  regs: KvmRegs = Object.fromEntries(KVM_REGS_FIELDS.map((n) => [n, 0n])) as KvmRegs;
  sregs: KvmSregs;
  constructor() {
    const seg = (): KvmSegment => ({
      base: 0n,
      limit: 0xffff,
      selector: 0,
      type: 3,
      present: 1,
      dpl: 0,
      db: 0,
      s: 1,
      l: 0,
      g: 0,
      avl: 0,
      unusable: 0,
    });
    this.sregs = {
      cs: seg(),
      ds: seg(),
      es: seg(),
      fs: seg(),
      gs: seg(),
      ss: seg(),
      tr: seg(),
      ldt: seg(),
      gdt: { base: 0n, limit: 0xffff },
      idt: { base: 0n, limit: 0xffff },
      cr0: 0x60000010n,
      cr2: 0n,
      cr3: 0n,
      cr4: 0n,
      cr8: 0n,
      efer: 0n,
      apicBase: 0xfee00900n,
      interruptBitmap: [0n, 0n, 0n, 0n],
    } as KvmSregs;
  }
  getSregs(): KvmSregs {
    return structuredClone(this.sregs);
  }
  setSregs(sregs: KvmSregs): void {
    this.sregs = structuredClone(sregs);
  }
  setRegs(regs: KvmRegs): void {
    this.regs = { ...regs };
  }
}

describe('applyBootState writes the boot data where it is told', () => {
  it('puts the GDT and page tables at the given addresses and points GDTR and CR3 at them', () => {
    const memory = dirtyMemory();
    const cpu = new FakeCpu();
    applyBootState(cpu, memory, { mode: 'long', rip: 0x8000n, regs: {} }, { gdtAddress: 0x2000, pageTablesAddress: 0x3000 });
    expect(cpu.sregs.gdt).toEqual({ base: 0x2000n, limit: 31 });
    expect(cpu.sregs.cr3).toBe(0x3000n);
    expect(u64(memory, 0x2008)).toBe(0x00cf9b000000ffffn);
    expect(u64(memory, 0x2018)).toBe(0x00af9b000000ffffn);
    // PML4[0] → PDPT at +0x1000; PDPT[0] → the first page directory at +0x2000; PD[1] maps 2 MiB.
    expect(u64(memory, 0x3000)).toBe(0x4000n | 3n);
    expect(u64(memory, 0x4000)).toBe(0x5000n | 3n);
    expect(u64(memory, 0x5008)).toBe(0x200000n | 0x83n);
    // The default addresses are left alone.
    expect(memory.subarray(DEFAULT_BOOT_GDT_ADDRESS, DEFAULT_BOOT_GDT_ADDRESS + 0x7000).every((b) => b === FILL)).toBe(true);
    expect(cpu.regs.rip).toBe(0x8000n);
  });

  it('writes only the GDT for protected mode', () => {
    const memory = dirtyMemory();
    const cpu = new FakeCpu();
    applyBootState(cpu, memory, { mode: 'protected', rip: 0x8018, regs: { rbx: 0xe000 } }, { gdtAddress: 0x600 });
    expect(cpu.sregs.gdt.base).toBe(0x600n);
    expect(cpu.sregs.cs.selector).toBe(0x08);
    expect(u64(memory, 0x608)).toBe(0x00cf9b000000ffffn);
    expect(memory[0x620]).toBe(FILL);
    expect(cpu.regs.rbx).toBe(0xe000n);
  });
});

/** Assembles `source` and links it with `ldArgs` (binutils), returning the ELF's bytes. */
function build(source: string, asArgs: string[], ldArgs: string[]): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'tskvm-place-'));
  try {
    writeFileSync(join(dir, 'k.s'), source);
    execFileSync('as', [...asArgs, '-o', join(dir, 'k.o'), join(dir, 'k.s')]);
    execFileSync('ld', [...ldArgs, '-o', join(dir, 'k.elf'), join(dir, 'k.o')]);
    return new Uint8Array(readFileSync(join(dir, 'k.elf')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.skipIf(!haveBinutils())('kernels linked low, built by GNU as and ld', () => {
  const e820 = pcE820Map(MEMORY);

  it('loads an ELF32 linked at 0x8000 and keeps the boot GDT out of it', () => {
    const image = build(
      '.code32\n.globl _start\n_start: hlt\n.fill 0x3000, 1, 0x90\n',
      ['--32'],
      ['-m', 'elf_i386', '-Ttext', '0x8000', '-N'],
    );
    const memory = dirtyMemory();
    const loaded = loadGuest(image, memory, { format: 'auto', name: 'low.elf', e820 });
    expect(loaded.format).toBe('elf');
    expect(loaded.bootState).toMatchObject({ mode: 'protected', rip: 0x8000 });
    expect(memory[0x8000]).toBe(0xf4);
    expect(loaded.bootTables).toEqual({ gdtAddress: DEFAULT_BOOT_GDT_ADDRESS });
  });

  it('loads an ELF64 linked over the option-ROM area and moves the page tables below it', () => {
    const source = '.code64\n.globl _start\n_start: hlt\n.fill 0x30000, 1, 0x90\n';
    const image = build(source, ['--64'], ['-m', 'elf_x86_64', '-Ttext', '0xc0000', '-N', '-z', 'max-page-size=0x1000']);
    const memory = dirtyMemory();
    const loaded = loadGuest(image, memory, { format: 'elf', name: 'rom.elf', e820 });
    expect(loaded.bootState.mode).toBe('long');
    const tables = loaded.bootTables!;
    expect(tables).toEqual({ gdtAddress: 0x500, pageTablesAddress: 0x1000 });
    const cpu = new FakeCpu();
    applyBootState(cpu, memory, loaded.bootState, tables);
    expect(memory[0xc0000]).toBe(0xf4); // the kernel is intact
    expect(memory.subarray(0xc0001, 0xf0000).every((b) => b === 0x90)).toBe(true);
    expect(cpu.sregs.cr3).toBe(0x1000n);
  });

  it('loads a multiboot kernel linked at 0x8000 (as realmode.flat) with its boot information after it', () => {
    const source = [
      '.set MAGIC, 0x1BADB002',
      '.set FLAGS, 3',
      '.code32',
      '.text',
      '.align 4',
      '.long MAGIC, FLAGS, -(MAGIC + FLAGS)',
      '.globl _start',
      '_start: hlt',
      '.bss',
      '.space 0x2a30',
      '',
    ].join('\n');
    const image = build(source, ['--32'], ['-m', 'elf_i386', '-Ttext', '0x8000', '-N']);
    const memory = dirtyMemory();
    const loaded = loadGuest(image, memory, { format: 'auto', name: 'realmode.flat', cmdline: 'hello', e820 });
    expect(loaded.format).toBe('multiboot');
    const boot = loaded.bootState;
    if (boot.mode !== 'protected') throw new Error(`expected protected mode, got ${boot.mode}`);
    expect(boot.rip).toBe(0x800c);
    const info = boot.regs.rbx!;
    expect(info).toBeGreaterThanOrEqual(0xb000); // past the kernel's bss, page-aligned
    expect(info % 0x1000).toBe(0);
    expect(u32(memory, 0x8000)).toBe(0x1badb002);
    expect(loaded.bootTables).toEqual({ gdtAddress: DEFAULT_BOOT_GDT_ADDRESS });
    const cmdline = u32(memory, info + 16);
    expect(new TextDecoder().decode(memory.subarray(cmdline, memory.indexOf(0, cmdline)))).toBe('realmode.flat hello');
  });
});
