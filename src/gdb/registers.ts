/**
 * The register files gdb sees, and their target description (target.xml).
 *
 * Two layouts, after gdb's features/i386/32bit-core.xml and 64bit-core.xml:
 * - `i386` (real and protected mode): eax ecx edx ebx esp ebp esi edi eip eflags, cs ss ds es fs gs,
 *   st0–st7, fctrl..fop; then the system feature below (with fs_base and gs_base), all 32 bits.
 * - `x86-64` (long mode): rax rbx rcx rdx rsi rdi rbp rsp r8–r15 rip eflags, the same selectors
 *   and x87 block, then org.gnu.gdb.i386.segments (fs_base, gs_base) and the system feature, with
 *   64-bit registers.
 * The system feature (org.tskvm.gdb.i386.sys, modelled on QEMU's control-register block) holds
 * cr0 cr2 cr3 cr4 cr8 efer and gdtr/idtr base and limit, so `info registers cr0` and `p $cr3` work.
 *
 * gdb numbers registers by their order in the XML (each <reg> also carries an explicit regnum), so
 * the order of LAYOUT.registers is the protocol's numbering for `g`, `G`, `p` and `P`.
 *
 * The x87 registers are not read from the vCPU (that would need KVM_GET_FPU): they read as zero
 * and writes to them are ignored. gdb's i386 code insists on the x87 block in the core feature.
 *
 * gdb cannot change register sizes mid-session, so a session keeps one layout whatever mode the
 * vCPUs are in (QEMU does the same): the one chosen (--gdb-arch), else the image's (an ELF64 is
 * x86-64, an ELF32 i386: image-layout.ts), else the one the vCPU's mode gives when gdb first asks.
 * In the i386 layout a long-mode value shows its low 32 bits and a write replaces only those; in
 * the x86-64 layout 32-bit state shows zero-extended (the upper halves read as zero).
 */
import type { CpuMode } from './target.js';
import { EFER_LMA, type KvmRegName, type KvmRegs, type KvmSegmentName, type KvmSregs } from '../kvm/structs.js';
import { fromLittleEndianHex, toLittleEndianHex } from './packet.js';

export type LayoutName = 'i386' | 'x86-64';

/** The vCPU state a register reads from and writes to (mutable copies while applying writes). */
export interface RegisterState {
  regs: KvmRegs;
  sregs: KvmSregs;
}

export interface RegisterDef {
  name: string;
  bitsize: number;
  /** gdb's type name: int32, int64, data_ptr, code_ptr, i386_eflags, i387_ext, int. */
  type: string;
  group?: string;
  feature: FeatureName;
  read(state: RegisterState): bigint;
  /** Returns which struct the write changed ('none' for ignored registers such as the x87 block). */
  write(state: RegisterState, value: bigint): 'regs' | 'sregs' | 'none';
}

export interface RegisterLayout {
  name: LayoutName;
  /** The <architecture> gdb selects: bfd's name for i386 or x86-64. */
  architecture: string;
  registers: readonly RegisterDef[];
  /** Bytes in a full `g` reply. */
  totalBytes: number;
  targetXml: string;
}

const FEATURE_CORE = 'org.gnu.gdb.i386.core';
const FEATURE_SEGMENTS = 'org.gnu.gdb.i386.segments';
const FEATURE_SYSTEM = 'org.tskvm.gdb.i386.sys';
type FeatureName = typeof FEATURE_CORE | typeof FEATURE_SEGMENTS | typeof FEATURE_SYSTEM;
const FEATURES: readonly FeatureName[] = [FEATURE_CORE, FEATURE_SEGMENTS, FEATURE_SYSTEM];

const X87_DATA_BITS = 80;
const X87_CONTROL_BITS = 32;
const X87_STACK_DEPTH = 8;
const X87_CONTROL_NAMES = ['fctrl', 'fstat', 'ftag', 'fiseg', 'fioff', 'foseg', 'fooff', 'fop'] as const;
/** Selectors in gdb's order (not KVM's). */
const SELECTOR_NAMES = ['cs', 'ss', 'ds', 'es', 'fs', 'gs'] as const satisfies readonly KvmSegmentName[];
/** Real-mode segment base = selector × 16. */
const REAL_MODE_SEGMENT_SHIFT = 4n;
const CR0_PE = 0x1n;
/** rax..rsp: the eight GPRs that exist outside 64-bit code (r8-r15 do not). */
const LEGACY_GPRS = 8;

