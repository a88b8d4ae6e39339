/**
 * The BIOS trap device: the PioDevice at BIOS_TRAP_PORT that the ROM's stubs write SS:SP to.
 * It finds the call's frame on the guest's stack, runs the service for the vector the stub
 * pushed, and tells the stub whether to return or to wait (`sti; hlt`) and call again. It also
 * counts calls per service (for --stats, in an Int32Array another thread can read) and writes
 * one trace line per call (`int10 ah=0e al='H'`), reporting each unsupported function once.
 */
import type { PioDevice, PioSize, Snapshottable } from '../devices/device.js';
import { PIO_ALL_ONES } from '../devices/device.js';
import { int13 } from './disk-service.js';
import { TrapFrame } from './frame.js';
import { int09, int16 } from './keyboard.js';
import { BIOS_UNSUPPORTED } from './layout.js';
import { newBiosCallState, type BiosCallState, type BiosMachine, type CallResult, type Service } from './machine.js';
import {
  INT_BOOT_FAILED,
  INT_BOOTSTRAP,
  INT_DISK,
  INT_EQUIPMENT,
  INT_KEYBOARD,
  INT_KEYBOARD_SERVICE,
  INT_MEMORY,
  INT_PRINTER,
  INT_SERIAL,
  INT_SYSTEM,
  INT_TIME,
  INT_VIDEO,
  TRAPPED_VECTORS,
} from './rom.js';
import { int14 } from './serial-service.js';
import { int11, int12, int15, int17, int18, int19 } from './system.js';
import { int1a } from './time.js';
import { int10 } from './video.js';

const SERVICES: ReadonlyMap<number, Service> = new Map<number, Service>([
  [INT_KEYBOARD, int09],
  [INT_VIDEO, int10],
  [INT_EQUIPMENT, int11],
  [INT_MEMORY, int12],
  [INT_DISK, int13],
  [INT_SERIAL, int14],
  [INT_SYSTEM, int15],
  [INT_KEYBOARD_SERVICE, int16],
  [INT_PRINTER, int17],
  [INT_BOOT_FAILED, int18],
  [INT_BOOTSTRAP, int19],
  [INT_TIME, int1a],
]);

/** Vectors whose calls take no function number in AH (their AH says nothing). */
const NO_FUNCTION = new Set<number>([INT_KEYBOARD, INT_EQUIPMENT, INT_MEMORY, INT_BOOT_FAILED, INT_BOOTSTRAP]);
const FUNCTIONS = 256;
/** One counter per trapped vector and AH value. */
export const BIOS_COUNTER_COUNT = TRAPPED_VECTORS.length * FUNCTIONS;

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');
const hex4 = (n: number): string => n.toString(16).padStart(4, '0');
const PRINTABLE_FIRST = 0x20;
const PRINTABLE_LAST = 0x7e;

/** The name --stats and --trace give a call: `int10 ah=0e`, `int19`. */
export function serviceName(vector: number, ah: number): string {
  return NO_FUNCTION.has(vector) ? `int${hex2(vector)}` : `int${hex2(vector)} ah=${hex2(ah)}`;
}

/** The call's inputs worth showing, by service. */
export function describeCall(f: TrapFrame): string {
  const v = f.vector;
  const name = serviceName(v, f.ah);
  const al = f.al >= PRINTABLE_FIRST && f.al <= PRINTABLE_LAST && f.al !== 0x27 ? `'${String.fromCharCode(f.al)}'` : hex2(f.al);
  switch (v) {
    case INT_VIDEO:
      if (f.ah === 0x0e) return `${name} al=${al}`;
      if (f.ah === 0x02) return `${name} bh=${hex2(f.bh)} dh=${hex2(f.dh)} dl=${hex2(f.dl)}`;
      if (f.ah === 0x09 || f.ah === 0x0a) return `${name} al=${al} bh=${hex2(f.bh)} bl=${hex2(f.bl)} cx=${hex4(f.cx)}`;
      return `${name} al=${hex2(f.al)} bx=${hex4(f.bx)} cx=${hex4(f.cx)} dx=${hex4(f.dx)}`;
    case INT_DISK:
      return `${name} al=${hex2(f.al)} cx=${hex4(f.cx)} dx=${hex4(f.dx)} es:bx=${hex4(f.es)}:${hex4(f.bx)}${f.ah >= 0x41 ? ` ds:si=${hex4(f.ds)}:${hex4(f.si)}` : ''}`;
    case INT_KEYBOARD:
      return name;
    case INT_SYSTEM:
      return f.ah === 0xe8
        ? `${name} al=${hex2(f.al)} ebx=${f.ebx.toString(16)}`
        : `${name} al=${hex2(f.al)} cx=${hex4(f.cx)} dx=${hex4(f.dx)}`;
    case INT_SERIAL:
      return `${name} al=${al} dx=${hex4(f.dx)}`;
    default:
      return NO_FUNCTION.has(v) ? name : `${name} al=${hex2(f.al)}`;
  }
}

