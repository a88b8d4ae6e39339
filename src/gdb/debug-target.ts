/**
 * The GDB stub's view of the machine's vCPUs (DebugTarget), on the main thread, all-stop as QEMU's
 * stub: breakpoints and watchpoints in the four x86 debug registers, set on every vCPU
 * (KVM_SET_GUEST_DEBUG per vCPU before it runs), single-step per vCPU, registers through each
 * vCPU's fd and memory through this thread's view of guest RAM — all while the vCPU threads wait,
 * paused, in their exit loops. When one vCPU stops (a breakpoint, a step, Ctrl-C), the others are
 * paused before gdb hears of it; an AP still waiting for INIT/SIPI is paused (kicked out of
 * KVM_RUN) like the rest.
 */
import type { CpuMode, DebugTarget, HwBreakpointKind, ResumeAction, StopEvent, StopReason } from './target.js';
import { CR0_PG, CR4_LA57, EFER_LMA, cpuMode, type KvmRegs, type KvmSregs } from '../kvm/structs.js';
import { isCanonical, walkLinear } from '../memory/linear.js';
import {
  KVM_GUESTDBG_ENABLE,
  KVM_GUESTDBG_SINGLESTEP,
  KVM_GUESTDBG_USE_HW_BP,
  KVM_MP_STATE_HALTED,
  KVM_MP_STATE_INIT_RECEIVED,
  KVM_MP_STATE_UNINITIALIZED,
} from '../kvm/x86.js';
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

/** One vCPU as the debugger tracks it. */
interface Cpu {
  readonly vcpu: Vcpu;
  /** Its run has ended (the guest halted it for good, or the machine's run is over). */
  ended: boolean;
  /** Single-stepping in the current resume. */
  stepping: boolean;
  /** A watchpoint that fired while the vCPUs were being stopped for another's stop: reported when it next resumes. */
  pending: StopReason | undefined;
  /**
   * A pause request crossed a stop on its way (the vCPU was already pausing): the vCPU will stop
   * again, 'interrupt', as soon as it resumes. That stop is nobody's to report.
   */
  staleInterrupt: boolean;
}

/**
 * Paused in its thread, or its run is over. The Vcpu's own state, not a copy: a pause for someone
 * else (a snapshot, GuestRun.pause) and the resume after it keep it right.
 */
function stopped(c: Cpu): boolean {
  return gone(c) || c.vcpu.state === 'paused';
}

/** Its run is over (the Vcpu says so as soon as it is, before onVcpuEnd is called). */
function gone(c: Cpu): boolean {
  return c.ended || c.vcpu.state === 'stopped';
}

/** A resume() in flight: settles once every vCPU has stopped after the first stop. */
interface Flight {
  resolve: (event: StopEvent) => void;
  first: StopEvent | undefined;
}

export class VcpuDebugTarget implements DebugTarget {
  private readonly slots: (Slot | undefined)[] = new Array(DEBUG_REGISTERS).fill(undefined);
  private readonly cpus: Cpu[];
  private ended: StopReason | undefined;
  private flight: Flight | undefined;
  /** interrupt() was called in this resume: an 'interrupt' stop is gdb's Ctrl-C, not a stale pause request. */
  private interruptAsked = false;
  private detached = false;

  constructor(
    vcpus: readonly Vcpu[],
    private readonly memory: GuestMemory,
  ) {
    this.cpus = vcpus.map((vcpu) => ({ vcpu, ended: false, stepping: false, pending: undefined, staleInterrupt: false }));
  }

  get cpuCount(): number {
    return this.cpus.length;
  }

  /** Wire to each vCPU's Vcpu.run onPaused. */
  onDebugStop(cpu: number, why: DebugStop): void {
    const c = this.cpu(cpu);
    if (this.detached) return c.vcpu.resume();
    const stale = why.kind === 'interrupt' && c.staleInterrupt;
    if (stale) c.staleInterrupt = false;
    if (c.vcpu.pauseRequested) c.staleInterrupt = true;
    const reason = this.stopReason(c, why);
    const flight = this.flight;
    if (!flight || flight.first) {
      // Stopped for someone else's stop (or at start): a watchpoint's write would be lost, so keep it.
      if (reason.kind === 'watchpoint') c.pending = reason;
      return;
    }
    if (reason.kind === 'interrupt' && !this.interruptAsked) {
      // Not gdb's Ctrl-C. A stale pause goes on; someone else's (a snapshot, GuestRun.pause) keeps
      // the vCPU until they resume it, and gdb never hears of it.
      if (stale) c.vcpu.resume();
      return;
    }
    this.firstStop(flight, { cpu, reason });
  }

