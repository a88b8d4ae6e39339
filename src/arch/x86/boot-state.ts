/**
 * What a loader hands to the machine: the CPU mode the guest starts in and its first registers.
 * The machine (src/arch/x86/boot-cpu.ts) turns it into kvm_sregs/kvm_regs, writing the boot GDT and,
 * for long mode, identity-mapped page tables (see pc-layout.ts for where).
 */

/** Where a guest starts: real mode, segments as selectors (base = selector << 4). */
export interface RealModeEntry {
  cs: number;
  ip: number;
  ds: number;
  es: number;
  fs: number;
  gs: number;
  ss: number;
  sp: number;
  bp: number;
  /** DX at entry (DL carries the boot drive for boot sectors). */
  dx: number;
}

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