/** The outputs worth showing after the call. */
function describeResult(f: TrapFrame, result: CallResult, vector: number): string {
  if (result === 'unsupported') return ' -> unsupported (cf=1 ah=86)';
  if (result === 'wait') return ' -> waits';
  switch (vector) {
    case INT_DISK:
    case INT_SERIAL:
    case INT_SYSTEM:
      return ` -> cf=${f.carry ? 1 : 0} ax=${hex4(f.ax)}`;
    case INT_KEYBOARD_SERVICE:
      return f.ah === 0x01 || f.ah === 0x11 ? ` -> zf=${f.zero ? 1 : 0} ax=${hex4(f.ax)}` : ` -> ax=${hex4(f.ax)}`;
    case INT_TIME:
      return ` -> cx=${hex4(f.cx)} dx=${hex4(f.dx)}`;
    case INT_BOOTSTRAP:
      return ` -> ${hex4(f.cs)}:${hex4(f.ip)} dl=${hex2(f.dl)}`;
    default:
      return '';
  }
}

export interface BiosTrapOptions {
  /** One line per call (and per retry that finishes a waiting call), without a newline. */
  trace?: (line: string) => void;
  /** Calls per service, indexed by `counterIndex` (may live in a SharedArrayBuffer). */
  counters?: Int32Array;
  /** Each new call (not its retries), before the service runs. */
  onCall?: (vector: number, ah: number) => void;
}

/** What a snapshot keeps of the trap: `calls` with each wait's deadline as the milliseconds left (host clocks differ). */
export interface BiosTrapState {
  calls: BiosCallState;
  reportedUnsupported: string[];
}

/** Index of a call's counter in BiosTrapOptions.counters. */
export function counterIndex(vector: number, ah: number): number {
  const slot = (TRAPPED_VECTORS as readonly number[]).indexOf(vector);
  return slot < 0 ? -1 : slot * FUNCTIONS + (NO_FUNCTION.has(vector) ? 0 : ah);
}

/** Counters → { 'int10 ah=0e': 12, ... } for the calls that happened. */
export function countsByService(counters: Int32Array): Record<string, number> {
  const out: Record<string, number> = {};
  TRAPPED_VECTORS.forEach((vector, slot) => {
    for (let ah = 0; ah < FUNCTIONS; ah++) {
      const n = counters[slot * FUNCTIONS + ah] ?? 0;
      if (n > 0) out[serviceName(vector, ah)] = n;
    }
  });
  return out;
}

export class BiosTrap implements PioDevice, Snapshottable<BiosTrapState> {
  private calls: BiosCallState = newBiosCallState();
  private readonly reported = new Set<string>();

  constructor(
    private readonly machine: BiosMachine,
    private readonly options: BiosTrapOptions = {},
  ) {}

  pioRead(_offset: number, size: PioSize): number {
    return PIO_ALL_ONES[size];
  }

  pioWrite(offset: number, size: PioSize, value: number): void {
    if (offset !== 0 || size !== 4) return; // only the stubs' dword write is a call
    this.call(TrapFrame.fromTrap(this.machine.ram.bytes, value));
  }

  /** Performs the call whose frame is `f`. */
  call(f: TrapFrame): void {
    const vector = f.vector;
    const retry = f.waiting;
    const ah = f.ah;
    const caller = `${hex4(f.cs)}:${hex4(f.ip)}`;
    const service = SERVICES.get(vector);
    const description = this.options.trace ? describeCall(f) : '';
    if (!retry) this.options.onCall?.(vector, ah);
    if (!retry && this.options.counters) {
      const at = counterIndex(vector, ah);
      if (at >= 0) Atomics.add(this.options.counters, at, 1);
    }
    let result: CallResult = service ? service(this.machine, f, this.calls) : 'unsupported';
    if (result === 'unsupported') {
      f.fail(BIOS_UNSUPPORTED);
      const name = serviceName(vector, ah);
      if (!this.reported.has(name)) {
        this.reported.add(name);
        this.options.trace?.(`${description} -> unsupported (cf=1 ah=86), reported once  caller=${caller}`);
      }
      result = 'done';
    } else if (this.options.trace && !retry) {
      this.options.trace(`${description}${describeResult(f, result, vector)}  caller=${caller}`);
    } else if (this.options.trace && result === 'done' && vector !== INT_KEYBOARD) {
      this.options.trace(`${serviceName(vector, ah)} done${describeResult(f, result, vector)}`);
    }
    f.waiting = result === 'wait';
    this.machine.pollKeyboard();
  }

  state(): BiosTrapState {
    const now = this.machine.now();
    const left = Object.fromEntries(Object.entries(this.calls.deadlines).map(([frame, due]) => [frame, due - now]));
    return { calls: { ...structuredClone(this.calls), deadlines: left }, reportedUnsupported: [...this.reported] };
  }

  restore(state: BiosTrapState): void {
    const now = this.machine.now();
    const due = Object.fromEntries(Object.entries(state.calls.deadlines).map(([frame, left]) => [frame, now + left]));
    this.calls = { ...structuredClone(state.calls), deadlines: due };
    this.reported.clear();
    for (const name of state.reportedUnsupported) this.reported.add(name);
  }
}
