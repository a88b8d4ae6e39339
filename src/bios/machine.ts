/**
 * What the BIOS services work on: guest RAM, the board's devices they program (VGA, the i8042,
 * the UARTs through the board's own port bus, the CMOS clock), the disks, the console's text
 * output and the host clock. Services are plain functions of this and the call's TrapFrame.
 */
import type { E820Entry } from '../arch/x86/e820.js';
import type { Mc146818Rtc } from '../devices/rtc.js';
import type { PioSize } from '../devices/device.js';
import type { Vga } from '../devices/vga.js';
import type { ConsoleRouter } from './console-input.js';
import type { DiskSet } from './disk.js';
import type { TrapFrame } from './frame.js';
import type { GuestRam } from './memory.js';

export interface BiosMachine {
  readonly ram: GuestRam;
  readonly vga: Vga;
  readonly disks: DiskSet;
  readonly rtc: Mc146818Rtc;
  /** The board's ports (the i8042, the UARTs), as the guest's in/out would reach them. */
  portIn(port: number, size: PioSize): number;
  portOut(port: number, size: PioSize, value: number): void;
  /** Lets the i8042 deliver its next keyboard byte (after a key left the BDA buffer). */
  pollKeyboard(): void;
  /** Teletype text for the console (stdout when the screen is not drawn). */
  consoleWrite(byte: number): void;
  /** Where shared console input goes (absent: the keyboard has its own input, or none). */
  readonly router: ConsoleRouter | undefined;
  readonly memorySize: number;
  readonly e820: readonly E820Entry[];
  /** Drives to try at INT 19h, in order. */
  readonly bootOrder: readonly number[];
  /** Monotonic host time in ms. */
  now(): number;
  /** Blocks the calling thread for `ms` (short waits that a timer tick would overshoot). */
  sleep(ms: number): void;
  /** Ctrl-Alt-Del: the machine resets. */
  reset(): void;
  /** The ROM's halt loop (segment F000), where INT 18h leaves a machine with nothing to boot. */
  readonly haltOffset: number;
}

/**
 * How a call went: `done` (registers and flags are in the frame), `wait` (the stub sleeps until
 * an interrupt and calls again), `unsupported` (the dispatcher reports CF=1, AH=86h).
 */
export type CallResult = 'done' | 'wait' | 'unsupported';

/** One BIOS interrupt's services. `state` is the BIOS's own memory between calls. */
export type Service = (m: BiosMachine, f: TrapFrame, state: BiosCallState) => CallResult;

/** What the BIOS remembers between calls (plain data: snapshots save it). */
export interface BiosCallState {
  /** Waits in progress (INT 15h AH=86h, INT 14h receive), by frame address: when they end. */
  deadlines: Record<string, number>;
  /** INT 09h: the rest of a Pause key's E1 sequence to skip. */
  skipScanBytes: number;
}

export function newBiosCallState(): BiosCallState {
  return { deadlines: {}, skipScanBytes: 0 };
}
