/**
 * The BIOS's part of the PC board, built in the thread that owns the devices (the vCPU's, or the
 * board thread): the VGA registers, the CMOS clock, the disks, the keyboard behind the i8042
 * (typing the console's input at the guest's pace) and the trap device the ROM's stubs call.
 * The board asks for what it wires itself (COM1's gated input, the i8042's options, the
 * watchers that see the guest read the keyboard or COM1) and registers the rest here.
 */
import { writeSync } from 'node:fs';
import type { PioBus } from '../devices/bus.js';
import { PIO_ALL_ONES, type PioDevice, type PioSize, type Snapshottable } from '../devices/device.js';
import { I8042_COMMAND_PORT, I8042_DATA_PORT, type I8042, type I8042Options, type I8042State } from '../devices/i8042.js';
import {
  IER_ERBFI,
  LCR_DLAB,
  LSR_THRE,
  UART_IER,
  UART_LCR,
  UART_LSR,
  UART_RBR,
  UART_THR,
  type SerialHost,
} from '../devices/serial16550.js';
import { CMOS_FLOPPY_NONE, Mc146818Rtc, RTC_IRQ, RTC_PORT, RTC_PORT_COUNT } from '../devices/rtc.js';
import { VGA_IO_BASE, VGA_IO_COUNT, Vga, type VgaState } from '../devices/vga.js';
import { ByteRing } from '../io/byte-ring.js';
import { BiosTrap, type BiosTrapState } from './bios.js';
import { ConsoleKeyboard, ConsoleRouter, peekableBytes, type ConsoleBytes, type ConsoleTarget } from './console-input.js';
import { Disk, DiskSet, FdDiskBackend, MemoryDiskBackend, type DiskState } from './disk.js';
import { keyBufferEmpty } from './keyboard.js';
import { BIOS_DEVICE_NAME, BIOS_SEGMENT, BIOS_TRAP_PORT, BIOS_TRAP_PORT_COUNT, ROM_INT09 } from './layout.js';
import type { BiosMachine } from './machine.js';
import { GuestRam } from './memory.js';
import { biosRom } from './post.js';
import { ATTENTION_POLL, ATTENTION_SCREEN_USED, ATTENTION_TELETYPE, type BiosBoardSpec } from './spec.js';

export const VGA_DEVICE_NAME = 'vga';
export const CMOS_DEVICE_NAME = 'cmos-rtc';
/** COM1's index in the board's serial ports: the one whose input the console shares. */
const CONSOLE_COM_INDEX = 0;
const KEYBOARD_IRQ = 1;
const IVT_KEYBOARD_VECTOR = 0x09 * 4;
const NS_PER_S = 1_000_000_000n;
const TIME_COLUMN = 13;

export interface BiosBoardEnv {
  memory: Uint8Array;
  /** A device's line to ISA IRQ `irq`. */
  connectIrq(irq: number): (level: boolean) => void;
  /** Ctrl-Alt-Del. */
  reset(): void;
}

export interface BiosDevices {
  /** COM port `index`'s host side: COM1's input shared with the keyboard when the console is shared. */
  serialHost(index: number, inner: SerialHost): SerialHost;
  /** What the board registers on the bus for UART `index` (COM1 watched for the guest reading it). */
  watchSerial(index: number, uart: PioDevice): PioDevice;
  /** The i8042's keyboard and IRQ1. */
  readonly i8042Options: I8042Options;
  /** What the board registers for the i8042 (watched for the guest reading the keyboard). */
  watchKeyboard(i8042: I8042): PioDevice;
  /** Registers the VGA, the CMOS clock and the BIOS trap; `i8042` is the board's controller. */
  register(pio: PioBus, i8042: I8042): void;
  /** Host input may have arrived: the keyboard takes what it may. */
  poll(): void;
  readonly vga: Vga;
  readonly rtc: Mc146818Rtc;
  readonly disks: DiskSet;
  readonly trap: BiosTrap | undefined;
}

/** A ring's consumer side as console bytes. */
function ringBytes(ring: ByteRing): ConsoleBytes {
  return { shift: () => ring.shift(), available: () => ring.used() };
}

