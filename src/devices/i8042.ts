/**
 * An i8042 (the AT's keyboard controller) with a keyboard behind it when the machine has one:
 * 0xFE on port 0x64 resets the machine the PC way, controller commands get the answers a real
 * 8042 gives, and keystrokes arrive on the data port as scan codes, raising IRQ1 while the
 * controller command byte enables the keyboard interrupt.
 *
 * Registered at 0x60 with length 5 (offset 0 = data port 0x60, offset 4 = status/command 0x64).
 * Offsets 1–3 (ports 0x61–0x63, not part of the 8042) behave like unassigned ports: reads return
 * all ones, writes are ignored.
 *
 * Controller commands (everything else is accepted and ignored):
 * - 0x20 read controller command byte → data port; 0x60 write it (next data-port byte).
 * - 0xA7/0xA8 disable/enable the aux port, 0xAD/0xAE disable/enable the keyboard (CCB bits only).
 * - 0xAA self-test → 0x55; 0xAB keyboard interface test → 0x00 (passed).
 * - 0xD0 read output port → data port; 0xD1 write output port (next data-port byte): a byte with
 *   bit 0 (system reset, active low) clear resets the machine. A20 is always on under KVM.
 * - 0xD2 write the next data-port byte into the output buffer as if the keyboard had sent it.
 * - 0xF0–0xFF pulse output-port bits 0–3 low: any of these with bit 0 clear (0xFE is the usual
 *   one) pulses the reset line and calls `onReset()`.
 *
 * The keyboard (present when `options.keyboard` is given): keystrokes come from a
 * KeyboardSource as scan code set 1 bytes, the form the controller delivers with translation
 * on (CCB bit 6, as every BIOS leaves it); with translation off the guest gets set 2, the
 * keyboard's own codes (F0-prefixed breaks). A byte is delivered once the guest has read the
 * previous one and at least KBD_BYTE_GAP_MS have passed (a keyboard sends a byte in about a
 * millisecond), and a new keystroke only when the source says the guest is ready for it, so
 * scripted input arrives at the pace the guest consumes it. The keyboard answers the commands
 * written to the data port: 0xED LEDs, 0xEE echo, 0xF0 scan code set, 0xF2 identify
 * (0xAB 0x83, 0xAB 0x41 translated), 0xF3 typematic, 0xF4/0xF5 enable/disable scanning, 0xF6
 * defaults, 0xFE resend, 0xFF reset (0xFA 0xAA); anything else gets 0xFE. Without a keyboard,
 * data-port bytes that are not a command parameter are dropped.
 */
import { PIO_ALL_ONES, type PioDevice, type PioSize, type Snapshottable } from './device.js';
import { scanCodeSet1ToSet2 } from './scancodes.js';

export const I8042_DATA_PORT = 0x60;
export const I8042_COMMAND_PORT = 0x64;
/** Register the controller at I8042_DATA_PORT with this length to cover both ports. */
export const I8042_PORT_COUNT = I8042_COMMAND_PORT - I8042_DATA_PORT + 1;
const DATA_OFFSET = 0;
const COMMAND_OFFSET = I8042_COMMAND_PORT - I8042_DATA_PORT;

// Status register (read from 0x64).
export const I8042_STR_OBF = 0x01; // output buffer full: a byte waits at 0x60
export const I8042_STR_IBF = 0x02; // input buffer full: controller busy with the last write
export const I8042_STR_SYSFLAG = 0x04; // system flag: POST passed (mirrors CCB bit 2)
export const I8042_STR_CMDDAT = 0x08; // last write was to 0x64 (command), not 0x60 (data)
export const I8042_STR_KEYLOCK = 0x10; // keyboard not inhibited
export const I8042_STR_AUXDATA = 0x20; // the output byte came from the aux device
export const I8042_STR_TIMEOUT = 0x40;
export const I8042_STR_PARITY = 0x80;

