/**
 * What a loader hands to the machine: the CPU mode the guest starts in and its first registers.
 * The machine (src/vm/cpu-setup.ts) turns it into kvm_sregs/kvm_regs, writing the boot GDT and,
 * for long mode, identity-mapped page tables (see pc-layout.ts for where).
 */
import type { RealModeEntry } from './image.js';

export type GeneralRegister = 'rax' | 'rbx' | 'rcx' | 'rdx' | 'rsi' | 'rdi' | 'rsp' | 'rbp';

export type BootState =
  /** Real mode: segments are selectors (base = selector × 16). */
  | { mode: 'real'; entry: RealModeEntry }
  /**
   * 32-bit protected mode, paging off, flat 4 GiB code and data segments (CS=0x08, others 0x10),
   * interrupts off: the state multiboot specifies and QEMU's -kernel gives an ELF32.
   */
  | { mode: 'protected'; rip: number; regs: Partial<Record<GeneralRegister, number>> }
  /**
   * 64-bit long mode, the first 4 GiB identity-mapped with 2 MiB pages, flat segments (CS=0x18
   * 64-bit code, data 0x10), interrupts off.
   */
  | { mode: 'long'; rip: bigint; regs: Partial<Record<GeneralRegister, number | bigint>> };