export function createBiosDevices(spec: BiosBoardSpec, env: BiosBoardEnv): BiosDevices {
  const ram = new GuestRam(env.memory);
  const vga = new Vga(new Uint8Array(spec.vga));
  const disks = new DiskSet(
    spec.disks.map(
      (d) =>
        new Disk('fd' in d.image ? new FdDiskBackend(d.image.fd, d.image.size) : new MemoryDiskBackend(new Uint8Array(d.image.buffer)), {
          drive: d.drive,
          writeThrough: d.writeThrough,
        }),
    ),
  );
  const floppyType = (drive: number): number => disks.get(drive)?.floppy?.driveType ?? CMOS_FLOPPY_NONE;
  // Local time, as DOS expects of the CMOS clock; IRQ 8 for a program that enables its interrupts.
  const rtc = new Mc146818Rtc(
    { setIrq: env.connectIrq(RTC_IRQ) },
    { base: 'localtime', memorySize: spec.memorySize, floppies: [floppyType(0), floppyType(1)], hardDisks: disks.hardDisks },
  );
  const attention = new Int32Array(spec.attention);
  const consoleRing = new ByteRing(spec.console);
  const keysRing = spec.keys ? new ByteRing(spec.keys) : undefined;
  let router: ConsoleRouter | undefined;
  let i8042: I8042 | undefined;
  let pio: PioBus | undefined;
  let trap: BiosTrap | undefined;
  // With --keys the keyboard has its own input; otherwise it shares COM1's, through the router.
  const keyboardInput = (): ConsoleBytes =>
    keysRing ? ringBytes(keysRing) : (router?.keyboardBytes ?? { shift: () => -1, available: () => 0 });
  const keyboard = new ConsoleKeyboard({ shift: () => keyboardInput().shift(), available: () => keyboardInput().available() }, () =>
    keyBufferEmpty(ram),
  );
  const markAttention = (): void => {
    Atomics.store(attention, ATTENTION_POLL, i8042?.wantsPoll ? 1 : 0);
  };
  const pollKeyboard = (): void => {
    // A guest that installs its own keyboard handler reads the keyboard, BIOS calls or not.
    if (
      router?.target === 'undecided' &&
      (ram.u16(IVT_KEYBOARD_VECTOR) !== ROM_INT09 || ram.u16(IVT_KEYBOARD_VECTOR + 2) !== BIOS_SEGMENT)
    ) {
      router.keyboardUsed();
    }
    i8042?.poll();
    markAttention();
  };
  // The BIOS's own UART accesses (INT 14h) bypass COM1's watch: its services say themselves when they claim the input.
  const device = (d: PioDevice): PioDevice => (d instanceof SerialInputWatch ? d.uart : d);
  const portIn = (port: number, size: PioSize): number => {
    const slot = pio?.find(port);
    return slot ? device(slot.device).pioRead(port - slot.base, size) : PIO_ALL_ONES[size];
  };
  const portOut = (port: number, size: PioSize, value: number): void => {
    const slot = pio?.find(port);
    if (slot) device(slot.device).pioWrite(port - slot.base, size, value);
  };
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const machine: BiosMachine = {
    ram,
    vga,
    disks,
    rtc,
    portIn,
    portOut,
    pollKeyboard,
    consoleWrite: (byte) => {
      consoleRing.push(byte); // a full ring drops text: the screen still has it
      Atomics.add(attention, ATTENTION_TELETYPE, 1);
    },
    get router() {
      return router;
    },
    memorySize: spec.memorySize,
    e820: spec.e820,
    bootOrder: spec.bootOrder,
    now: () => performance.now(),
    sleep: (ms) => void Atomics.wait(sleeper, 0, 0, ms),
    reset: env.reset,
    haltOffset: biosRom().halt,
  };
  const trace = spec.trace;
  const traceLine = trace
    ? (line: string): void => {
        const ns = process.hrtime.bigint() - trace.startNs;
        const time = `${ns / NS_PER_S}.${(ns % NS_PER_S).toString().padStart(9, '0')}`.padStart(TIME_COLUMN);
        try {
          writeSync(trace.fd, `${time} bios  ${line}\n`);
        } catch {
          // The trace's reader went away: the guest runs on without it.
        }
      }
    : undefined;
  return {
    serialHost(index, inner) {
      if (index !== CONSOLE_COM_INDEX || keysRing) return inner;
      router = new ConsoleRouter(peekableBytes(() => inner.receive()));
      return router.serialHost(inner);
    },
    watchSerial(index, uart) {
      if (index !== CONSOLE_COM_INDEX) return uart;
      return new SerialInputWatch(uart, () => router?.serialUsed());
    },
    i8042Options: { keyboard, irq: env.connectIrq(KEYBOARD_IRQ) },
    watchKeyboard(controller) {
      return new KeyboardReadWatch(controller, () => router?.keyboardUsed());
    },
    register(bus, controller) {
      pio = bus;
      i8042 = controller;
      bus.register(VGA_IO_BASE, VGA_IO_COUNT, new ScreenUseWatch(vga, attention), VGA_DEVICE_NAME);
      bus.register(RTC_PORT, RTC_PORT_COUNT, rtc, CMOS_DEVICE_NAME);
      trap = new BiosTrap(machine, {
        ...(traceLine ? { trace: traceLine } : {}),
        counters: new Int32Array(spec.counters),
        onCall: (vector, ah) => {
          if (vector === 0x10 && !TELETYPE_ONLY.has(ah)) Atomics.store(attention, ATTENTION_SCREEN_USED, 1);
        },
      });
      bus.register(BIOS_TRAP_PORT, BIOS_TRAP_PORT_COUNT, new BiosPort(trap, disks, keyboard, () => router), BIOS_DEVICE_NAME);
    },
    poll: pollKeyboard,
    vga,
    rtc,
    disks,
    get trap() {
      return trap;
    },
  };
}

/** INT 10h functions that print as a terminal would (they do not mean the guest draws a screen). */
const TELETYPE_ONLY = new Set([0x03, 0x0e, 0x0f, 0x13]);

