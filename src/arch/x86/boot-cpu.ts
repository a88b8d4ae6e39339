/**
 * Puts a vCPU in the state a loader asked for (BootState): real mode as the BIOS leaves it,
 * 32-bit protected mode as multiboot specifies, or 64-bit long mode with identity-mapped page
 * tables — writing the boot GDT and page tables into guest memory where the loader placed them
 * (BootTables; src/loader/placement.ts keeps them clear of the kernel and its modules).
 */
import {
  CR0_ET,
  CR0_PE,
  CR0_PG,
  CR4_PAE,
  EFER_LMA,
  EFER_LME,
  KVM_REGS_FIELDS,
  RFLAGS_RESERVED_1,
  type KvmRegs,
  type KvmSegment,
  type KvmSregs,
} from '../../kvm/structs.js';
import type { BootState, RealModeEntry } from './boot-state.js';
import { DEFAULT_BOOT_GDT_ADDRESS, DEFAULT_PAGE_TABLES_ADDRESS } from './pc-layout.js';

/** The registers a boot state is written into (a Vcpu, or a VcpuFd). */
export interface BootCpu {
  getSregs(): KvmSregs;
  setSregs(sregs: KvmSregs): void;
  setRegs(regs: KvmRegs): void;
}

// Boot GDT selectors (index × 8): the layout Linux's boot protocol and multiboot loaders use.
export const GDT_SELECTOR_CODE32 = 0x08;
export const GDT_SELECTOR_DATA = 0x10;
export const GDT_SELECTOR_CODE64 = 0x18;

// Segment descriptor type field (with S=1: code/data).
const SEG_TYPE_DATA_RW_ACCESSED = 0x3;
const SEG_TYPE_CODE_RX_ACCESSED = 0xb;

// Page-table entry bits.
const PTE_PRESENT = 1n << 0n;
const PTE_WRITABLE = 1n << 1n;
const PTE_PAGE_SIZE = 1n << 7n; // a 2 MiB page in a page-directory entry
const PAGE_TABLE_BYTES = 0x1000;
const LARGE_PAGE = 2n * 1024n * 1024n;
const IDENTITY_MAPPED_GIB = 4; // PDPT entries, one page directory each

/** Where the boot GDT and (long mode) the page tables go: the loader's LoadedGuest.bootTables. */
export interface BootTables {
  gdtAddress: number;
  /** Needed for long mode only. */
  pageTablesAddress?: number;
}

/** The option-ROM area, for callers that load the image themselves and placed nothing. */
export const DEFAULT_BOOT_TABLES: Readonly<Required<BootTables>> = {
  gdtAddress: DEFAULT_BOOT_GDT_ADDRESS,
  pageTablesAddress: DEFAULT_PAGE_TABLES_ADDRESS,
};

export function applyBootState(vcpu: BootCpu, memory: Uint8Array, boot: BootState, tables: BootTables = DEFAULT_BOOT_TABLES): void {
  switch (boot.mode) {
    case 'real':
      return setRealMode(vcpu, boot.entry);
    case 'protected':
      writeBootGdt(memory, tables.gdtAddress);
      vcpu.setSregs(flatSregs(vcpu.getSregs(), tables.gdtAddress));
      return setRegs(vcpu, BigInt(boot.rip), boot.regs);
    case 'long': {
      const pageTables = tables.pageTablesAddress ?? DEFAULT_PAGE_TABLES_ADDRESS;
      writeBootGdt(memory, tables.gdtAddress);
      writeIdentityPageTables(memory, pageTables);
      vcpu.setSregs(flatSregs(vcpu.getSregs(), tables.gdtAddress, pageTables));
      return setRegs(vcpu, boot.rip, boot.regs);
    }
    default: {
      const never: never = boot;
      throw new Error(`unknown boot mode ${JSON.stringify(never)}`);
    }
  }
}

/** Real mode at the loader's entry: each segment's base is its selector × 16. */
function setRealMode(vcpu: BootCpu, entry: RealModeEntry): void {
  const sregs = vcpu.getSregs();
  for (const seg of ['cs', 'ds', 'es', 'fs', 'gs', 'ss'] as const) {
    sregs[seg].selector = entry[seg];
    sregs[seg].base = BigInt(entry[seg]) << 4n;
  }
  vcpu.setSregs(sregs);
  setRegs(vcpu, BigInt(entry.ip), { rsp: entry.sp, rbp: entry.bp, rdx: entry.dx });
}

function setRegs(vcpu: BootCpu, rip: bigint, values: Partial<Record<keyof KvmRegs, number | bigint>>): void {
  const regs = Object.fromEntries(KVM_REGS_FIELDS.map((name) => [name, 0n])) as KvmRegs;
  for (const [name, value] of Object.entries(values)) regs[name as keyof KvmRegs] = BigInt(value);
  regs.rip = rip;
  regs.rflags = RFLAGS_RESERVED_1; // interrupts off until the guest is ready for them
  vcpu.setRegs(regs);
}

function segment(selector: number, type: number, long: boolean): KvmSegment {
  return {
    base: 0n,
    limit: 0xffffffff,
    selector,
    type,
    present: 1,
    dpl: 0,
    db: long && type === SEG_TYPE_CODE_RX_ACCESSED ? 0 : 1, // a 64-bit code segment has D=0, L=1
    s: 1,
    l: long && type === SEG_TYPE_CODE_RX_ACCESSED ? 1 : 0,
    g: 1,
    avl: 0,
    unusable: 0,
  };
}

