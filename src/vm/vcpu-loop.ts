/**
 * The exit loop: KVM_RUN, decode the exit, hand it to the device that owns the address, repeat,
 * until a device, a halt, a crash or a stop request ends the run. It runs in the vCPU's own
 * thread; the main thread only ever talks to it through VcpuControl.
 */
import { KVM_EXIT_NAMES, KVM_INTERNAL_ERROR_NAMES } from '../kvm/constants.js';
import type { VcpuFd } from '../kvm/ioctls.js';
import { RFLAGS_IF } from '../kvm/structs.js';
import { KVM_MP_STATE_HALTED, KVM_MP_STATE_INIT_RECEIVED, KVM_MP_STATE_UNINITIALIZED } from '../kvm/x86.js';
import { KVM_MMIO_DATA_MAX, KVM_RUN_MMIO_DATA, type VcpuExit } from '../kvm/run.js';
import type { ExitDevices } from './dispatch.js';
import type { GuestMemory } from './guest-memory.js';
import { formatVcpuState } from './register-dump.js';
import type { VcpuControl } from './vcpu-control.js';

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
   * Stop here for the main thread (tell it, wait for its command): on a pause request, and on
   * debug exits when `debugger` is set. Returns false when the main thread ends the run instead
   * of resuming it. Without it, pause requests are ignored.
   */
  debugStop?: (why: DebugStop) => boolean;
  /** A debugger is attached: debug exits stop the vCPU (without one they are ignored). */
  debugger?: boolean;
  /** Stop for the debugger before the first instruction (--gdb-wait). */
  waitAtStart?: boolean;
  /** Dump the registers into the result at the end, whatever ended the run. */
  dumpOnExit?: boolean;
}

export function newExitCounts(): ExitCounts {
  return { io: 0, mmio: 0, hlt: 0, shutdown: 0, intr: 0, internalError: 0, failEntry: 0, debug: 0, unknown: 0 };
}

/** A KVM_RUN that a signal ended (-EINTR), as the observers see it. */
const KICKED: VcpuExit = { kind: 'intr' };


export function runVcpu(vcpu: VcpuFd, memory: GuestMemory, devices: ExitDevices, control: VcpuControl, hooks: LoopHooks = {}): VcpuRunResult {
  const result = runExitLoop(vcpu, memory, devices, control, hooks);
  const stats = hooks.observer?.finish?.();
  const state = hooks.dumpOnExit && result.outcome.reason !== 'crash' ? vcpuState(vcpu, memory) : undefined;
  return { ...result, ...(stats === undefined ? {} : { stats }), ...(state === undefined ? {} : { state }) };
}