// Controller command byte (CCB).
export const I8042_CCB_KBDINT = 0x01; // keyboard interrupt enable
export const I8042_CCB_AUXINT = 0x02; // aux interrupt enable
export const I8042_CCB_SYSFLAG = 0x04;
export const I8042_CCB_KBDDIS = 0x10; // keyboard clock disabled
export const I8042_CCB_AUXDIS = 0x20; // aux clock disabled
export const I8042_CCB_XLATE = 0x40; // translate to scan code set 1
/** After POST: system flag set, translation on, no interrupts (there is nothing to interrupt for). */
export const I8042_CCB_DEFAULT = I8042_CCB_SYSFLAG | I8042_CCB_XLATE;

// Output port (0xD0/0xD1).
export const I8042_OUTPORT_RESET = 0x01; // system reset line, active low
export const I8042_OUTPORT_A20 = 0x02;
export const I8042_OUTPORT_DEFAULT = I8042_OUTPORT_RESET | I8042_OUTPORT_A20;

// Controller commands (written to 0x64).
export const I8042_CMD_READ_CCB = 0x20;
export const I8042_CMD_WRITE_CCB = 0x60;
export const I8042_CMD_AUX_DISABLE = 0xa7;
export const I8042_CMD_AUX_ENABLE = 0xa8;
export const I8042_CMD_SELF_TEST = 0xaa;
export const I8042_CMD_KBD_TEST = 0xab;
export const I8042_CMD_KBD_DISABLE = 0xad;
export const I8042_CMD_KBD_ENABLE = 0xae;
export const I8042_CMD_READ_OUTPORT = 0xd0;
export const I8042_CMD_WRITE_OUTPORT = 0xd1;
export const I8042_CMD_WRITE_KBD_OUTPUT = 0xd2;
export const I8042_CMD_PULSE_OUTPORT = 0xf0; // 0xF0–0xFF: low nibble = output bits NOT pulsed
export const I8042_CMD_RESET = 0xfe; // pulse the reset line only

export const I8042_SELF_TEST_PASSED = 0x55;
export const I8042_KBD_TEST_PASSED = 0x00;

// Keyboard commands (written to 0x60) and its answers.
export const KBD_CMD_SET_LEDS = 0xed;
export const KBD_CMD_ECHO = 0xee;
export const KBD_CMD_SCAN_SET = 0xf0;
export const KBD_CMD_IDENTIFY = 0xf2;
export const KBD_CMD_TYPEMATIC = 0xf3;
export const KBD_CMD_ENABLE = 0xf4;
export const KBD_CMD_DISABLE = 0xf5;
export const KBD_CMD_DEFAULTS = 0xf6;
export const KBD_CMD_SET3_FIRST = 0xf7;
export const KBD_CMD_SET3_LAST = 0xfd;
export const KBD_CMD_RESEND = 0xfe;
export const KBD_CMD_RESET = 0xff;
export const KBD_ACK = 0xfa;
export const KBD_RESEND = 0xfe;
export const KBD_BAT_OK = 0xaa;
export const KBD_ECHO = 0xee;
export const KBD_ID = [0xab, 0x83] as const;
/** The ID's second byte as the controller's translation delivers it. */
export const KBD_ID_TRANSLATED = 0x41;
/** The scan code set numbers 1-3 as translation delivers them (0xF0 0x00 answers). */
const SCAN_SET_TRANSLATED = [0, 0x43, 0x41, 0x3f] as const;
export const KBD_DEFAULT_SCAN_SET = 2;
/** Time between two bytes from the keyboard: about one byte's transfer at the PS/2 clock. */
export const KBD_BYTE_GAP_MS = 1;
/**
 * A keyboard byte left unread this long with the interrupt enabled gets its IRQ1 edge again: the
 * PIC is edge-triggered, and an edge that reached it while it could not take it (seen under
 * nested KVM) must not leave the keyboard stuck with a full output buffer.
 */
export const KBD_IRQ_RETRIGGER_MS = 25;

