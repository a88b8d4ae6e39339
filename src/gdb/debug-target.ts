/**
 * The GDB stub's view of a vCPU (DebugTarget), on the main thread: breakpoints and watchpoints
 * in the four x86 debug registers (KVM_SET_GUEST_DEBUG), single-step, registers through the
 * vCPU fd and memory through this thread's view of guest RAM — all while the vCPU thread waits,
 * stopped, in the exit loop.
 */
import type { CpuMode, DebugTarget, HwBreakpointKind, StopReason } from './target.js';
import { CR0_PG, CR4_LA57, EFER_LMA, cpuMode, type KvmRegs, type KvmSregs } from '../kvm/structs.js';
import { isCanonical, walkLinear } from '../memory/linear.js';
import { KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW_BP } from '../kvm/x86.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { DebugStop, VcpuRunResult } from '../vcpu/exit-loop.js';
import type { Vcpu } from '../vcpu/vcpu.js';

/** x86 has four address breakpoint registers, DR0-DR3. */
const DEBUG_REGISTERS = 4;
// DR6: which condition fired.
const DR6_B0 = 1n; // B0-B3: bits 0-3
const DR6_BS = 1n << 14n; // single step
// DR7: per register n, a local-enable bit (2n), and R/W (bits 16+4n) and LEN (bits 18+4n) fields.
const DR7_L0 = 1n;
const DR7_RW_SHIFT = 16n;
const DR7_LEN_SHIFT = 18n;
const DR7_FIELD_BITS = 4n;
const DR7_RW: Record<HwBreakpointKind, bigint> = { exec: 0n, write: 1n, read: 3n, access: 3n }; // x86 has no read-only watch
const DR7_LEN: Readonly<Record<number, bigint>> = { 1: 0n, 2: 1n, 4: 3n, 8: 2n };

interface Slot {
  kind: HwBreakpointKind;
  address: bigint;
  length: number;
}

export class VcpuDebugTarget implements DebugTarget {
  private readonly slots: (Slot | undefined)[] = new Array(DEBUG_REGISTERS).fill(undefined);
  private stopped = false;
  private ended: StopReason | undefined;
  private waiting: ((why: StopReason) => void) | undefined;
  private pendingStop: StopReason | undefined;
  private stepping = false;
  private detached = false;

  /**
   * @param stopComing the vCPU will stop by itself (--gdb-wait): waitForStop() must not ask it to,
   *   or that request, answered by the coming stop, would stop it again once gdb continues.
   */
  constructor(
    private readonly vcpu: Vcpu,
    private readonly memory: GuestMemory,
    private stopComing = false,
  ) {}

  /** Wire to Vcpu.run's onDebugStop. */
  onDebugStop(why: DebugStop): void {
    this.stopped = true;
    if (this.detached) return this.vcpu.resume();
    this.deliver(this.stopReason(why));
  }

  /** Call when the run has ended (the vCPU is gone): a pending resume() hears how. */
  onRunEnd(result: VcpuRunResult | Error): void {
    const outcome = result instanceof Error ? undefined : result.outcome;
    this.ended =
      outcome?.reason === 'crash' || outcome === undefined
        ? { kind: 'crashed', description: outcome?.reason === 'crash' ? outcome.description : String(result) }
        : { kind: 'exited', code: outcome.reason === 'debug-exit' ? outcome.exitCode : 0 };
    this.deliver(this.ended);
  }

  /** Resolves once the vCPU is stopped for the debugger (asking it to stop if it runs). */
  waitForStop(): Promise<StopReason> {
    if (this.ended) return Promise.resolve(this.ended);
    if (this.pendingStop) {
      const why = this.pendingStop;
      return Promise.resolve(why);
    }
    const stopped = new Promise<StopReason>((resolve) => (this.waiting = resolve));
    if (!this.stopComing) this.interrupt();
    this.stopComing = false;
    return stopped;
  }

  mode(): CpuMode {
    return cpuMode(this.vcpu.getSregs());
  }

  getRegs(): KvmRegs {
    return this.vcpu.getRegs();
  }

  setRegs(regs: KvmRegs): void {
    this.vcpu.setRegs(regs);
  }

  getSregs(): KvmSregs {
    return this.vcpu.getSregs();
  }

  setSregs(sregs: KvmSregs): void {
    this.vcpu.setSregs(sregs);
  }

  readMemory(address: bigint, length: number): Uint8Array | undefined {
    const out = new Uint8Array(length);
    return this.eachPage(address, length, (physical, offset, n) => out.set(this.memory.bytes.subarray(physical, physical + n), offset))
      ? out
      : undefined;
  }

