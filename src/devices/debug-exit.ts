/**
 * A debug-exit port, like QEMU's isa-debug-exit (iobase=0xf4, iosize=4): a guest ends the run by
 * writing a value to it, and the value becomes the run's exit code. Unlike QEMU, which exits with
 * (value << 1) | 1, the value is reported as written.
 */
import { PIO_ALL_ONES, type PioDevice, type PioSize, type Snapshottable } from './device.js';

export const DEBUG_EXIT_PORT = 0xf4;
/** Ports decoded (0xF4–0xF7), so a 4-byte write at 0xF4 lands entirely inside the device. */
export const DEBUG_EXIT_IOSIZE = 4;

/** The port latches nothing: a write ends the run at once, so there is no state between exits. */
export type DebugExitState = Record<string, never>;

export class DebugExit implements PioDevice, Snapshottable<DebugExitState> {
  constructor(private readonly onExit: (value: number) => void) {}

  state(): DebugExitState {
    return {};
  }

  restore(state: DebugExitState): void {
    if (typeof state !== 'object' || state === null || Object.keys(state).length !== 0)
      throw new RangeError('debug-exit state: the device has no state; expected {}');
  }

  /** Nothing to read: all ones, as from an unassigned port. */
  pioRead(_offset: number, size: PioSize): number {
    return PIO_ALL_ONES[size];
  }

  /** Any write, at any offset in the range, ends the run with the value (unsigned, access-sized). */
  pioWrite(_offset: number, size: PioSize, value: number): void {
    this.onExit((value & PIO_ALL_ONES[size]) >>> 0);
  }
}
