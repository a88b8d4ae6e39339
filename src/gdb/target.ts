/**
 * What the GDB stub needs from a stopped vCPU. The machine implements it (src/vm/debug-target.ts);
 * the stub (src/gdb/stub.ts) knows only this interface, so it is testable with a fake.
 * Every method but resume()/interrupt() is called only while the vCPU is stopped.
 */
import type { CpuMode, KvmRegs, KvmSregs } from '../kvm/structs.js';

export type { CpuMode };

/** Hardware breakpoint and watchpoint kinds (gdb's Z1, Z2, Z3, Z4); Z0 is mapped to 'exec' too. */
export type HwBreakpointKind = 'exec' | 'write' | 'read' | 'access';

export type StopReason =
  /** A breakpoint at `address` was hit. */
  | { kind: 'breakpoint'; address: bigint }
  /** A watchpoint on `address` fired (gdb's watch/rwatch/awatch). */
  | { kind: 'watchpoint'; watch: 'write' | 'read' | 'access'; address: bigint }
  /** One instruction was executed (stepi). */
  | { kind: 'step' }
  /** interrupt() (Ctrl-C in gdb), or the initial stop of --gdb-wait. */
  | { kind: 'interrupt' }
  /** The guest ended the run: debug-exit value, halt, reset... (gdb's W packet). */
  | { kind: 'exited'; code: number }
  /** The guest crashed (triple fault, internal error): gdb sees SIGSEGV-like stop X. */
  | { kind: 'crashed'; description: string };

export interface DebugTarget {
  mode(): CpuMode;
  getRegs(): KvmRegs;
  setRegs(regs: KvmRegs): void;
  getSregs(): KvmSregs;
  setSregs(sregs: KvmSregs): void;
  /** Reads guest memory at a guest-virtual address (translated when paging is on); undefined if unmapped. */
  readMemory(address: bigint, length: number): Uint8Array | undefined;
  /** Writes guest memory at a guest-virtual address; false if any byte is unmapped. */
  writeMemory(address: bigint, data: Uint8Array): boolean;
  /** Runs the vCPU until it stops again (one instruction for 'step'). */
  resume(how: 'continue' | 'step'): Promise<StopReason>;
  /** Makes a running resume() stop with { kind: 'interrupt' } (no-op when stopped). */
  interrupt(): void;
  /** Sets a debug-register breakpoint/watchpoint; false when all four are in use or the length is invalid. */
  insertBreakpoint(kind: HwBreakpointKind, address: bigint, length: number): boolean;
  removeBreakpoint(kind: HwBreakpointKind, address: bigint, length: number): boolean;
  /** Ends the run (gdb's k): the run's reason becomes 'stopped'. */
  kill(): void;
  /** Removes every breakpoint and lets the guest run on freely (gdb's D). */
  detach(): void;
}
