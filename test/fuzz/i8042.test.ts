/**
 * Fuzzing the i8042 controller (src/devices/i8042.ts) through its PioDevice interface only (no
 * keyboard behind it): random reads and writes of every size at offsets 0-4 (ports 0x60-0x64).
 * Against a model of the controller commands its header documents: the answers (0x20 command
 * byte, 0xAA self-test, 0xAB interface test, 0xD0 output port, 0xD2 echo) land in the output
 * buffer, the status register's OBF/SYSFLAG/CMDDAT/KEYLOCK bits follow, IBF never sets, the reset
 * line pulses exactly for 0xF0-0xFF with bit 0 clear and for an output-port write with bit 0 clear,
 * ports 0x61-0x63 read all ones, and nothing throws.
 */
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { PIO_ALL_ONES, type PioSize } from '../../src/devices/device.js';
import {
  I8042,
  I8042_CCB_AUXDIS,
  I8042_CCB_DEFAULT,
  I8042_CCB_KBDDIS,
  I8042_CCB_SYSFLAG,
  I8042_CMD_AUX_DISABLE,
  I8042_CMD_AUX_ENABLE,
  I8042_CMD_KBD_DISABLE,
  I8042_CMD_KBD_ENABLE,
  I8042_CMD_KBD_TEST,
  I8042_CMD_READ_CCB,
  I8042_CMD_READ_OUTPORT,
  I8042_CMD_SELF_TEST,
  I8042_CMD_WRITE_CCB,
  I8042_CMD_WRITE_KBD_OUTPUT,
  I8042_CMD_WRITE_OUTPORT,
  I8042_COMMAND_PORT,
  I8042_DATA_PORT,
  I8042_KBD_TEST_PASSED,
  I8042_OUTPORT_DEFAULT,
  I8042_OUTPORT_RESET,
  I8042_PORT_COUNT,
  I8042_SELF_TEST_PASSED,
  I8042_STR_CMDDAT,
  I8042_STR_IBF,
  I8042_STR_KEYLOCK,
  I8042_STR_OBF,
  I8042_STR_SYSFLAG,
} from '../../src/devices/i8042.js';
import { FUZZ_TIMEOUT_MS, fuzz, same } from './fuzz-config.js';

const DATA = 0;
const COMMAND = I8042_COMMAND_PORT - I8042_DATA_PORT;
const BYTE_MASK = 0xff;
/** 0xF0-0xFF pulse output-port bits whose bit in the low nibble is clear. */
const PULSE_MASK = 0xf0;
const PULSE_COMMANDS = 0xf0;

type Op = { kind: 'read'; offset: number; size: PioSize } | { kind: 'write'; offset: number; size: PioSize; value: number };

const sizeArb = fc.constantFrom<PioSize>(1, 2, 4);
const offsetArb = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(DATA, COMMAND) }, fc.integer({ min: 0, max: I8042_PORT_COUNT - 1 }));
const commandArb = fc.oneof(
  fc.constantFrom(
    I8042_CMD_READ_CCB,
    I8042_CMD_WRITE_CCB,
    I8042_CMD_AUX_DISABLE,
    I8042_CMD_AUX_ENABLE,
    I8042_CMD_SELF_TEST,
    I8042_CMD_KBD_TEST,
    I8042_CMD_KBD_DISABLE,
    I8042_CMD_KBD_ENABLE,
    I8042_CMD_READ_OUTPORT,
    I8042_CMD_WRITE_OUTPORT,
    I8042_CMD_WRITE_KBD_OUTPUT,
    0xfe,
    0xff,
    0xf1,
  ),
  fc.integer({ min: 0, max: 0xffffffff }),
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('read' as const), offset: offsetArb, size: sizeArb }),
  fc.record({
    kind: fc.constant('write' as const),
    offset: offsetArb,
    size: sizeArb,
    value: fc.oneof(commandArb, fc.integer({ min: 0, max: BYTE_MASK })),
  }),
);