/** Flat 4 GiB segments; with page tables (long mode) also paging, PAE and EFER.LME/LMA. */
function flatSregs(sregs: KvmSregs, gdtAddress: number, pageTablesAddress?: number): KvmSregs {
  const long = pageTablesAddress !== undefined;
  const code = segment(long ? GDT_SELECTOR_CODE64 : GDT_SELECTOR_CODE32, SEG_TYPE_CODE_RX_ACCESSED, long);
  const data = segment(GDT_SELECTOR_DATA, SEG_TYPE_DATA_RW_ACCESSED, long);
  sregs.cs = code;
  sregs.ds = { ...data };
  sregs.es = { ...data };
  sregs.fs = { ...data };
  sregs.gs = { ...data };
  sregs.ss = { ...data };
  sregs.gdt = { base: BigInt(gdtAddress), limit: BOOT_GDT.length * 8 - 1 };
  sregs.cr0 = CR0_PE | CR0_ET | (long ? CR0_PG : 0n);
  if (long) {
    sregs.cr3 = BigInt(pageTablesAddress);
    sregs.cr4 |= CR4_PAE;
    sregs.efer |= EFER_LME | EFER_LMA;
  }
  return sregs;
}

/** The boot GDT: null, 32-bit code (0x08), data (0x10), 64-bit code (0x18). */
const BOOT_GDT: readonly bigint[] = [0n, 0x00cf9b000000ffffn, 0x00cf93000000ffffn, 0x00af9b000000ffffn];

function writeBootGdt(memory: Uint8Array, at: number): void {
  const view = new DataView(memory.buffer, memory.byteOffset);
  BOOT_GDT.forEach((descriptor, i) => view.setBigUint64(at + i * 8, descriptor, true));
}

/** PML4 → one PDPT → four page directories of 2 MiB pages: the first 4 GiB, identity-mapped. */
function writeIdentityPageTables(memory: Uint8Array, pml4: number): void {
  const view = new DataView(memory.buffer, memory.byteOffset);
  const pdpt = pml4 + PAGE_TABLE_BYTES;
  const firstPd = pdpt + PAGE_TABLE_BYTES;
  memory.fill(0, pml4, firstPd + IDENTITY_MAPPED_GIB * PAGE_TABLE_BYTES);
  view.setBigUint64(pml4, BigInt(pdpt) | PTE_PRESENT | PTE_WRITABLE, true);
  for (let gib = 0; gib < IDENTITY_MAPPED_GIB; gib++) {
    const pd = firstPd + gib * PAGE_TABLE_BYTES;
    view.setBigUint64(pdpt + gib * 8, BigInt(pd) | PTE_PRESENT | PTE_WRITABLE, true);
    for (let i = 0; i < 512; i++) {
      const address = (BigInt(gib) * 512n + BigInt(i)) * LARGE_PAGE;
      view.setBigUint64(pd + i * 8, address | PTE_PRESENT | PTE_WRITABLE | PTE_PAGE_SIZE, true);
    }
  }
}

// Segment descriptor types of the power-on state (SDM vol. 3, table 9-1).
const SEG_TYPE_TSS_BUSY = 0xb;
const SEG_TYPE_LDT = 0x2;
const REAL_MODE_LIMIT = 0xffff;
/** The IVT: 256 four-byte vectors. */
const REAL_MODE_IDT_LIMIT = 0x3ff;

/**
 * A CPU as after RESET or INIT (SDM vol. 3, 9.1.1), but entered at `entry` instead of the reset
 * vector: real mode, paging and protection off, EFER clear, 64 KiB segments, the IVT at 0 —
 * what firmware leaves when it resumes an OS from S3 at its FACS waking vector, or jumps through
 * 40:67 after a soft reset.
 */
export function applyResetState(vcpu: BootCpu, entry: RealModeEntry): void {
  const sregs = vcpu.getSregs();
  const real = (selector: number, type: number, s = 1): KvmSegment => ({
    base: BigInt(selector) << 4n,
    limit: REAL_MODE_LIMIT,
    selector,
    type,
    present: 1,
    dpl: 0,
    db: 0,
    s,
    l: 0,
    g: 0,
    avl: 0,
    unusable: 0,
  });
  sregs.cs = real(entry.cs, SEG_TYPE_CODE_RX_ACCESSED);
  sregs.ds = real(entry.ds, SEG_TYPE_DATA_RW_ACCESSED);
  sregs.es = real(entry.es, SEG_TYPE_DATA_RW_ACCESSED);
  sregs.fs = real(entry.fs, SEG_TYPE_DATA_RW_ACCESSED);
  sregs.gs = real(entry.gs, SEG_TYPE_DATA_RW_ACCESSED);
  sregs.ss = real(entry.ss, SEG_TYPE_DATA_RW_ACCESSED);
  sregs.tr = real(0, SEG_TYPE_TSS_BUSY, 0);
  sregs.ldt = real(0, SEG_TYPE_LDT, 0);
  sregs.gdt = { base: 0n, limit: REAL_MODE_LIMIT };
  sregs.idt = { base: 0n, limit: REAL_MODE_IDT_LIMIT };
  sregs.cr0 = CR0_ET;
  sregs.cr2 = 0n;
  sregs.cr3 = 0n;
  sregs.cr4 = 0n;
  sregs.efer = 0n;
  vcpu.setSregs(sregs);
  setRegs(vcpu, BigInt(entry.ip), { rsp: entry.sp, rbp: entry.bp, rdx: entry.dx });
}
