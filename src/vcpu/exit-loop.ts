/**
 * The exit loop: KVM_RUN, decode the exit, hand it to the device that owns the address, repeat,
 * until a device, a halt, a crash or a stop request ends the run. It runs in the vCPU's own
 * thread against a small LoopVcpu interface (a VcpuFd in production, a fake in the unit tests),
 * in three parts, as Firecracker's run_emulation/handle_kvm_exit: `handleRequests` (what the
 * main thread asked for, after a kick), `handleExit` (one exit, one step), and `runVcpu`, the
 * driver between them.
 */
import { KVM_EXIT_NAMES, KVM_INTERNAL_ERROR_NAMES } from '../kvm/constants.js';
import type { VcpuExit } from '../kvm/run.js';
import { RFLAGS_IF, type KvmRegs } from '../kvm/structs.js';
import { KVM_MP_STATE_HALTED, KVM_MP_STATE_INIT_RECEIVED, KVM_MP_STATE_UNINITIALIZED } from '../kvm/x86.js';
import type { IoCpu, IoCpuRegister } from '../devices/device.js';
import type { ExitDevices } from '../devices/dispatch.js';
import type { ResumeCommand, VcpuControl } from './control.js';

/** What the exit loop needs of a vCPU. */
export interface LoopVcpu {
  /** One KVM_RUN: true when it exited for a reason that `exit()` decodes, false when kicked (-EINTR). */
  run(): boolean;
  /**
   * As run(), with the exits to the ports `unassigned` marks taken on the native side (writes
   * dropped, all ones read) and counted in handled[0]. Optional: without it every exit comes back.
   */
  runPastUnassigned?(unassigned: Uint8Array, handled: Float64Array): boolean;
  /** The exit the last KVM_RUN reported. */
  exit(): VcpuExit;
  /** kvm_run.immediate_exit = 0, once a kick has been seen. */
  clearImmediateExit(): void;
  /** KVM_GET_MP_STATE. */
  getMpState(): number;
  getRegs(): KvmRegs;
  setRegs(regs: KvmRegs): void;
}

/** Exits handled, by kind. */
export interface ExitCounts {
  io: number;
  mmio: number;
  hlt: number;
  shutdown: number;
  intr: number;
  internalError: number;
  failEntry: number;
  debug: number;
  unknown: number;
}

export type VcpuOutcome =
  | { reason: 'debug-exit'; exitCode: number }
  | { reason: 'halt' }
  | { reason: 'reset' }
  /** ACPI S5 (soft-off): the guest wrote SLP_EN with the S5 type to PM1a control. */
  | { reason: 'poweroff' }
  /** The main thread asked the vCPU to stop (timeout, signal, `stop()`). */
  | { reason: 'stopped' }
  | { reason: 'crash'; description: string; state: string };

export interface VcpuRunResult {
  outcome: VcpuOutcome;
  exits: ExitCounts;
  /** Present when the run was asked for statistics (ExitStats.toJSON()). */
  stats?: unknown;
  /** Present when the run was asked for a final register dump. */
  state?: string;
  /** Debug output (trace, step) that could not be written. */
  outputErrors?: string[];
}

/**
 * Watches the exit loop without changing it (tracing, statistics). Called after every exit
 * the loop handled, with the device that took it (undefined: unassigned) and, when `timed`,
 * the KVM_RUN and handler times.
 */
export interface ExitObserver {
  readonly timed: boolean;
  afterExit(exit: VcpuExit, device: string | undefined, runNs: number, handlerNs: number): void;
  /** Called once at the end; its value becomes the result's `stats`. */
  finish?(): unknown;
}

/**
 * Why the vCPU stopped and waits for the main thread: a pause request (pause(), gdb's Ctrl-C,
 * --gdb-wait) or a debug exception under the debugger. DebugTarget turns it into gdb's terms.
 */
export type DebugStop = { kind: 'interrupt' } | { kind: 'debug'; exception: number; pc: bigint; dr6: bigint };

