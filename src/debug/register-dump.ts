/**
 * A vCPU's state as text, for crash reports and `--dump-on-exit`: what `info registers` in QEMU's
 * monitor shows, plus the named flag and control bits and the next instructions at CS:RIP.
 */
import { bitnessFor, disassemble } from './disasm.js';
import { readLinear, type Translate } from '../memory/linear.js';
import { CR0_PG, cpuMode, KVM_SREGS_SEGMENTS, type CpuMode, type KvmRegs, type KvmSregs } from '../kvm/structs.js';

export { cpuMode, type CpuMode };

/** How many instruction bytes at CS:RIP a dump shows. */
const CODE_BYTES = 16;
/** How many instructions at CS:RIP a dump disassembles. */
const DUMP_INSTRUCTIONS = 4;
/** Bytes read for them: four of the longest (15-byte) x86 instructions. */
const DISASM_BYTES = DUMP_INSTRUCTIONS * 15;
/** KVM_TRANSLATE works per page: a read crossing a page boundary translates each page. */
/** Outside 64-bit code, CS.base + EIP wraps at 4 GiB. */
const LINEAR_32_MASK = 0xffffffffn;
/** objdump's bytes column holds 7 bytes ("xx " each). */
const BYTES_COLUMN = 21;

/** Named bits, lowest first; a bit with no name here is shown as its number. */
type BitNames = readonly (readonly [bit: number, name: string])[];

export const RFLAGS_BITS: BitNames = [
  [0, 'CF'],
  [2, 'PF'],
  [4, 'AF'],
  [6, 'ZF'],
  [7, 'SF'],
  [8, 'TF'],
  [9, 'IF'],
  [10, 'DF'],
  [11, 'OF'],
  [14, 'NT'],
  [16, 'RF'],
  [17, 'VM'],
  [18, 'AC'],
  [19, 'VIF'],
  [20, 'VIP'],
  [21, 'ID'],
];
/** RFLAGS.IOPL is a 2-bit field, not a flag. */
export const RFLAGS_IOPL_SHIFT = 12n;
export const RFLAGS_IOPL_MASK = 3n;
/** Bit 1 always reads as 1 and bits 12-13 are IOPL: neither is a flag to name. */
const RFLAGS_NOT_FLAGS = 0x3002n;

export const CR0_BITS: BitNames = [
  [0, 'PE'],
  [1, 'MP'],
  [2, 'EM'],
  [3, 'TS'],
  [4, 'ET'],
  [5, 'NE'],
  [16, 'WP'],
  [18, 'AM'],
  [29, 'NW'],
  [30, 'CD'],
  [31, 'PG'],
];
export const CR4_BITS: BitNames = [
  [0, 'VME'],
  [1, 'PVI'],
  [2, 'TSD'],
  [3, 'DE'],
  [4, 'PSE'],
  [5, 'PAE'],
  [6, 'MCE'],
  [7, 'PGE'],
  [8, 'PCE'],
  [9, 'OSFXSR'],
  [10, 'OSXMMEXCPT'],
  [11, 'UMIP'],
  [12, 'LA57'],
  [13, 'VMXE'],
  [14, 'SMXE'],
  [16, 'FSGSBASE'],
  [17, 'PCIDE'],
  [18, 'OSXSAVE'],
  [20, 'SMEP'],
  [21, 'SMAP'],
  [22, 'PKE'],
  [23, 'CET'],
  [24, 'PKS'],
];
export const EFER_BITS: BitNames = [
  [0, 'SCE'],
  [8, 'LME'],
  [10, 'LMA'],
  [11, 'NXE'],
  [12, 'SVME'],
  [13, 'LMSLE'],
  [14, 'FFXSR'],
  [15, 'TCE'],
];

/** Maps a guest-linear address to guest-physical (KVM_TRANSLATE); undefined when unmapped. */
export type { Translate };

const hex = (v: bigint, width: number): string => v.toString(16).padStart(width, '0');

/** The names of the set bits in `value`, lowest first ("-" when none); unnamed set bits show as `bitN`. */
export function bitNames(value: bigint, names: BitNames, ignore = 0n): string {
  const known = new Map(names.map(([bit, name]) => [bit, name]));
  const set: string[] = [];
  for (let bit = 0; bit < 64; bit++) {
    const mask = 1n << BigInt(bit);
    if (value & mask && !(ignore & mask)) set.push(known.get(bit) ?? `bit${bit}`);
  }
  return set.length ? set.join(' ') : '-';
}

/** RFLAGS as flag names, e.g. `PF ZF IF`, with `IOPL=n` when it is not 0. */
export function formatRflags(rflags: bigint): string {
  const iopl = (rflags >> RFLAGS_IOPL_SHIFT) & RFLAGS_IOPL_MASK;
  const flags = bitNames(rflags, RFLAGS_BITS, RFLAGS_NOT_FLAGS);
  return iopl ? `${flags === '-' ? '' : `${flags} `}IOPL=${iopl}` : flags;
}

/**
 * The state of a vCPU. `memory` is guest RAM from guest-physical 0; with paging on, `translate`
 * (KVM_TRANSLATE) finds the code at CS:RIP, and without it the code is left out.
 */