function runExitLoop(vcpu: VcpuFd, memory: GuestMemory, devices: ExitDevices, control: VcpuControl, hooks: LoopHooks): VcpuRunResult {
  const exits = newExitCounts();
  const run = vcpu.kvmRun;
  const data = new DataView(run.bytes.buffer);
  const mmioData = run.bytes.subarray(KVM_RUN_MMIO_DATA, KVM_RUN_MMIO_DATA + KVM_MMIO_DATA_MAX);
  const { observer, debugStop } = hooks;
  const timed = observer?.timed === true;
  const stopped = (): VcpuRunResult => ({ outcome: { reason: 'stopped' }, exits });
  control.publishThread();
  try {
    if (hooks.waitAtStart && debugStop && !debugStop({ kind: 'interrupt' })) return stopped();
    for (;;) {
      if (control.stopRequested) return stopped();
      const t0 = timed ? performance.now() : 0;
      if (!vcpu.run()) {
        // Kicked. Clear immediate_exit before looking at the requests: a kick that lands after
        // this sets it again, so no request is missed.
        exits.intr++;
        run.immediateExit = false;
        if (observer) observer.afterExit(KICKED, undefined, timed ? (performance.now() - t0) * 1e6 : 0, 0);
        if (control.takePoll() && haltedForGood(vcpu, control)) return { outcome: { reason: 'halt' }, exits };
        if (control.takePause() && debugStop && !debugStop({ kind: 'interrupt' })) return stopped();
        continue;
      }
      const t1 = timed ? performance.now() : 0;
      const exit = run.exit();
      let device: string | undefined;
      switch (exit.kind) {
        case 'io':
          exits.io++;
          device = devices.io(exit, data);
          break;
        case 'mmio':
          exits.mmio++;
          device = devices.mmio(exit, mmioData.subarray(0, exit.len));
          break;
        case 'debug':
          exits.debug++;
          if (hooks.onStep) hooks.onStep();
          else if (hooks.debugger && debugStop && !debugStop({ kind: 'debug', exception: exit.exception, pc: exit.pc, dr6: exit.dr6 })) return stopped();
          break;
        case 'hlt':
          // Only without an in-kernel irqchip does HLT exit, and then nothing can wake the vCPU.
          exits.hlt++;
          return { outcome: { reason: 'halt' }, exits };
        case 'intr':
          exits.intr++;
          break;
        case 'shutdown':
          exits.shutdown++;
          return crash(vcpu, memory, 'triple fault (KVM_EXIT_SHUTDOWN)', exits);
        case 'internal-error':
          exits.internalError++;
          return crash(
            vcpu,
            memory,
            `KVM internal error: ${KVM_INTERNAL_ERROR_NAMES[exit.suberror] ?? 'suberror'} (KVM_EXIT_INTERNAL_ERROR, suberror ${exit.suberror}` +
              `${exit.data.length ? `, data ${exit.data.map((d) => `0x${d.toString(16)}`).join(' ')}` : ''})`,
            exits,
          );
        case 'fail-entry':
          exits.failEntry++;
          return crash(
            vcpu,
            memory,
            `VM entry failed (KVM_EXIT_FAIL_ENTRY, hardware reason 0x${exit.hardwareEntryFailureReason.toString(16)} on CPU ${exit.cpu})`,
            exits,
          );
        case 'unknown':
          exits.unknown++;
          return crash(
            vcpu,
            memory,
            `unhandled exit ${KVM_EXIT_NAMES[exit.exitReason] ?? `reason ${exit.exitReason}`} (hardware exit reason 0x${exit.hardwareExitReason.toString(16)})`,
            exits,
          );
        default: {
          const never: never = exit;
          throw new Error(`unreachable exit ${JSON.stringify(never)}`);
        }
      }
      if (observer) observer.afterExit(exit, device, (t1 - t0) * 1e6, timed ? (performance.now() - t1) * 1e6 : 0);
      const stop = devices.stop;
      if (stop !== undefined) return { outcome: stop, exits };
    }
  } finally {
    control.retractThread();
  }
}

/**
 * With the in-kernel irqchip a halted vCPU sleeps inside KVM_RUN. Halted with interrupts off,
 * only an NMI or INIT could wake it, and tskvm sends neither: the guest is done.
 */
function haltedForGood(vcpu: VcpuFd, control: VcpuControl): boolean {
  const state = vcpu.getMpState();
  // An AP not yet started can only be woken by another vCPU: the main thread weighs that.
  control.setWaitingForSipi(state === KVM_MP_STATE_UNINITIALIZED || state === KVM_MP_STATE_INIT_RECEIVED);
  return state === KVM_MP_STATE_HALTED && (vcpu.getRegs().rflags & RFLAGS_IF) === 0n;
}

function crash(vcpu: VcpuFd, memory: GuestMemory, description: string, exits: ExitCounts): VcpuRunResult {
  return { outcome: { reason: 'crash', description, state: vcpuState(vcpu, memory) }, exits };
}

/** The register dump, with code at CS:RIP found through the guest's page tables when paging is on. */
function vcpuState(vcpu: VcpuFd, memory: GuestMemory): string {
  try {
    return formatVcpuState(vcpu.getRegs(), vcpu.getSregs(), memory.bytes, (linear) => vcpu.translate(linear));
  } catch (err) {
    return `(registers unavailable: ${(err as Error).message})`;
  }
}