  writeMemory(address: bigint, data: Uint8Array): boolean {
    return this.eachPage(address, data.length, (physical, offset, n) => this.memory.bytes.set(data.subarray(offset, offset + n), physical));
  }

  resume(how: 'continue' | 'step'): Promise<StopReason> {
    if (this.ended) return Promise.resolve(this.ended);
    this.stepping = how === 'step';
    this.applyGuestDebug();
    const next = new Promise<StopReason>((resolve) => (this.waiting = resolve));
    this.pendingStop = undefined;
    this.stopped = false;
    this.vcpu.resume();
    return next;
  }

  interrupt(): void {
    if (!this.stopped && !this.ended) void this.vcpu.pause();
  }

  insertBreakpoint(kind: HwBreakpointKind, address: bigint, length: number): boolean {
    if (kind !== 'exec' && DR7_LEN[length] === undefined) return false;
    const free = this.slots.findIndex((slot) => slot === undefined);
    if (free < 0) return false;
    this.slots[free] = { kind, address, length: kind === 'exec' ? 1 : length };
    return true;
  }

  removeBreakpoint(kind: HwBreakpointKind, address: bigint, length: number): boolean {
    const at = this.slots.findIndex((s) => s?.kind === kind && s.address === address && (kind === 'exec' || s.length === length));
    if (at < 0) return false;
    this.slots[at] = undefined;
    return true;
  }

  kill(): void {
    this.vcpu.stop();
  }

  detach(): void {
    this.detached = true;
    this.slots.fill(undefined);
    this.stepping = false;
    if (this.ended) return;
    this.vcpu.setGuestDebug({ control: 0, debugreg: [0n, 0n, 0n, 0n], dr7: 0n });
    if (this.stopped) {
      this.stopped = false;
      this.vcpu.resume();
    }
  }

  private deliver(why: StopReason): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    if (waiting) waiting(why);
    else this.pendingStop = why;
  }

  private stopReason(why: DebugStop): StopReason {
    if (why.kind === 'interrupt') return { kind: 'interrupt' };
    for (let n = 0; n < DEBUG_REGISTERS; n++) {
      const slot = this.slots[n];
      if (!slot || (why.dr6 & (DR6_B0 << BigInt(n))) === 0n) continue;
      if (slot.kind === 'exec') return { kind: 'breakpoint', address: slot.address };
      return {
        kind: 'watchpoint',
        watch: slot.kind === 'write' ? 'write' : slot.kind === 'read' ? 'read' : 'access',
        address: slot.address,
      };
    }
    if (why.dr6 & DR6_BS || this.stepping) return { kind: 'step' };
    return { kind: 'breakpoint', address: why.pc };
  }

  /** KVM_SET_GUEST_DEBUG from the breakpoint slots and the stepping flag. */
  private applyGuestDebug(): void {
    const debugreg: [bigint, bigint, bigint, bigint] = [0n, 0n, 0n, 0n];
    let dr7 = 0n;
    this.slots.forEach((slot, n) => {
      if (!slot) return;
      const shift = BigInt(n) * DR7_FIELD_BITS;
      debugreg[n] = slot.address;
      dr7 |=
        (DR7_L0 << BigInt(2 * n)) |
        (DR7_RW[slot.kind] << (DR7_RW_SHIFT + shift)) |
        ((DR7_LEN[slot.length] ?? 0n) << (DR7_LEN_SHIFT + shift));
    });
    const control = KVM_GUESTDBG_ENABLE | (dr7 ? KVM_GUESTDBG_USE_HW_BP : 0) | (this.stepping ? KVM_GUESTDBG_SINGLESTEP : 0);
    this.vcpu.setGuestDebug({ control, debugreg, dr7 });
  }

  /**
   * Walks [address, address+length) page by page, translating guest-virtual to guest-physical
   * when paging is on (KVM_TRANSLATE); false if any page is unmapped or outside RAM, or if the
   * address is not canonical in long mode (the CPU would fault on it, so gdb must not see memory).
   */
  private eachPage(address: bigint, length: number, visit: (physical: number, offset: number, n: number) => void): boolean {
    const sregs = this.vcpu.getSregs();
    const la57 = (sregs.cr4 & CR4_LA57) !== 0n;
    if (sregs.efer & EFER_LMA && (!isCanonical(address, la57) || !isCanonical(address + BigInt(Math.max(length - 1, 0)), la57)))
      return false;
    const paging = (sregs.cr0 & CR0_PG) !== 0n;
    const translate = paging ? (linear: bigint) => this.vcpu.fd.translate(linear) : undefined;
    return walkLinear(this.memory.bytes, address, length, translate, visit) === length;
  }
}
