/**
 * The exit loop: KVM_RUN, decode the exit, hand it to the device that owns the address, repeat,
 * until a device, a halt, a crash or a stop request ends the run. It runs in the vCPU's own
 * thread; the main thread only ever talks to it through VcpuControl.
 */
import { KVM_EXIT_NAMES, KVM_INTERNAL_ERROR_NAMES } from '../kvm/constants.js';
import type { VcpuFd } from '../kvm/ioctls.js';
import { RFLAGS_IF } from '../kvm/structs.js';
import { KVM_MP_STATE_HALTED } from '../kvm/x86.js';
import { KVM_RUN_MMIO_DATA, type VcpuExit } from '../kvm/run.js';
import type { PioSize } from '../devices/device.js';
import type { Board } from './board.js';
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
}

export function newExitCounts(): ExitCounts {
  return { io: 0, mmio: 0, hlt: 0, shutdown: 0, intr: 0, internalError: 0, failEntry: 0, unknown: 0 };
}

/** What an unassigned port or MMIO address reads as: all ones, as on an ISA bus with no driver. */
const ALL_ONES_BYTE = 0xff;

export function runVcpu(vcpu: VcpuFd, memory: GuestMemory, board: Board, control: VcpuControl): VcpuRunResult {
  const exits = newExitCounts();
  const run = vcpu.kvmRun;
  const data = new DataView(run.bytes.buffer);
  control.publishThread();
  try {
    for (;;) {
      if (control.stopRequested) return { outcome: { reason: 'stopped' }, exits };
      if (!vcpu.run()) {
        // Kicked. Clear immediate_exit before looking at the requests: a kick that lands after
        // this sets it again, so no request is missed.
        exits.intr++;
        run.immediateExit = false;
        if (control.takePoll() && haltedForGood(vcpu)) return { outcome: { reason: 'halt' }, exits };
        continue;
      }
      const exit = run.exit();
      switch (exit.kind) {
        case 'io':
          exits.io++;
          handleIo(exit, data, board);
          break;
        case 'mmio':
          exits.mmio++;
          handleMmio(exit, run.bytes, board);
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
      if (board.stop !== undefined) return { outcome: board.stop, exits };
    }
  } finally {
    control.retractThread();
  }
}

/**
 * With the in-kernel irqchip a halted vCPU sleeps inside KVM_RUN. Halted with interrupts off,
 * only an NMI or INIT could wake it, and tskvm sends neither: the guest is done.
 */
function haltedForGood(vcpu: VcpuFd): boolean {
  return vcpu.getMpState() === KVM_MP_STATE_HALTED && (vcpu.getRegs().rflags & RFLAGS_IF) === 0n;
}

/** A port access: `count` > 1 is string I/O (rep ins/outs), each element `size` bytes. */
function handleIo(exit: Extract<VcpuExit, { kind: 'io' }>, data: DataView, board: Board): void {
  const { size, port, count, dataOffset } = exit;
  const slot = board.pio.find(port);
  for (let i = 0, at = dataOffset; i < count; i++, at += size) {
    if (exit.direction === 'out') {
      slot?.device.pioWrite(port - slot.base, size, readLe(data, at, size));
    } else {
      writeLe(data, at, size, slot ? slot.device.pioRead(port - slot.base, size) : ALL_ONES[size]);
    }
  }
}

function handleMmio(exit: Extract<VcpuExit, { kind: 'mmio' }>, runBytes: Uint8Array, board: Board): void {
  const bytes = runBytes.subarray(KVM_RUN_MMIO_DATA, KVM_RUN_MMIO_DATA + exit.len);
  const slot = board.mmio.find(exit.physAddr);
  if (exit.isWrite) slot?.device.mmioWrite(exit.physAddr - slot.base, bytes);
  else if (slot) slot.device.mmioRead(exit.physAddr - slot.base, bytes);
  else bytes.fill(ALL_ONES_BYTE);
}

const ALL_ONES: Readonly<Record<PioSize, number>> = { 1: 0xff, 2: 0xffff, 4: 0xffffffff };

function readLe(view: DataView, at: number, size: PioSize): number {
  return size === 1 ? view.getUint8(at) : size === 2 ? view.getUint16(at, true) : view.getUint32(at, true);
}

function writeLe(view: DataView, at: number, size: PioSize, value: number): void {
  if (size === 1) view.setUint8(at, value & 0xff);
  else if (size === 2) view.setUint16(at, value & 0xffff, true);
  else view.setUint32(at, value >>> 0, true);
}

function crash(vcpu: VcpuFd, memory: GuestMemory, description: string, exits: ExitCounts): VcpuRunResult {
  let state: string;
  try {
    state = formatVcpuState(vcpu.getRegs(), vcpu.getSregs(), memory.bytes);
  } catch (err) {
    state = `(registers unavailable: ${(err as Error).message})`;
  }
  return { outcome: { reason: 'crash', description, state }, exits };
}