export interface LoopHooks {
  observer?: ExitObserver;
  /** KVM_EXIT_DEBUG while single-stepping for --step: print, then go on. */
  onStep?: () => void;
  /**
   * Paused for the main thread: tell it, and wait for its command. Called on a pause request,
   * and on debug exits when `debugger` is set. Without it, pause requests are ignored.
   */
  paused?: (why: DebugStop) => ResumeCommand;
  /** A debugger is attached: debug exits pause the vCPU (without one they are ignored). */
  debugger?: boolean;
  /** Pause before the first instruction (--gdb-wait). */
  waitAtStart?: boolean;
  /** Dump the registers into the result at the end, whatever ended the run. */
  dumpOnExit?: boolean;
  /** The registers, decoded, for a crash report or --dump-on-exit. */
  describe?: () => string;
  /** At the end: debug output that could not be written. */
  outputErrors?: () => string[];
  /**
   * The machine is asleep (ExitDevices.suspended, ACPI S3): wait for its wake event and put the
   * vCPU where the firmware resumes it. Returns undefined to go on, or how the run ends (a stop
   * request while asleep, a reboot). Without it, a sleep request is ignored and the guest runs on.
   */
  suspend?: (stopRequested: () => boolean) => VcpuOutcome | undefined;
}

export function newExitCounts(): ExitCounts {
  return { io: 0, mmio: 0, hlt: 0, shutdown: 0, intr: 0, internalError: 0, failEntry: 0, debug: 0, unknown: 0 };
}

/** A KVM_RUN that a signal ended (-EINTR), as the observers see it. */
const KICKED: VcpuExit = { kind: 'intr' };
const STOPPED: VcpuOutcome = { reason: 'stopped' };
const HALTED: VcpuOutcome = { reason: 'halt' };

/** The state one run of the loop carries. */
interface LoopContext {
  readonly vcpu: LoopVcpu;
  readonly devices: ExitDevices;
  readonly control: VcpuControl;
  readonly hooks: LoopHooks;
  readonly exits: ExitCounts;
  readonly ioCpu: LazyIoCpu;
  readonly step: ExitStep;
  /** I/O exits the native side took (runPastUnassigned), not yet in `exits`. */
  readonly unassignedExits: Float64Array;
}

/**
 * The registers for one I/O exit (IoCpu): KVM_GET_REGS on the first use, KVM_SET_REGS at the end
 * of the exit if a device changed them. One per loop, reused: an exit whose device never asks
 * costs one comparison (`finish`).
 */
export class LazyIoCpu implements IoCpu {
  private regs: KvmRegs | undefined;
  private dirty = false;

  constructor(private readonly vcpu: LoopVcpu) {}

  get(register: IoCpuRegister): bigint {
    this.regs ??= this.vcpu.getRegs();
    return this.regs[register];
  }

  set(register: IoCpuRegister, value: bigint): void {
    this.regs ??= this.vcpu.getRegs();
    this.regs[register] = BigInt.asUintN(64, value);
    this.dirty = true;
  }

  /** End of the exit: write back what changed, forget the rest (the next exit fetches afresh). */
  finish(): void {
    if (this.regs === undefined) return;
    if (this.dirty) this.vcpu.setRegs(this.regs);
    this.regs = undefined;
    this.dirty = false;
  }
}

/** The loop's state for one run: `startLoop` makes it, `runToKick` and `handleRequests` advance it, `finishLoop` reports. */
export type LoopRun = LoopContext;

/** What `runToKick` returns when KVM_RUN was interrupted (a kick, or a slice timer): look at the requests. */
export const KICK = Symbol('kick');
/** ... when the machine went to sleep (ACPI S3): the driver waits for the wake event. */
export const SUSPEND = Symbol('suspend');
/** What `handleRequests` returns for a pause request: the driver pauses (sync or async, as its thread allows). */
export const PAUSE = Symbol('pause');

/** Sets up a run: the thread is published so that kicks reach it. */
export function startLoop(vcpu: LoopVcpu, devices: ExitDevices, control: VcpuControl, hooks: LoopHooks = {}): LoopRun {
  control.publishThread();
  return {
    vcpu,
    devices,
    control,
    hooks,
    exits: newExitCounts(),
    ioCpu: new LazyIoCpu(vcpu),
    step: { outcome: undefined },
    unassignedExits: new Float64Array(1),
  };
}

/**
 * Runs the vCPU in the calling thread until the run ends (the outcome), a kick interrupts
 * KVM_RUN (KICK: the caller looks at the requests), or the machine sleeps (SUSPEND).
 */
export function runToKick(ctx: LoopRun): VcpuOutcome | typeof KICK | typeof SUSPEND {
  const step = runExits(ctx);
  const handled = ctx.unassignedExits;
  ctx.exits.io += handled[0]!;
  handled[0] = 0;
  return step;
}