/** Where keystrokes come from: the console input, paced by the guest. */
export interface KeyboardSource {
  /** The next keystroke's scan code set 1 bytes, if one may be typed now; else undefined. */
  nextStroke(): readonly number[] | undefined;
  /** Whether keystrokes wait (so the machine keeps polling the controller). */
  pending(): boolean;
}

export interface I8042Options {
  /** A keyboard behind the controller, typing what this source gives. */
  keyboard?: KeyboardSource;
  /** IRQ1's level (the keyboard interrupt). */
  irq?: (level: boolean) => void;
  /** The host clock in ms, for the pace of keyboard bytes. */
  now?: () => number;
}

export interface I8042State {
  ccb: number;
  outputPort: number;
  output: number;
  obf: boolean;
  lastWasCommand: boolean;
  pending: number;
  keyboard: { scanSet: number; scanning: boolean; leds: number; command: number; replies: number[]; stroke: number[]; last: number };
}

const BYTE_MASK = 0xff;
const PULSE_CMD_MASK = 0xf0;

/** The keyboard's own output buffer, in bytes (replies not yet read by the controller). */
export const KBD_REPLY_BUFFER = 16;

export class I8042 implements PioDevice, Snapshottable<I8042State> {
  private ccb = I8042_CCB_DEFAULT;
  private outputPort = I8042_OUTPORT_DEFAULT;
  private output = 0;
  private obf = false;
  private lastWasCommand = false;
  /** A command waiting for its parameter byte on the data port, or 0. */
  private pending = 0;
  // The keyboard.
  private scanSet = KBD_DEFAULT_SCAN_SET;
  private scanning = true;
  private leds = 0;
  /** A keyboard command waiting for its parameter, or 0. */
  private kbdCommand = 0;
  /** Answers to keyboard commands, sent before any keystroke. */
  private replies: number[] = [];
  /** The rest of the keystroke being sent, as the guest will read it. */
  private stroke: number[] = [];
  private lastSent = KBD_ACK;
  private lastReadAt = -Infinity;
  /** When the byte in the output buffer came from the keyboard (undefined: a controller answer, or empty). */
  private keyboardByteAt: number | undefined;
  private irqLevel = false;
  private readonly keyboard: KeyboardSource | undefined;
  private readonly irq: (level: boolean) => void;
  private readonly now: () => number;

  constructor(
    private readonly onReset: () => void,
    options: I8042Options = {},
  ) {
    this.keyboard = options.keyboard;
    this.irq = options.irq ?? (() => {});
    this.now = options.now ?? (() => performance.now());
  }

  pioRead(offset: number, size: PioSize): number {
    if (offset === DATA_OFFSET) {
      const value = this.output;
      if (this.obf) {
        this.obf = false;
        this.keyboardByteAt = undefined;
        this.lastReadAt = this.now();
        this.updateIrq();
      }
      return value;
    }
    if (offset === COMMAND_OFFSET) {
      this.poll();
      return this.status();
    }
    return PIO_ALL_ONES[size];
  }

  pioWrite(offset: number, _size: PioSize, value: number): void {
    const byte = value & BYTE_MASK;
    if (offset === DATA_OFFSET) {
      this.lastWasCommand = false;
      this.writeData(byte);
    } else if (offset === COMMAND_OFFSET) {
      this.lastWasCommand = true;
      this.writeCommand(byte);
    }
  }

  /**
   * Moves the keyboard's next byte into the output buffer when it is free and the byte is due;
   * the machine calls this when input arrives and after BIOS calls, the guest's own status reads
   * call it too.
   */
  poll(): void {
    if (!this.keyboard) return;
    if (this.obf) {
      this.retrigger();
      return;
    }
    if (this.ccb & I8042_CCB_KBDDIS) return;
    let byte: number | undefined = this.replies.shift();
    if (byte === undefined) {
      if (!this.scanning || this.now() - this.lastReadAt < KBD_BYTE_GAP_MS) return;
      if (this.stroke.length === 0) {
        const next = this.keyboard.nextStroke();
        if (!next || next.length === 0) return;
        this.stroke = this.translated() ? [...next] : scanCodeSet1ToSet2(next);
      }
      byte = this.stroke.shift();
      if (byte === undefined) return;
    }
    this.lastSent = byte;
    this.output = byte;
    this.obf = true;
    this.keyboardByteAt = this.now();
    this.updateIrq();
  }