/**
 * COM1 on the bus: the guest reading RBR, enabling the receive interrupt, or polling LSR for
 * received data claims the console's input. Polling is told from transmitting by what follows
 * an LSR read that showed THRE: a transmitter writes THR next; a guest waiting for LSR.DR reads
 * LSR again (a transmitter waiting for THRE to come back sees it clear, and does not count).
 */
class SerialInputWatch implements PioDevice {
  /** The last LSR read showed THRE and no THR write has followed it. */
  private idleLsr = false;

  constructor(
    readonly uart: PioDevice,
    private readonly reading: () => void,
  ) {}

  /** LCR.DLAB, read from the UART (reading LCR has no side effects; the BIOS may have changed it). */
  private get dlab(): boolean {
    return (this.uart.pioRead(UART_LCR, 1) & LCR_DLAB) !== 0;
  }

  pioRead(offset: number, size: PioSize): number {
    if (offset === UART_RBR && !this.dlab) this.reading();
    if (offset !== UART_LSR) return this.uart.pioRead(offset, size);
    if (this.idleLsr) this.reading(); // before the read, so that this one already pulls waiting input
    const lsr = this.uart.pioRead(offset, size);
    this.idleLsr = (lsr & LSR_THRE) !== 0;
    return lsr;
  }

  pioWrite(offset: number, size: PioSize, value: number): void {
    if (offset === UART_IER && !this.dlab && value & IER_ERBFI) this.reading();
    else if (offset === UART_THR && !this.dlab) this.idleLsr = false;
    this.uart.pioWrite(offset, size, value);
  }
}

/** What the BIOS keeps between calls: the trap's, the disks' kept sectors, the console's input state. */
export interface BiosPortState {
  trap: BiosTrapState;
  disks: Record<string, DiskState>;
  keyboard: { pendingBytes: number[] };
  console: { target: ConsoleTarget } | null;
}

/** The trap port on the bus, saving (for snapshots) all the BIOS remembers, not just the trap's. */
class BiosPort implements PioDevice, Snapshottable<BiosPortState> {
  constructor(
    private readonly trap: BiosTrap,
    private readonly disks: DiskSet,
    private readonly keyboard: ConsoleKeyboard,
    private readonly router: () => ConsoleRouter | undefined,
  ) {}

  pioRead(offset: number, size: PioSize): number {
    return this.trap.pioRead(offset, size);
  }

  pioWrite(offset: number, size: PioSize, value: number): void {
    this.trap.pioWrite(offset, size, value);
  }

  state(): BiosPortState {
    const disks: Record<string, DiskState> = {};
    for (const disk of this.disks.disks) disks[String(disk.drive)] = disk.state();
    return { trap: this.trap.state(), disks, keyboard: this.keyboard.state(), console: this.router()?.state() ?? null };
  }

  restore(state: BiosPortState): void {
    this.trap.restore(state.trap);
    for (const [drive, saved] of Object.entries(state.disks)) {
      const disk = this.disks.get(Number(drive));
      if (!disk) throw new RangeError(`the saved BIOS state has drive ${drive}, which this machine lacks`);
      disk.restore(saved);
    }
    this.keyboard.restore(state.keyboard);
    if (state.console) this.router()?.restore(state.console);
  }
}

/** The i8042 on the bus: the guest reading its data or status port reads the keyboard. */
class KeyboardReadWatch implements PioDevice, Snapshottable<I8042State> {
  constructor(
    private readonly controller: I8042,
    private readonly reading: () => void,
  ) {}

  pioRead(offset: number, size: PioSize): number {
    if (offset === 0 || offset === I8042_COMMAND_PORT - I8042_DATA_PORT) this.reading();
    return this.controller.pioRead(offset, size);
  }

  pioWrite(offset: number, size: PioSize, value: number): void {
    this.controller.pioWrite(offset, size, value);
  }

  state(): I8042State {
    return this.controller.state();
  }

  restore(state: I8042State): void {
    this.controller.restore(state);
  }
}

/** What a snapshot keeps of the VGA: its registers, and whether the guest has used the screen (for --display auto). */
export interface ScreenState {
  vga: VgaState;
  screenUsed: boolean;
}

/** The VGA on the bus: a guest programming it drives the screen itself. */
class ScreenUseWatch implements PioDevice, Snapshottable<ScreenState> {
  constructor(
    private readonly vga: Vga,
    private readonly attention: Int32Array,
  ) {}

  pioRead(offset: number, size: PioSize): number {
    return this.vga.pioRead(offset, size);
  }

  pioWrite(offset: number, size: PioSize, value: number): void {
    Atomics.store(this.attention, ATTENTION_SCREEN_USED, 1);
    this.vga.pioWrite(offset, size, value);
  }

  state(): ScreenState {
    return { vga: this.vga.state(), screenUsed: Atomics.load(this.attention, ATTENTION_SCREEN_USED) !== 0 };
  }

  restore(state: ScreenState): void {
    this.vga.restore(state.vga);
    Atomics.store(this.attention, ATTENTION_SCREEN_USED, state.screenUsed ? 1 : 0);
  }
}