  /** Call when vCPU `cpu`'s run has ended (the machine's may go on: an AP halted for good). */
  onVcpuEnd(cpu: number): void {
    const c = this.cpu(cpu);
    c.ended = true;
    const flight = this.flight;
    if (!flight || flight.first || this.cpus.some((other) => !stopped(other))) return;
    // Nothing runs any more, but the machine lives on: gdb hears of it as a stop of a vCPU still
    // there. (When the machine's run is ending, every vCPU's is: none is left, and onRunEnd answers.)
    const live = this.cpus.findIndex((other) => !gone(other));
    if (live >= 0) this.firstStop(flight, { cpu: live, reason: { kind: 'interrupt' } });
  }

  /** Call when the run has ended (every vCPU is gone): a pending resume() hears how. */
  onRunEnd(result: VcpuRunResult | Error): void {
    const outcome = result instanceof Error ? undefined : result.outcome;
    this.ended =
      outcome?.reason === 'crash' || outcome === undefined
        ? { kind: 'crashed', description: outcome?.reason === 'crash' ? outcome.description : String(result) }
        : { kind: 'exited', code: outcome.reason === 'debug-exit' ? outcome.exitCode : 0 };
    for (const c of this.cpus) c.ended = true;
    const flight = this.flight;
    this.flight = undefined;
    flight?.resolve({ cpu: 0, reason: this.ended });
  }

  /** Resolves once every vCPU is stopped for the debugger (asking those that run to stop). */
  async waitForStop(): Promise<void> {
    await this.stopAll();
  }

  alive(cpu: number): boolean {
    const c = this.cpus[cpu];
    return c !== undefined && !gone(c) && !this.ended;
  }

  describe(cpu: number): string {
    const c = this.cpu(cpu);
    if (!this.alive(cpu)) return `CPU#${cpu} [ended]`;
    const state = c.vcpu.fd.getMpState();
    if (state === KVM_MP_STATE_UNINITIALIZED || state === KVM_MP_STATE_INIT_RECEIVED) return `CPU#${cpu} [waiting for INIT/SIPI]`;
    return `CPU#${cpu} [${this.mode(cpu)} mode${state === KVM_MP_STATE_HALTED ? ', halted' : ''}]`;
  }

  mode(cpu: number): CpuMode {
    return cpuMode(this.cpu(cpu).vcpu.getSregs());
  }

  getRegs(cpu: number): KvmRegs {
    return this.cpu(cpu).vcpu.getRegs();
  }

  setRegs(cpu: number, regs: KvmRegs): void {
    this.cpu(cpu).vcpu.setRegs(regs);
  }

  getSregs(cpu: number): KvmSregs {
    return this.cpu(cpu).vcpu.getSregs();
  }

  setSregs(cpu: number, sregs: KvmSregs): void {
    this.cpu(cpu).vcpu.setSregs(sregs);
  }

  readMemory(cpu: number, address: bigint, length: number): Uint8Array | undefined {
    const out = new Uint8Array(length);
    return this.eachPage(cpu, address, length, (physical, offset, n) => out.set(this.memory.bytes.subarray(physical, physical + n), offset))
      ? out
      : undefined;
  }

  writeMemory(cpu: number, address: bigint, data: Uint8Array): boolean {
    return this.eachPage(cpu, address, data.length, (physical, offset, n) =>
      this.memory.bytes.set(data.subarray(offset, offset + n), physical),
    );
  }

