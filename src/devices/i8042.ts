/**
 * A minimal i8042 (PS/2 keyboard controller), there so a guest can reset the machine the PC way
 * (command 0xFE on port 0x64) and so code that probes the controller gets sensible answers.
 * There is no keyboard or mouse behind it and it raises no interrupts.
 *
 * Registered at 0x60 with length 5 (offset 0 = data port 0x60, offset 4 = status/command 0x64).
 * Offsets 1–3 (ports 0x61–0x63, not part of the 8042) behave like unassigned ports: reads return
 * all ones, writes are ignored.
 *
 * Supported controller commands (everything else is accepted and ignored):
 * - 0x20 read controller command byte → data port; 0x60 write it (next data-port byte).
 * - 0xA7/0xA8 disable/enable the aux port, 0xAD/0xAE disable/enable the keyboard (CCB bits only).
 * - 0xAA self-test → 0x55; 0xAB keyboard interface test → 0x00 (passed).
 * - 0xD0 read output port → data port; 0xD1 write output port (next data-port byte): a byte with
 *   bit 0 (system reset, active low) clear resets the machine. A20 is always on under KVM.
 * - 0xF0–0xFF pulse output-port bits 0–3 low: any of these with bit 0 clear (0xFE is the usual
 *   one) pulses the reset line and calls `onReset()`.
 * Data written to port 0x60 that is not a command parameter would go to the keyboard; with no
 * keyboard it is dropped.
 */
import { PIO_ALL_ONES, type PioDevice, type PioSize } from './device.js';

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
export const I8042_CMD_PULSE_OUTPORT = 0xf0; // 0xF0–0xFF: low nibble = output bits NOT pulsed
export const I8042_CMD_RESET = 0xfe; // pulse the reset line only

export const I8042_SELF_TEST_PASSED = 0x55;
export const I8042_KBD_TEST_PASSED = 0x00;

const BYTE_MASK = 0xff;
const PULSE_CMD_MASK = 0xf0;

export class I8042 implements PioDevice {
  private ccb = I8042_CCB_DEFAULT;
  private outputPort = I8042_OUTPORT_DEFAULT;
  private output = 0;
  private obf = false;
  private lastWasCommand = false;
  /** A command waiting for its parameter byte on the data port, or 0. */
  private pending = 0;

  constructor(private readonly onReset: () => void) {}

  pioRead(offset: number, size: PioSize): number {
    if (offset === DATA_OFFSET) {
      this.obf = false;
      return this.output;
    }
    if (offset === COMMAND_OFFSET) return this.status();
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

  private status(): number {
    // IBF is always clear: every write is handled at once.
    return (
      (this.obf ? I8042_STR_OBF : 0) |
      (this.ccb & I8042_CCB_SYSFLAG ? I8042_STR_SYSFLAG : 0) |
      (this.lastWasCommand ? I8042_STR_CMDDAT : 0) |
      I8042_STR_KEYLOCK
    );
  }

  private respond(byte: number): void {
    this.output = byte;
    this.obf = true;
  }

  private writeData(byte: number): void {
    const command = this.pending;
    this.pending = 0;
    if (command === I8042_CMD_WRITE_CCB) {
      this.ccb = byte;
    } else if (command === I8042_CMD_WRITE_OUTPORT) {
      this.outputPort = byte;
      if (!(byte & I8042_OUTPORT_RESET)) this.onReset();
    }
    // Otherwise the byte is for the keyboard, and there is none.
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
}