/** The controller as its header documents it, with no keyboard attached. */
class Model {
  ccb = I8042_CCB_DEFAULT;
  outputPort = I8042_OUTPORT_DEFAULT;
  output = 0;
  obf = false;
  lastWasCommand = false;
  pending = 0;
  resets = 0;

  respond(byte: number): void {
    this.output = byte;
    this.obf = true;
  }

  command(byte: number): void {
    this.lastWasCommand = true;
    this.pending = 0;
    if ((byte & PULSE_MASK) === PULSE_COMMANDS) {
      if (!(byte & I8042_OUTPORT_RESET)) this.resets++;
      return;
    }
    if (byte === I8042_CMD_READ_CCB) this.respond(this.ccb);
    else if (byte === I8042_CMD_WRITE_CCB || byte === I8042_CMD_WRITE_OUTPORT || byte === I8042_CMD_WRITE_KBD_OUTPUT) this.pending = byte;
    else if (byte === I8042_CMD_AUX_DISABLE) this.ccb |= I8042_CCB_AUXDIS;
    else if (byte === I8042_CMD_AUX_ENABLE) this.ccb &= ~I8042_CCB_AUXDIS;
    else if (byte === I8042_CMD_KBD_DISABLE) this.ccb |= I8042_CCB_KBDDIS;
    else if (byte === I8042_CMD_KBD_ENABLE) this.ccb &= ~I8042_CCB_KBDDIS;
    else if (byte === I8042_CMD_SELF_TEST) this.respond(I8042_SELF_TEST_PASSED);
    else if (byte === I8042_CMD_KBD_TEST) this.respond(I8042_KBD_TEST_PASSED);
    else if (byte === I8042_CMD_READ_OUTPORT) this.respond(this.outputPort);
  }

  data(byte: number): void {
    this.lastWasCommand = false;
    const pending = this.pending;
    this.pending = 0;
    if (pending === I8042_CMD_WRITE_CCB) this.ccb = byte;
    else if (pending === I8042_CMD_WRITE_OUTPORT) {
      this.outputPort = byte;
      if (!(byte & I8042_OUTPORT_RESET)) this.resets++;
    } else if (pending === I8042_CMD_WRITE_KBD_OUTPUT) this.respond(byte);
    // Otherwise the byte is for a keyboard, and there is none.
  }

  status(): number {
    return (
      (this.obf ? I8042_STR_OBF : 0) |
      (this.ccb & I8042_CCB_SYSFLAG ? I8042_STR_SYSFLAG : 0) |
      (this.lastWasCommand ? I8042_STR_CMDDAT : 0) |
      I8042_STR_KEYLOCK
    );
  }
}

describe('i8042 fuzzing', () => {
  it(
    'answers commands, keeps its status consistent and pulses reset exactly when told to',
    () =>
      fuzz(
        fc.array(opArb, { maxLength: 300, size: 'max' }),
        (ops) => {
          let resets = 0;
          const kbc = new I8042(() => resets++);
          const model = new Model();
          for (const op of ops) {
            if (op.kind === 'write') {
              kbc.pioWrite(op.offset, op.size, op.value);
              const byte = op.value & BYTE_MASK;
              if (op.offset === DATA) model.data(byte);
              else if (op.offset === COMMAND) model.command(byte);
            } else {
              const value = kbc.pioRead(op.offset, op.size);
              if (op.offset === DATA) {
                same(value, model.output, 'the output buffer');
                model.obf = false;
              } else if (op.offset === COMMAND) {
                same(value & I8042_STR_IBF, 0, 'IBF (every write is handled at once)');
                same(value, model.status(), 'the status register');
              } else {
                same(value, PIO_ALL_ONES[op.size], `port 0x${(I8042_DATA_PORT + op.offset).toString(16)}, outside the 8042`);
              }
            }
            same(resets, model.resets, 'reset pulses');
          }
        },
        400,
      ),
    FUZZ_TIMEOUT_MS,
  );
});
