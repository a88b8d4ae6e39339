/**
 * struct kvm_regs and struct kvm_sregs, as plain objects, with their byte layout (x86-64 ABI of
 * <linux/kvm.h>). u64 fields are bigints so that long-mode addresses survive the round trip.
 * test/unit/kvm-layout.test.ts holds these offsets to the ones the addon was compiled with.
 */

export const KVM_REGS_SIZE = 144;
export const KVM_SREGS_SIZE = 312;
export const KVM_SEGMENT_SIZE = 24;

export const KVM_REGS_FIELDS = [
  'rax',
  'rbx',
  'rcx',
  'rdx',
  'rsi',
  'rdi',
  'rsp',
  'rbp',
  'r8',
  'r9',
  'r10',
  'r11',
  'r12',
  'r13',
  'r14',
  'r15',
  'rip',
  'rflags',
] as const;

export type KvmRegName = (typeof KVM_REGS_FIELDS)[number];
export type KvmRegs = Record<KvmRegName, bigint>;

/** RFLAGS bit 1 is reserved and always reads as 1. */
export const RFLAGS_RESERVED_1 = 0x2n;
export const RFLAGS_IF = 0x200n;

// Control-register and EFER bits that decide the CPU mode.
export const CR0_PE = 1n << 0n; // protected mode
export const CR0_ET = 1n << 4n; // extension type: always 1 on a 387-or-later FPU
export const CR0_PG = 1n << 31n; // paging
export const CR4_PAE = 1n << 5n; // physical address extension: required for long mode
export const CR4_LA57 = 1n << 12n; // 57-bit linear addresses (5-level paging)
export const EFER_LME = 1n << 8n; // long mode enable
export const EFER_LMA = 1n << 10n; // long mode active

export function decodeRegs(bytes: Uint8Array): KvmRegs {
  const view = new DataView(bytes.buffer, bytes.byteOffset, KVM_REGS_SIZE);
  const regs = {} as KvmRegs;
  KVM_REGS_FIELDS.forEach((name, i) => {
    regs[name] = view.getBigUint64(i * 8, true);
  });
  return regs;
}

export function encodeRegs(regs: KvmRegs, bytes: Uint8Array = new Uint8Array(KVM_REGS_SIZE)): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, KVM_REGS_SIZE);
  KVM_REGS_FIELDS.forEach((name, i) => {
    view.setBigUint64(i * 8, BigInt.asUintN(64, regs[name]), true);
  });
  return bytes;
}

/** struct kvm_segment: a segment register with its hidden descriptor cache. */
export interface KvmSegment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable: number;
}

/** struct kvm_dtable: GDTR or IDTR. */
export interface KvmDtable {
  base: bigint;
  limit: number;
}

export const KVM_SREGS_SEGMENTS = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
export type KvmSegmentName = (typeof KVM_SREGS_SEGMENTS)[number];

export interface KvmSregs extends Record<KvmSegmentName, KvmSegment> {
  gdt: KvmDtable;
  idt: KvmDtable;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  apicBase: bigint;
  /** Pending external interrupt, one bit per vector (4 × u64). */
  interruptBitmap: [bigint, bigint, bigint, bigint];
}

const SREGS_GDT = 192;
const SREGS_IDT = 208;
const SREGS_CONTROL = 224; // cr0, cr2, cr3, cr4, cr8, efer, apic_base: 7 × u64
const SREGS_INTERRUPT_BITMAP = 280;
const SREGS_CONTROL_FIELDS = ['cr0', 'cr2', 'cr3', 'cr4', 'cr8', 'efer', 'apicBase'] as const;

// Offsets inside struct kvm_segment.
const SEG_BASE = 0;
const SEG_LIMIT = 8;
const SEG_SELECTOR = 12;
const SEG_BYTE_FIELDS = ['type', 'present', 'dpl', 'db', 's', 'l', 'g', 'avl', 'unusable'] as const;
const SEG_TYPE = 14;

export function decodeSregs(bytes: Uint8Array): KvmSregs {
  const view = new DataView(bytes.buffer, bytes.byteOffset, KVM_SREGS_SIZE);
  const sregs = {} as KvmSregs;
  KVM_SREGS_SEGMENTS.forEach((name, i) => {
    const at = i * KVM_SEGMENT_SIZE;
    const seg = {
      base: view.getBigUint64(at + SEG_BASE, true),
      limit: view.getUint32(at + SEG_LIMIT, true),
      selector: view.getUint16(at + SEG_SELECTOR, true),
    } as KvmSegment;
    SEG_BYTE_FIELDS.forEach((field, j) => {
      seg[field] = view.getUint8(at + SEG_TYPE + j);
    });
    sregs[name] = seg;
  });
  sregs.gdt = { base: view.getBigUint64(SREGS_GDT, true), limit: view.getUint16(SREGS_GDT + 8, true) };
  sregs.idt = { base: view.getBigUint64(SREGS_IDT, true), limit: view.getUint16(SREGS_IDT + 8, true) };
  SREGS_CONTROL_FIELDS.forEach((name, i) => {
    sregs[name] = view.getBigUint64(SREGS_CONTROL + i * 8, true);
  });
  sregs.interruptBitmap = [0, 1, 2, 3].map((i) => view.getBigUint64(SREGS_INTERRUPT_BITMAP + i * 8, true)) as KvmSregs['interruptBitmap'];
  return sregs;
}

export function encodeSregs(sregs: KvmSregs, bytes: Uint8Array = new Uint8Array(KVM_SREGS_SIZE)): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, KVM_SREGS_SIZE);
  bytes.fill(0, 0, KVM_SREGS_SIZE);
  KVM_SREGS_SEGMENTS.forEach((name, i) => {
    const at = i * KVM_SEGMENT_SIZE;
    const seg = sregs[name];
    view.setBigUint64(at + SEG_BASE, BigInt.asUintN(64, seg.base), true);
    view.setUint32(at + SEG_LIMIT, seg.limit >>> 0, true);
    view.setUint16(at + SEG_SELECTOR, seg.selector, true);
    SEG_BYTE_FIELDS.forEach((field, j) => {
      view.setUint8(at + SEG_TYPE + j, seg[field]);
    });
  });
  view.setBigUint64(SREGS_GDT, sregs.gdt.base, true);
  view.setUint16(SREGS_GDT + 8, sregs.gdt.limit, true);
  view.setBigUint64(SREGS_IDT, sregs.idt.base, true);
  view.setUint16(SREGS_IDT + 8, sregs.idt.limit, true);
  SREGS_CONTROL_FIELDS.forEach((name, i) => {
    view.setBigUint64(SREGS_CONTROL + i * 8, BigInt.asUintN(64, sregs[name]), true);
  });
  sregs.interruptBitmap.forEach((word, i) => view.setBigUint64(SREGS_INTERRUPT_BITMAP + i * 8, word, true));
  return bytes;
}

export type CpuMode = 'real' | 'protected' | 'long';

/** The CPU mode the segment and control registers put the vCPU in. */
export function cpuMode(sregs: Pick<KvmSregs, 'cr0' | 'efer'>): CpuMode {
  if (sregs.efer & EFER_LMA) return 'long';
  return sregs.cr0 & CR0_PE ? 'protected' : 'real';
}