const GPRS_32: readonly [string, KvmRegName, string][] = [
  ['eax', 'rax', 'int32'],
  ['ecx', 'rcx', 'int32'],
  ['edx', 'rdx', 'int32'],
  ['ebx', 'rbx', 'int32'],
  ['esp', 'rsp', 'data_ptr'],
  ['ebp', 'rbp', 'data_ptr'],
  ['esi', 'rsi', 'int32'],
  ['edi', 'rdi', 'int32'],
];
const GPRS_64: readonly [string, KvmRegName, string][] = [
  ['rax', 'rax', 'int64'],
  ['rbx', 'rbx', 'int64'],
  ['rcx', 'rcx', 'int64'],
  ['rdx', 'rdx', 'int64'],
  ['rsi', 'rsi', 'int64'],
  ['rdi', 'rdi', 'int64'],
  ['rbp', 'rbp', 'data_ptr'],
  ['rsp', 'rsp', 'data_ptr'],
  ...(['r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const).map((r): [string, KvmRegName, string] => [r, r, 'int64']),
];

/** A value narrowed to the register's width, and merged back into the wider vCPU field on write. */
function narrow(value: bigint, bits: number): bigint {
  return BigInt.asUintN(bits, value);
}
function merge(old: bigint, value: bigint, bits: number): bigint {
  if (bits >= 64) return BigInt.asUintN(64, value);
  const mask = (1n << BigInt(bits)) - 1n;
  return (old & ~mask) | (value & mask);
}

function kvmReg(name: string, field: KvmRegName, bits: number, type: string): RegisterDef {
  return {
    name,
    bitsize: bits,
    type,
    feature: FEATURE_CORE,
    read: (s) => narrow(s.regs[field], bits),
    write: (s, v) => {
      s.regs[field] = merge(s.regs[field], v, bits);
      return 'regs';
    },
  };
}

/** Executing 64-bit code: long mode (EFER.LMA) with a 64-bit code segment (CS.L). */
function in64BitCode(s: RegisterState): boolean {
  return (s.sregs.efer & EFER_LMA) !== 0n && s.sregs.cs.l === 1;
}

/**
 * An x86-64 layout GPR or rip. Outside 64-bit code (real, protected or compatibility mode) only
 * the low 32 bits exist for the program: they read zero-extended, a write sets them and clears the
 * upper half (as a 32-bit write does), and r8-r15 read as zero and ignore writes — as QEMU's stub
 * shows 32-bit state in its 64-bit layout.
 */
function wideReg(name: string, field: KvmRegName, type: string, legacy: boolean): RegisterDef {
  return {
    name,
    bitsize: 64,
    type,
    feature: FEATURE_CORE,
    read: (s) => (in64BitCode(s) ? s.regs[field] : legacy ? narrow(s.regs[field], 32) : 0n),
    write: (s, v) => {
      if (in64BitCode(s)) s.regs[field] = narrow(v, 64);
      else if (legacy) s.regs[field] = narrow(v, 32);
      else return 'none';
      return 'regs';
    },
  };
}

function selector(name: (typeof SELECTOR_NAMES)[number]): RegisterDef {
  return {
    name,
    bitsize: 32,
    type: 'int32',
    feature: FEATURE_CORE,
    read: (s) => BigInt(s.sregs[name].selector),
    write: (s, v) => {
      const value = Number(v & 0xffffn);
      const seg = s.sregs[name];
      // `G` resends every register: only a changed selector is a real write.
      if (value === seg.selector) return 'none';
      seg.selector = value;
      // In real mode the hidden base follows the selector; in protected mode reloading the
      // descriptor from the GDT is the guest's business (a far jump / mov does it).
      if ((s.sregs.cr0 & CR0_PE) === 0n) seg.base = BigInt(value) << REAL_MODE_SEGMENT_SHIFT;
      return 'sregs';
    },
  };
}

function ignored(name: string, bits: number, type: string, group?: string): RegisterDef {
  return { name, bitsize: bits, type, feature: FEATURE_CORE, ...(group ? { group } : {}), read: () => 0n, write: () => 'none' };
}

type SregsScalar = 'cr0' | 'cr2' | 'cr3' | 'cr4' | 'cr8' | 'efer';

function sysReg(
  name: string,
  bits: number,
  get: (r: KvmSregs) => bigint,
  set: (r: KvmSregs, v: bigint) => void,
  feature: FeatureName = FEATURE_SYSTEM,
): RegisterDef {
  return {
    name,
    bitsize: bits,
    type: bits === 64 ? 'int64' : 'int32',
    feature,
    read: (s) => narrow(get(s.sregs), bits),
    write: (s, v) => {
      set(s.sregs, merge(get(s.sregs), v, bits));
      return 'sregs';
    },
  };
}

function scalar(name: SregsScalar, bits: number): RegisterDef {
  return sysReg(
    name,
    bits,
    (r) => r[name],
    (r, v) => {
      r[name] = v;
    },
  );
}

function buildRegisters(name: LayoutName): RegisterDef[] {
  const word = name === 'x86-64' ? 64 : 32;
  const gprs = name === 'x86-64' ? GPRS_64 : GPRS_32;
  const pc = name === 'x86-64' ? 'rip' : 'eip';
  // gdb 13's i386 (32-bit) code numbers fs_base past the x87-only register file and trips an
  // internal assertion, so there the bases live in the system feature as plain registers.
  const baseFeature = name === 'x86-64' ? FEATURE_SEGMENTS : FEATURE_SYSTEM;
  return [
    ...(name === 'x86-64'
      ? [...gprs.map(([n, field, type], i) => wideReg(n, field, type, i < LEGACY_GPRS)), wideReg(pc, 'rip', 'code_ptr', true)]
      : [...gprs.map(([n, field, type]) => kvmReg(n, field, word, type)), kvmReg(pc, 'rip', word, 'code_ptr')]),
    kvmReg('eflags', 'rflags', 32, 'i386_eflags'),
    ...SELECTOR_NAMES.map(selector),
    ...Array.from({ length: X87_STACK_DEPTH }, (_, i) => ignored(`st${i}`, X87_DATA_BITS, 'i387_ext')),
    ...X87_CONTROL_NAMES.map((n) => ignored(n, X87_CONTROL_BITS, 'int', 'float')),
    sysReg(
      'fs_base',
      word,
      (r) => r.fs.base,
      (r, v) => {
        r.fs.base = v;
      },
      baseFeature,
    ),
    sysReg(
      'gs_base',
      word,
      (r) => r.gs.base,
      (r, v) => {
        r.gs.base = v;
      },
      baseFeature,
    ),
    scalar('cr0', word),
    scalar('cr2', word),
    scalar('cr3', word),
    scalar('cr4', word),
    scalar('cr8', word),
    scalar('efer', word),
    sysReg(
      'gdtr_base',
      word,
      (r) => r.gdt.base,
      (r, v) => {
        r.gdt.base = v;
      },
    ),
    sysReg(
      'gdtr_limit',
      32,
      (r) => BigInt(r.gdt.limit),
      (r, v) => {
        r.gdt.limit = Number(v & 0xffffn);
      },
    ),
    sysReg(
      'idtr_base',
      word,
      (r) => r.idt.base,
      (r, v) => {
        r.idt.base = v;
      },
    ),
    sysReg(
      'idtr_limit',
      32,
      (r) => BigInt(r.idt.limit),
      (r, v) => {
        r.idt.limit = Number(v & 0xffffn);
      },
    ),
  ];
}

/** EFLAGS bits as gdb's 32bit-core.xml names them. */
const EFLAGS_FIELDS: readonly [string, number][] = [
  ['CF', 0],
  ['', 1],
  ['PF', 2],
  ['AF', 4],
  ['ZF', 6],
  ['SF', 7],
  ['TF', 8],
  ['IF', 9],
  ['DF', 10],
  ['OF', 11],
  ['NT', 14],
  ['RF', 16],
  ['VM', 17],
  ['AC', 18],
  ['VIF', 19],
  ['VIP', 20],
  ['ID', 21],
];

function buildTargetXml(architecture: string, registers: readonly RegisterDef[]): string {
  const lines = [
    '<?xml version="1.0"?>',
    '<!DOCTYPE target SYSTEM "gdb-target.dtd">',
    '<target version="1.0">',
    `  <architecture>${architecture}</architecture>`,
  ];
  for (const feature of FEATURES) {
    if (!registers.some((reg) => reg.feature === feature)) continue;
    lines.push(`  <feature name="${feature}">`);
    if (feature === FEATURE_CORE) {
      lines.push('    <flags id="i386_eflags" size="4">');
      for (const [field, bit] of EFLAGS_FIELDS) lines.push(`      <field name="${field}" start="${bit}" end="${bit}"/>`);
      lines.push('    </flags>');
    }
    registers.forEach((reg, regnum) => {
      if (reg.feature !== feature) return;
      const group = reg.group ? ` group="${reg.group}"` : '';
      lines.push(`    <reg name="${reg.name}" bitsize="${reg.bitsize}" type="${reg.type}" regnum="${regnum}"${group}/>`);
    });
    lines.push('  </feature>');
  }
  lines.push('</target>', '');
  return lines.join('\n');
}

function buildLayout(name: LayoutName): RegisterLayout {
  const registers = buildRegisters(name);
  const architecture = name === 'x86-64' ? 'i386:x86-64' : 'i386';
  return {
    name,
    architecture,
    registers,
    totalBytes: registers.reduce((sum, r) => sum + r.bitsize / 8, 0),
    targetXml: buildTargetXml(architecture, registers),
  };
}

export const I386_LAYOUT: RegisterLayout = buildLayout('i386');
export const X86_64_LAYOUT: RegisterLayout = buildLayout('x86-64');

/** The layouts by name, as --gdb-arch and options.gdb.arch give them. */
export const LAYOUTS: Readonly<Record<LayoutName, RegisterLayout>> = { i386: I386_LAYOUT, 'x86-64': X86_64_LAYOUT };

/** Long mode gets the x86-64 layout; real and protected mode the i386 one. */
export function layoutForMode(mode: CpuMode): RegisterLayout {
  return mode === 'long' ? X86_64_LAYOUT : I386_LAYOUT;
}

/** The other layout: the one a gdb that does not follow ours is using (there are only two). */
export function otherLayout(layout: RegisterLayout): RegisterLayout {
  return layout === X86_64_LAYOUT ? I386_LAYOUT : X86_64_LAYOUT;
}

/** One register as `p n` returns it; undefined for a register number outside the layout. */
export function readRegister(layout: RegisterLayout, regnum: number, state: RegisterState): string | undefined {
  const reg = layout.registers[regnum];
  return reg ? toLittleEndianHex(reg.read(state), reg.bitsize / 8) : undefined;
}

/** The whole register file as the `g` reply carries it. */
export function readAllRegisters(layout: RegisterLayout, state: RegisterState): string {
  return layout.registers.map((reg) => toLittleEndianHex(reg.read(state), reg.bitsize / 8)).join('');
}

export interface RegisterWrite extends RegisterState {
  regsChanged: boolean;
  sregsChanged: boolean;
}

function cloneState(state: RegisterState): RegisterWrite {
  return { regs: structuredClone(state.regs), sregs: structuredClone(state.sregs), regsChanged: false, sregsChanged: false };
}

function apply(out: RegisterWrite, reg: RegisterDef, hex: string): boolean {
  const value = fromLittleEndianHex(hex);
  if (value === undefined) return false;
  const changed = reg.write(out, value);
  if (changed === 'regs') out.regsChanged = true;
  if (changed === 'sregs') out.sregsChanged = true;
  return true;
}

/** `P n=value`: the new state, or undefined for an unknown register or a value of the wrong size. */
export function writeRegister(layout: RegisterLayout, regnum: number, hex: string, state: RegisterState): RegisterWrite | undefined {
  const reg = layout.registers[regnum];
  if (!reg || hex.length !== reg.bitsize / 4) return undefined;
  const out = cloneState(state);
  return apply(out, reg, hex) ? out : undefined;
}

/**
 * `G data`: the new state. gdb may send fewer registers than the layout holds (the rest keep
 * their value); a reply longer than the layout or not on a register boundary is refused.
 */
export function writeAllRegisters(layout: RegisterLayout, hex: string, state: RegisterState): RegisterWrite | undefined {
  if (hex.length > layout.totalBytes * 2) return undefined;
  const out = cloneState(state);
  let at = 0;
  for (const reg of layout.registers) {
    if (at >= hex.length) break;
    const width = reg.bitsize / 4;
    if (at + width > hex.length || !apply(out, reg, hex.slice(at, at + width))) return undefined;
    at += width;
  }
  return out;
}
