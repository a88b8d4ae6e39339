/**
 * How a tskvm run ends, as qemu-system-x86_64's exit status: what harnesses read (kvm-unit-tests'
 * scripts/vmm.bash, OS test runners). isa-debug-exit's write of v exits (v << 1) | 1; a reset
 * with -no-reboot, a power-off and a signal exit 0 (QEMU prints "terminating on signal N" for the
 * last, which kvm-unit-tests reads). tskvm has outcomes QEMU does not: a guest halted for good
 * (QEMU would wait forever) is 0, and a vCPU KVM cannot run (internal error, failed entry; QEMU
 * stops and waits on its monitor) is 125, tskvm's crash status. A triple fault is a reset.
 */
import { constants as osConstants } from 'node:os';
import type { RunResult } from '../machine/result.js';

/** QEMU's status for a bad option, a missing kernel, or a host that cannot run KVM. */
export const QEMU_EXIT_ERROR = 1;
export const QEMU_EXIT_OK = 0;
/** A vCPU KVM could not go on with (tskvm run's EXIT_CRASH): QEMU has no status for it. */
export const QEMU_EXIT_KVM_FAILED = 125;
/** The guest ran but its output was lost (tskvm run's EXIT_OUTPUT): kept, QEMU has no such status. */
export const QEMU_EXIT_OUTPUT = 3;
const EXIT_STATUS_MASK = 0xff;
const TRIPLE_FAULT = /^triple fault/;

export interface QemuExit {
  status: number;
  /** A line for stderr (without the program's prefix), if the end needs one. */
  message?: string;
}

export interface QemuEnd {
  result: Pick<RunResult, 'reason' | 'exitCode' | 'crash'>;
  stoppedBy?: NodeJS.Signals | 'quit';
  noReboot: boolean;
  /** The status tskvm run would have given (3 when output was lost, which wins as there). */
  tskvmStatus: number;
}

/** isa-debug-exit: QEMU exits with (value << 1) | 1, of which the process status keeps 8 bits. */
export function debugExitStatus(value: number): number {
  return ((value << 1) | 1) & EXIT_STATUS_MASK;
}

export function qemuExitStatus(end: QemuEnd): QemuExit {
  const { result, stoppedBy } = end;
  if (end.tskvmStatus === QEMU_EXIT_OUTPUT && (stoppedBy === undefined || stoppedBy === 'quit')) return { status: QEMU_EXIT_OUTPUT };
  const reset = end.noReboot
    ? undefined
    : 'warning: the guest reset; tskvm cannot reboot a guest, so the run ends as with -no-reboot (add -no-reboot to say so)';
  // The reason's type may grow (a power-off reason): anything not named here ended the guest cleanly.
  switch (result.reason as string) {
    case 'debug-exit':
      return { status: debugExitStatus(result.exitCode) };
    case 'reset':
      return { status: QEMU_EXIT_OK, ...(reset ? { message: reset } : {}) };
    case 'crash':
      if (TRIPLE_FAULT.test(result.crash?.description ?? '')) {
        return { status: QEMU_EXIT_OK, ...(reset ? { message: `${reset} (a triple fault resets a PC)` } : {}) };
      }
      return { status: QEMU_EXIT_KVM_FAILED };
    case 'stopped':
      if (stoppedBy === undefined || stoppedBy === 'quit') return { status: QEMU_EXIT_OK };
      return { status: QEMU_EXIT_OK, message: `terminating on signal ${osConstants.signals[stoppedBy]}` };
    case 'timeout':
      return { status: end.tskvmStatus };
    case 'halt':
    case 'saved':
    case 'poweroff':
    default:
      return { status: QEMU_EXIT_OK };
  }
}