  /** A keyboard byte waits unread with IRQ1 high: after a while, pulse the line for a new edge. */
  private retrigger(): void {
    if (this.keyboardByteAt === undefined || !this.irqLevel) return;
    const now = this.now();
    if (now - this.keyboardByteAt < KBD_IRQ_RETRIGGER_MS) return;
    this.keyboardByteAt = now;
    this.irq(false);
    this.irq(true);
  }

  /** Keyboard bytes wait to be delivered (the machine should keep polling). */
  get wantsPoll(): boolean {
    return this.keyboardByteAt !== undefined || this.replies.length > 0 || this.stroke.length > 0 || (this.keyboard?.pending() ?? false);
  }

  private translated(): boolean {
    return (this.ccb & I8042_CCB_XLATE) !== 0;
  }

  private updateIrq(): void {
    const level = this.obf && (this.ccb & I8042_CCB_KBDINT) !== 0;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq(level);
    }
  }

  private status(): number {
    // IBF is always clear: every write is handled at once.
    return (
      (this.obf ? I8042_STR_OBF : 0) |
      (this.ccb & I8042_CCB_SYSFLAG ? I8042_STR_SYSFLAG : 0) |
      (this.lastWasCommand ? I8042_STR_CMDDAT : 0) |
      I8042_STR_KEYLOCK
    );
  }

  /** A controller answer: straight into the output buffer. */
  private respond(byte: number): void {
    this.output = byte;
    this.obf = true;
    this.keyboardByteAt = undefined;
    this.updateIrq();
  }

  private writeData(byte: number): void {
    const command = this.pending;
    this.pending = 0;
    if (command === I8042_CMD_WRITE_CCB) {
      this.ccb = byte;
      this.updateIrq();
      this.poll();
    } else if (command === I8042_CMD_WRITE_OUTPORT) {
      this.outputPort = byte;
      if (!(byte & I8042_OUTPORT_RESET)) this.onReset();
    } else if (command === I8042_CMD_WRITE_KBD_OUTPUT) {
      this.respond(byte);
    } else if (this.keyboard) {
      this.keyboardCommand(byte);
    }
    // Otherwise the byte is for the keyboard, and there is none.
  }

  /** A byte for the keyboard: a command, or the parameter of the last one. */
  private keyboardCommand(byte: number): void {
    const reply = (...bytes: number[]): void => {
      // A keyboard's output buffer is 16 bytes; a guest that sends commands without reading the
      // answers loses the oldest, as with the real part, and tskvm's memory stays bounded.
      this.replies.push(...bytes);
      if (this.replies.length > KBD_REPLY_BUFFER) this.replies.splice(0, this.replies.length - KBD_REPLY_BUFFER);
      this.poll();
    };
    const command = this.kbdCommand;
    this.kbdCommand = 0;
    if (command === KBD_CMD_SET_LEDS) {
      this.leds = byte & 0x07;
      return reply(KBD_ACK);
    }
    if (command === KBD_CMD_TYPEMATIC) return reply(KBD_ACK);
    if (command === KBD_CMD_SCAN_SET) {
      if (byte === 0) return reply(KBD_ACK, this.translated() ? SCAN_SET_TRANSLATED[this.scanSet]! : this.scanSet);
      if (byte >= 1 && byte <= 3) this.scanSet = byte;
      return reply(KBD_ACK);
    }
    // A new command throws away what the keyboard was about to send.
    this.stroke = [];
    switch (byte) {
      case KBD_CMD_SET_LEDS:
      case KBD_CMD_TYPEMATIC:
      case KBD_CMD_SCAN_SET:
        this.kbdCommand = byte;
        return reply(KBD_ACK);
      case KBD_CMD_ECHO:
        return reply(KBD_ECHO);
      case KBD_CMD_IDENTIFY:
        return reply(KBD_ACK, KBD_ID[0], this.translated() ? KBD_ID_TRANSLATED : KBD_ID[1]);
      case KBD_CMD_ENABLE:
        this.scanning = true;
        return reply(KBD_ACK);
      case KBD_CMD_DISABLE:
        this.scanning = false;
        return reply(KBD_ACK);
      case KBD_CMD_DEFAULTS:
        this.scanSet = KBD_DEFAULT_SCAN_SET;
        return reply(KBD_ACK);
      case KBD_CMD_RESEND:
        return reply(this.lastSent);
      case KBD_CMD_RESET:
        this.scanSet = KBD_DEFAULT_SCAN_SET;
        this.scanning = true;
        this.leds = 0;
        return reply(KBD_ACK, KBD_BAT_OK);
      default:
        return reply(byte >= KBD_CMD_SET3_FIRST && byte <= KBD_CMD_SET3_LAST ? KBD_ACK : KBD_RESEND);
    }
  }

  /** The keyboard LEDs the guest set (0xED): bit 0 scroll, 1 num, 2 caps lock. */
  get keyboardLeds(): number {
    return this.leds;
  }

  private writeCommand(command: number): void {
    this.pending = 0;
    if ((command & PULSE_CMD_MASK) === I8042_CMD_PULSE_OUTPORT) {
      if (!(command & I8042_OUTPORT_RESET)) this.onReset();
      return;
    }
    switch (command) {
      case I8042_CMD_READ_CCB:
        this.respond(this.ccb);
        break;
      case I8042_CMD_WRITE_CCB:
      case I8042_CMD_WRITE_OUTPORT:
      case I8042_CMD_WRITE_KBD_OUTPUT:
        this.pending = command;
        break;
      case I8042_CMD_AUX_DISABLE:
        this.ccb |= I8042_CCB_AUXDIS;
        break;
      case I8042_CMD_AUX_ENABLE:
        this.ccb &= ~I8042_CCB_AUXDIS;
        break;
      case I8042_CMD_KBD_DISABLE:
        this.ccb |= I8042_CCB_KBDDIS;
        break;
      case I8042_CMD_KBD_ENABLE:
        this.ccb &= ~I8042_CCB_KBDDIS;
        this.poll();
        break;
      case I8042_CMD_SELF_TEST:
        this.respond(I8042_SELF_TEST_PASSED);
        break;
      case I8042_CMD_KBD_TEST:
        this.respond(I8042_KBD_TEST_PASSED);
        break;
      case I8042_CMD_READ_OUTPORT:
        this.respond(this.outputPort);
        break;
      default:
        break; // accepted and ignored
    }
  }

  state(): I8042State {
    return {
      ccb: this.ccb,
      outputPort: this.outputPort,
      output: this.output,
      obf: this.obf,
      lastWasCommand: this.lastWasCommand,
      pending: this.pending,
      keyboard: {
        scanSet: this.scanSet,
        scanning: this.scanning,
        leds: this.leds,
        command: this.kbdCommand,
        replies: [...this.replies],
        stroke: [...this.stroke],
        last: this.lastSent,
      },
    };
  }

  restore(state: I8042State): void {
    this.ccb = state.ccb;
    this.outputPort = state.outputPort;
    this.output = state.output;
    this.obf = state.obf;
    this.lastWasCommand = state.lastWasCommand;
    this.pending = state.pending;
    const k = state.keyboard;
    this.scanSet = k.scanSet;
    this.scanning = k.scanning;
    this.leds = k.leds;
    this.kbdCommand = k.command;
    this.replies = [...k.replies];
    this.stroke = [...k.stroke];
    this.lastSent = k.last;
    this.lastReadAt = -Infinity;
    this.irqLevel = !this.irqLevel; // force the line to be driven to its restored level
    this.updateIrq();
  }
}