  resume(actions: ReadonlyMap<number, ResumeAction>): Promise<StopEvent> {
    if (this.ended) return Promise.resolve({ cpu: 0, reason: this.ended });
    const runnable = [...actions].filter(([cpu]) => this.alive(cpu));
    // A watchpoint that fired on a vCPU while it was being stopped is its next stop.
    for (const [cpu] of runnable) {
      const c = this.cpu(cpu);
      if (c.pending) {
        const reason = c.pending;
        c.pending = undefined;
        return Promise.resolve({ cpu, reason });
      }
    }
    this.interruptAsked = false;
    const done = new Promise<StopEvent>((resolve) => (this.flight = { resolve, first: undefined }));
    for (const [cpu, how] of runnable) {
      const c = this.cpu(cpu);
      c.stepping = how === 'step';
      this.applyGuestDebug(c);
    }
    for (const [cpu] of runnable) this.cpu(cpu).vcpu.resume();
    if (runnable.length === 0) this.onVcpuEnd(actions.keys().next().value ?? 0); // nothing to run: report at once
    return done;
  }

  interrupt(): void {
    const flight = this.flight;
    if (!flight || flight.first) return;
    this.interruptAsked = true;
    const running = this.cpus.filter((c) => !stopped(c));
    for (const c of running) void c.vcpu.pause();
    // Nothing runs for gdb (someone else paused what did): Ctrl-C still stops the session.
    const live = this.cpus.findIndex((c) => !gone(c));
    if (running.length === 0 && live >= 0) this.firstStop(flight, { cpu: live, reason: { kind: 'interrupt' } });
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
    for (const c of this.cpus) c.vcpu.stop();
  }

  detach(): void {
    this.detached = true;
    this.slots.fill(undefined);
    if (this.ended) return;
    for (const c of this.cpus) {
      c.stepping = false;
      c.pending = undefined;
      if (c.ended || !stopped(c)) continue;
      // Only a stopped vCPU: KVM_SET_GUEST_DEBUG waits for a vCPU in KVM_RUN to leave it.
      c.vcpu.setGuestDebug({ control: 0, debugreg: [0n, 0n, 0n, 0n], dr7: 0n });
      c.vcpu.resume();
    }
  }

  private cpu(cpu: number): Cpu {
    const c = this.cpus[cpu];
    if (!c) throw new Error(`no vCPU ${cpu}: the machine has ${this.cpus.length}`);
    return c;
  }

  /** The first stop of a resume: stop every other vCPU, then tell gdb. */
  private firstStop(flight: Flight, event: StopEvent): void {
    flight.first = event;
    void this.stopAll().then(() => {
      if (this.flight !== flight) return; // the run ended meanwhile: onRunEnd answered
      this.flight = undefined;
      flight.resolve(event);
    });
  }

  /** Pauses every vCPU that runs; settles once all are paused or gone. */
  private async stopAll(): Promise<void> {
    await Promise.all(this.cpus.filter((c) => !stopped(c)).map((c) => c.vcpu.pause()));
  }

  private stopReason(c: Cpu, why: DebugStop): StopReason {
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
    if (why.dr6 & DR6_BS || c.stepping) return { kind: 'step' };
    return { kind: 'breakpoint', address: why.pc };
  }

  /** KVM_SET_GUEST_DEBUG on one vCPU from the breakpoint slots and its stepping flag. */
  private applyGuestDebug(c: Cpu): void {
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
    const control = KVM_GUESTDBG_ENABLE | (dr7 ? KVM_GUESTDBG_USE_HW_BP : 0) | (c.stepping ? KVM_GUESTDBG_SINGLESTEP : 0);
    c.vcpu.setGuestDebug({ control, debugreg, dr7 });
  }

  /**
   * Walks [address, address+length) page by page, translating guest-virtual to guest-physical
   * when paging is on (KVM_TRANSLATE); false if any page is unmapped or outside RAM, or if the
   * address is not canonical in long mode (the CPU would fault on it, so gdb must not see memory).
   */
  private eachPage(cpu: number, address: bigint, length: number, visit: (physical: number, offset: number, n: number) => void): boolean {
    const vcpu = this.cpu(cpu).vcpu;
    const sregs = vcpu.getSregs();
    const la57 = (sregs.cr4 & CR4_LA57) !== 0n;
    if (sregs.efer & EFER_LMA && (!isCanonical(address, la57) || !isCanonical(address + BigInt(Math.max(length - 1, 0)), la57)))
      return false;
    const paging = (sregs.cr0 & CR0_PG) !== 0n;
    const translate = paging ? (linear: bigint) => vcpu.fd.translate(linear) : undefined;
    return walkLinear(this.memory.bytes, address, length, translate, visit) === length;
  }
}
