/**
 * A vCPU's state as text, for crash reports: what `info registers` in QEMU's monitor shows.
 */
import { KVM_SREGS_SEGMENTS, type KvmRegs, type KvmSregs } from '../kvm/structs.js';

export const CR0_PE = 0x1n; // protection enable
export const CR0_PG = 0x80000000n; // paging
export const EFER_LMA = 0x400n; // long mode active

/** How many instruction bytes at CS:RIP a dump shows. */
const CODE_BYTES = 16;

export type CpuMode = 'real' | 'protected' | 'long';

export function cpuMode(sregs: KvmSregs): CpuMode {
  if (sregs.efer & EFER_LMA) return 'long';
  return sregs.cr0 & CR0_PE ? 'protected' : 'real';
}

const hex = (v: bigint, width: number): string => v.toString(16).padStart(width, '0');

export function formatVcpuState(regs: KvmRegs, sregs: KvmSregs, memory: Uint8Array): string {
  const r = (name: keyof KvmRegs): string => `${name.toUpperCase().padEnd(3)}=${hex(regs[name], 16)}`;
  const lines = [
    `${r('rax')} ${r('rbx')} ${r('rcx')} ${r('rdx')}`,
    `${r('rsi')} ${r('rdi')} ${r('rbp')} ${r('rsp')}`,
    `${r('r8')} ${r('r9')} ${r('r10')} ${r('r11')}`,
    `${r('r12')} ${r('r13')} ${r('r14')} ${r('r15')}`,
    `RIP=${hex(regs.rip, 16)} RFL=${hex(regs.rflags, 8)} mode=${cpuMode(sregs)}`,
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
  );
  // Without paging, CS.base + RIP is the guest-physical address of the next instruction.
  if (!(sregs.cr0 & CR0_PG)) {
    const at = Number(sregs.cs.base + regs.rip);
    const code = at >= 0 && at < memory.length ? Array.from(memory.subarray(at, Math.min(at + CODE_BYTES, memory.length))) : [];
    lines.push(
      code.length
        ? `Code at ${at.toString(16)}: ${code.map((b) => b.toString(16).padStart(2, '0')).join(' ')}`
        : `Code at ${at.toString(16)}: outside guest RAM`,
    );
  }
  return lines.join('\n');
}
