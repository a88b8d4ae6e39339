import { describe, expect, it } from 'vitest';
import {
  I8042,
  I8042_CCB_DEFAULT,
  I8042_CMD_RESET,
  I8042_COMMAND_PORT,
  I8042_DATA_PORT,
  I8042_PORT_COUNT,
  I8042_STR_CMDDAT,
  I8042_STR_IBF,
  I8042_STR_OBF,
  I8042_STR_SYSFLAG,
} from '../../src/devices/i8042.js';

const DATA = I8042_DATA_PORT - I8042_DATA_PORT;
const CMD = I8042_COMMAND_PORT - I8042_DATA_PORT;

function make(): { kbc: I8042; resets: () => number } {
  let n = 0;
  const kbc = new I8042(() => n++);
  return { kbc, resets: () => n };
}

describe('I8042', () => {
  it('covers ports 0x60-0x64', () => {
    expect(I8042_DATA_PORT).toBe(0x60);
    expect(I8042_COMMAND_PORT).toBe(0x64);
    expect(I8042_PORT_COUNT).toBe(5);
    expect(I8042_CMD_RESET).toBe(0xfe);
  });

  it('reports no data, an empty input buffer and the system flag after POST', () => {
    const { kbc } = make();
    const status = kbc.pioRead(CMD, 1);
    expect(status & I8042_STR_OBF).toBe(0);
    expect(status & I8042_STR_IBF).toBe(0);
    expect(status & I8042_STR_SYSFLAG).toBe(I8042_STR_SYSFLAG);
    expect(kbc.pioRead(DATA, 1)).toBe(0);
  });

  it('pulses the reset line on command 0xFE', () => {
    const { kbc, resets } = make();
    kbc.pioWrite(CMD, 1, I8042_CMD_RESET);
    expect(resets()).toBe(1);
    // Writing 0xFE to the data port is a keyboard byte, not a reset.
    kbc.pioWrite(DATA, 1, 0xfe);
    expect(resets()).toBe(1);
    // 0xFF pulses no output line.
    kbc.pioWrite(CMD, 1, 0xff);
    expect(resets()).toBe(1);
  });

  it('resets when the output port is written with the reset bit clear', () => {
    const { kbc, resets } = make();
    kbc.pioWrite(CMD, 1, 0xd0);
    expect(kbc.pioRead(DATA, 1)).toBe(0x03);
    kbc.pioWrite(CMD, 1, 0xd1);
    kbc.pioWrite(DATA, 1, 0x03);
    expect(resets()).toBe(0);
    kbc.pioWrite(CMD, 1, 0xd1);
    kbc.pioWrite(DATA, 1, 0x02);
    expect(resets()).toBe(1);
  });

  it('reads and writes the command byte through the data port', () => {
    const { kbc } = make();
    kbc.pioWrite(CMD, 1, 0x20);
    expect(kbc.pioRead(CMD, 1) & (I8042_STR_OBF | I8042_STR_CMDDAT)).toBe(I8042_STR_OBF | I8042_STR_CMDDAT);
    expect(kbc.pioRead(DATA, 1)).toBe(I8042_CCB_DEFAULT);
    expect(kbc.pioRead(CMD, 1) & I8042_STR_OBF).toBe(0);
    // The last output byte stays readable.
    expect(kbc.pioRead(DATA, 1)).toBe(I8042_CCB_DEFAULT);

    kbc.pioWrite(CMD, 1, 0x60);
    kbc.pioWrite(DATA, 1, 0x01); // system flag cleared
    expect(kbc.pioRead(CMD, 1) & (I8042_STR_SYSFLAG | I8042_STR_CMDDAT)).toBe(0);
    kbc.pioWrite(CMD, 1, 0x20);
    expect(kbc.pioRead(DATA, 1)).toBe(0x01);
  });

  it('answers the self-test and interface test, and tracks enable/disable commands', () => {
    const { kbc } = make();
    kbc.pioWrite(CMD, 1, 0xaa);
    expect(kbc.pioRead(DATA, 1)).toBe(0x55);
    kbc.pioWrite(CMD, 1, 0xab);
    expect(kbc.pioRead(DATA, 1)).toBe(0x00);
    kbc.pioWrite(CMD, 1, 0xad);
    kbc.pioWrite(CMD, 1, 0xa7);
    kbc.pioWrite(CMD, 1, 0x20);
    expect(kbc.pioRead(DATA, 1)).toBe(I8042_CCB_DEFAULT | 0x30);
    kbc.pioWrite(CMD, 1, 0xae);
    kbc.pioWrite(CMD, 1, 0xa8);
    kbc.pioWrite(CMD, 1, 0x20);
    expect(kbc.pioRead(DATA, 1)).toBe(I8042_CCB_DEFAULT);
  });

  it('accepts and ignores unknown commands; ports 0x61-0x63 read as all ones', () => {
    const { kbc, resets } = make();
    kbc.pioWrite(CMD, 1, 0xc0);
    kbc.pioWrite(CMD, 1, 0xa9);
    expect(resets()).toBe(0);
    expect(kbc.pioRead(CMD, 1) & I8042_STR_OBF).toBe(0);
    expect(kbc.pioRead(1, 1)).toBe(0xff);
    expect(kbc.pioRead(3, 2)).toBe(0xffff);
    kbc.pioWrite(1, 1, 0xfe);
    expect(resets()).toBe(0);
  });
});