export function formatVcpuState(regs: KvmRegs, sregs: KvmSregs, memory: Uint8Array, translate?: Translate): string {
  const r = (name: keyof KvmRegs): string => `${name.toUpperCase().padEnd(3)}=${hex(regs[name], 16)}`;
  const mode = cpuMode(sregs);
  const lines = [
    `${r('rax')} ${r('rbx')} ${r('rcx')} ${r('rdx')}`,
    `${r('rsi')} ${r('rdi')} ${r('rbp')} ${r('rsp')}`,
    `${r('r8')} ${r('r9')} ${r('r10')} ${r('r11')}`,
    `${r('r12')} ${r('r13')} ${r('r14')} ${r('r15')}`,
    `RIP=${hex(regs.rip, 16)} RFL=${hex(regs.rflags, 8)} mode=${mode}`,
    `FLAGS: ${formatRflags(regs.rflags)}`,
  ];
  for (const name of KVM_SREGS_SEGMENTS) {
    const s = sregs[name];
    lines.push(
      `${name.toUpperCase().padEnd(3)} =${s.selector.toString(16).padStart(4, '0')} base=${hex(s.base, 16)} limit=${s.limit.toString(16).padStart(8, '0')} ` +
        `type=${s.type.toString(16)} s=${s.s} dpl=${s.dpl} p=${s.present} db=${s.db} l=${s.l} g=${s.g} avl=${s.avl}${s.unusable ? ' unusable' : ''}`,
    );
  }
  lines.push(
    `GDT=${hex(sregs.gdt.base, 16)} ${sregs.gdt.limit.toString(16).padStart(4, '0')}  IDT=${hex(sregs.idt.base, 16)} ${sregs.idt.limit.toString(16).padStart(4, '0')}`,
    `CR0=${hex(sregs.cr0, 8)} CR2=${hex(sregs.cr2, 16)} CR3=${hex(sregs.cr3, 16)} CR4=${hex(sregs.cr4, 8)}`,
    `CR8=${hex(sregs.cr8, 1)} EFER=${hex(sregs.efer, 16)} APIC_BASE=${hex(sregs.apicBase, 8)}`,
    `CR0: ${bitNames(sregs.cr0, CR0_BITS)}  CR4: ${bitNames(sregs.cr4, CR4_BITS)}  EFER: ${bitNames(sregs.efer, EFER_BITS)}`,
  );
  lines.push(...formatCode(regs, sregs, mode, memory, translate));
  return lines.join('\n');
}

/** The `Code at` line and the disassembly of the next instructions under it. */
function formatCode(regs: KvmRegs, sregs: KvmSregs, mode: CpuMode, memory: Uint8Array, translate: Translate | undefined): string[] {
  const bitness = bitnessFor(mode, sregs.cs.db, sregs.cs.l);
  // A 64-bit code segment has base 0 whatever the descriptor says; other code has 32-bit linear addresses.
  const linear = bitness === 64 ? regs.rip : (sregs.cs.base + regs.rip) & LINEAR_32_MASK;
  let code: Uint8Array;
  let where: string;
  if (!(sregs.cr0 & CR0_PG)) {
    // Without paging, the linear address is the guest-physical one.
    const at = Number(linear);
    where = `Code at ${at.toString(16)}`;
    code = at >= 0 && at < memory.length ? memory.subarray(at, Math.min(at + DISASM_BYTES, memory.length)) : new Uint8Array(0);
  } else {
    if (!translate) return [`Code at ${linear.toString(16)} (virtual): not translated`];
    const physical = translate(linear);
    if (physical === undefined) return [`Code at ${linear.toString(16)} (virtual): not mapped`];
    where = `Code at ${linear.toString(16)} (physical ${physical.toString(16)})`;
    code = readLinear(memory, linear, DISASM_BYTES, translate);
  }
  if (!code.length) return [`${where}: outside guest RAM`];
  const shown = Array.from(code.subarray(0, CODE_BYTES), (b) => b.toString(16).padStart(2, '0'));
  const lines = [`${where}: ${shown.join(' ')}`];
  for (const insn of disassemble(code, regs.rip, bitness, DUMP_INSTRUCTIONS)) {
    lines.push(`  ${formatAddress(insn.ip, sregs.cs.selector, mode, bitness)}  ${insn.bytes.padEnd(BYTES_COLUMN)}${insn.text}`);
  }
  return lines;
}

/**
 * `cs:ip` as a debugger shows it: `1000:0004` in real mode (and other 16-bit code),
 * `0008:00100000` with 32-bit code, `0018:ffffffff81000000` with 64-bit code.
 */
export function formatAddress(
  ip: bigint,
  csSelector: number,
  mode: CpuMode,
  bitness = mode === 'long' ? 64 : mode === 'real' ? 16 : 32,
): string {
  const width = bitness === 64 ? 16 : bitness === 32 ? 8 : 4;
  return `${csSelector.toString(16).padStart(4, '0')}:${hex(bitness === 64 ? ip : ip & ((1n << BigInt(width * 4)) - 1n), width)}`;
}