function runExits(ctx: LoopContext): VcpuOutcome | typeof KICK | typeof SUSPEND {
  const { vcpu, devices, control, hooks, step, unassignedExits } = ctx;
  const { observer } = hooks;
  const timed = observer?.timed === true;
  // Exits to ports no device decodes need no JavaScript (a hobby kernel's io_wait on port 0x80, a
  // probe of absent hardware): the native side takes them, unless an observer must see every exit.
  const unassigned = observer === undefined && vcpu.runPastUnassigned !== undefined ? devices.unassignedPorts : undefined;
  for (;;) {
    if (control.stopRequested) return STOPPED;
    const t0 = timed ? performance.now() : 0;
    if (!(unassigned === undefined ? vcpu.run() : vcpu.runPastUnassigned!(unassigned, unassignedExits))) {
      ctx.exits.intr++;
      // Clear immediate_exit before looking at the requests: a kick that lands after this
      // sets it again, so no request is missed.
      vcpu.clearImmediateExit();
      observer?.afterExit(KICKED, undefined, timed ? (performance.now() - t0) * 1e6 : 0, 0);
      return KICK;
    }
    const t1 = timed ? performance.now() : 0;
    const exit = vcpu.exit();
    const device = handleExit(ctx, exit);
    observer?.afterExit(exit, device, (t1 - t0) * 1e6, timed ? (performance.now() - t1) * 1e6 : 0);
    const outcome = step.outcome ?? devices.stop;
    if (outcome !== undefined) return outcome;
    if (devices.suspended === true) return SUSPEND;
  }
}

/** Ends a run: the thread retracted, the result assembled (statistics, a final dump, output errors). */
export function finishLoop(ctx: LoopRun, outcome: VcpuOutcome): VcpuRunResult {
  ctx.control.retractThread();
  const { hooks } = ctx;
  const stats = hooks.observer?.finish?.();
  const state = hooks.dumpOnExit && outcome.reason !== 'crash' ? describe(ctx) : undefined;
  const outputErrors = hooks.outputErrors?.() ?? [];
  return {
    outcome,
    exits: ctx.exits,
    ...(stats === undefined ? {} : { stats }),
    ...(state === undefined ? {} : { state }),
    ...(outputErrors.length ? { outputErrors } : {}),
  };
}

/**
 * Runs the vCPU until the run ends, blocking the calling thread (a vCPU thread of its own): the
 * driver between request handling and exit handling. Pauses and sleeps wait in the thread.
 */
export function runVcpu(vcpu: LoopVcpu, devices: ExitDevices, control: VcpuControl, hooks: LoopHooks = {}): VcpuRunResult {
  const ctx = startLoop(vcpu, devices, control, hooks);
  let outcome: VcpuOutcome | undefined;
  try {
    // Requests made before the thread ran (a pause during start-up) are answered first.
    outcome = hooks.waitAtStart ? pause(ctx, { kind: 'interrupt' }) : undefined;
    outcome ??= requestsOrPause(ctx);
    while (outcome === undefined) {
      const step = runToKick(ctx);
      if (step === KICK) outcome = requestsOrPause(ctx);
      else if (step === SUSPEND) outcome = suspend(ctx);
      else outcome = step;
    }
  } catch (err) {
    control.retractThread();
    throw err;
  }
  return finishLoop(ctx, outcome);
}

/** The requests, with a pause taken here, in this thread. */
function requestsOrPause(ctx: LoopContext): VcpuOutcome | undefined {
  const outcome = handleRequests(ctx);
  return outcome === PAUSE ? pause(ctx, { kind: 'interrupt' }) : outcome;
}

/** After a kick: the main thread's requests, in order of precedence (a pause is left to the driver). */
export function handleRequests(ctx: LoopRun): VcpuOutcome | typeof PAUSE | undefined {
  const { control, devices } = ctx;
  if (control.stopRequested) return STOPPED;
  if (control.take('poll-input')) devices.pollInput();
  if (control.take('poll-timers')) devices.pollTimers();
  if (control.take('poll-halt') && haltedForGood(ctx)) return HALTED;
  if (control.take('pause')) return PAUSE;
  return undefined;
}

/** The outcome of an exit that ends the run: handleExit leaves it in one shared slot, so an exit allocates nothing. */
interface ExitStep {
  outcome: VcpuOutcome | undefined;
}

