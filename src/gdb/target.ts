/**
 * What the GDB stub needs from the stopped vCPUs. The machine implements it (src/gdb/debug-target.ts);
 * the stub (src/gdb/stub.ts) knows only this interface, so it is testable with a fake.
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

/** What gdb asks a vCPU to do when the target resumes (vCont's c and s; c/s apply to one or all). */
export type ResumeAction = 'continue' | 'step';

/** A stop and the vCPU it happened on (for 'exited' and 'crashed', the machine's: cpu is 0). */
export interface StopEvent {
  cpu: number;
  reason: StopReason;
}

/**
 * The machine's vCPUs, numbered from 0 (vCPU 0 boots); gdb sees vCPU n as thread n + 1. All-stop:
 * every method but resume()/interrupt() is called only while every vCPU is stopped, and resume()
 * settles only once all are stopped again.
 */
export interface DebugTarget {
  /** How many vCPUs the machine has (some may have ended since). */
  readonly cpuCount: number;
  /** vCPU `cpu` is still there: its run has not ended (an AP waiting for INIT/SIPI is). */
  alive(cpu: number): boolean;
  /** A few words on the vCPU for `info threads` (qThreadExtraInfo). */
  describe(cpu: number): string;
  mode(cpu: number): CpuMode;
  getRegs(cpu: number): KvmRegs;
  setRegs(cpu: number, regs: KvmRegs): void;
  getSregs(cpu: number): KvmSregs;
  setSregs(cpu: number, sregs: KvmSregs): void;
  /** Reads guest memory at a guest-virtual address as vCPU `cpu` sees it (translated when paging is on); undefined if unmapped. */
  readMemory(cpu: number, address: bigint, length: number): Uint8Array | undefined;
  /** Writes guest memory at a guest-virtual address as vCPU `cpu` sees it; false if any byte is unmapped. */
  writeMemory(cpu: number, address: bigint, data: Uint8Array): boolean;
  /**
   * Runs the vCPUs in `actions` (one instruction for 'step'; the others stay stopped) until one
   * stops, then stops the rest: the first stop, with its vCPU.
   */
  resume(actions: ReadonlyMap<number, ResumeAction>): Promise<StopEvent>;
  /** Makes a running resume() stop with { kind: 'interrupt' } (no-op when stopped). */
  interrupt(): void;
  /** Sets a debug-register breakpoint/watchpoint on every vCPU; false when all four are in use or the length is invalid. */
  insertBreakpoint(kind: HwBreakpointKind, address: bigint, length: number): boolean;
  removeBreakpoint(kind: HwBreakpointKind, address: bigint, length: number): boolean;
  /** Ends the run (gdb's k): the run's reason becomes 'stopped'. */
  kill(): void;
  /** Removes every breakpoint and lets the guest run on freely (gdb's D). */
  detach(): void;
}