/** One exit: returns the device that took it (for the observers); `ctx.step.outcome` is set when the exit ends the run. */
export function handleExit(ctx: LoopContext, exit: VcpuExit): string | undefined {
  const { exits, devices, hooks, step } = ctx;
  step.outcome = undefined;
  switch (exit.kind) {
    case 'io': {
      exits.io++;
      const device = devices.io(exit, ctx.ioCpu);
      ctx.ioCpu.finish();
      return device;
    }
    case 'mmio':
      exits.mmio++;
      return devices.mmio(exit);
    case 'debug':
      exits.debug++;
      if (hooks.onStep) hooks.onStep();
      else if (hooks.debugger) step.outcome = pause(ctx, { kind: 'debug', exception: exit.exception, pc: exit.pc, dr6: exit.dr6 });
      return undefined;
    case 'hlt':
      // Only without an in-kernel irqchip does HLT exit, and then nothing can wake the vCPU.
      exits.hlt++;
      step.outcome = HALTED;
      return undefined;
    case 'intr':
      exits.intr++;
      return undefined;
    case 'shutdown':
      exits.shutdown++;
      step.outcome = crash(ctx, 'triple fault (KVM_EXIT_SHUTDOWN)');
      return undefined;
    case 'internal-error': {
      exits.internalError++;
      const name = KVM_INTERNAL_ERROR_NAMES[exit.suberror] ?? 'suberror';
      const data = exit.data.length ? `, data ${exit.data.map((d) => `0x${d.toString(16)}`).join(' ')}` : '';
      step.outcome = crash(ctx, `KVM internal error: ${name} (KVM_EXIT_INTERNAL_ERROR, suberror ${exit.suberror}${data})`);
      return undefined;
    }
    case 'fail-entry':
      exits.failEntry++;
      step.outcome = crash(
        ctx,
        `VM entry failed (KVM_EXIT_FAIL_ENTRY, hardware reason 0x${exit.hardwareEntryFailureReason.toString(16)} on CPU ${exit.cpu})`,
      );
      return undefined;
    case 'unknown': {
      exits.unknown++;
      const name = KVM_EXIT_NAMES[exit.exitReason] ?? `reason ${exit.exitReason}`;
      step.outcome = crash(ctx, `unhandled exit ${name} (hardware exit reason 0x${exit.hardwareExitReason.toString(16)})`);
      return undefined;
    }
    default: {
      const never: never = exit;
      throw new Error(`unreachable exit ${JSON.stringify(never)}`);
    }
  }
}

/**
 * Asleep (S3): the hook waits for the wake event and resets the vCPU to the waking vector. A
 * loop without the hook lets the guest run on, as a machine without sleep states would.
 */
function suspend(ctx: LoopContext): VcpuOutcome | undefined {
  const { control } = ctx;
  return ctx.hooks.suspend?.(() => control.stopRequested);
}

/** Paused for the main thread; undefined when it says go on. Without a `paused` hook, pauses are ignored. */
function pause(ctx: LoopContext, why: DebugStop): VcpuOutcome | undefined {
  const paused = ctx.hooks.paused;
  if (!paused) return undefined;
  ctx.control.take('pause'); // pausing anyway: a pause asked for meanwhile is answered by this one
  if (paused(why) === 'end' || ctx.control.stopRequested) return STOPPED;
  return undefined;
}

/**
 * With the in-kernel irqchip a halted vCPU sleeps inside KVM_RUN. Halted with interrupts off,
 * only an NMI or INIT could wake it, and tskvm sends neither: the guest is done.
 */
function haltedForGood(ctx: LoopContext): boolean {
  const state = ctx.vcpu.getMpState();
  // An AP not yet started can only be woken by another vCPU: the main thread weighs that.
  ctx.control.setWaitingForSipi(state === KVM_MP_STATE_UNINITIALIZED || state === KVM_MP_STATE_INIT_RECEIVED);
  return state === KVM_MP_STATE_HALTED && (ctx.vcpu.getRegs().rflags & RFLAGS_IF) === 0n;
}

function crash(ctx: LoopContext, description: string): VcpuOutcome {
  return { reason: 'crash', description, state: describe(ctx) };
}

function describe(ctx: LoopContext): string {
  try {
    return ctx.hooks.describe?.() ?? '';
  } catch (err) {
    return `(registers unavailable: ${(err as Error).message})`;
  }
}
