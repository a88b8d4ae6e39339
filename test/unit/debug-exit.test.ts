import { describe, expect, it } from 'vitest';
import { DEBUG_EXIT_PORT, DebugExit } from '../../src/devices/debug-exit.js';

describe('DebugExit', () => {
  it('lives at port 0xF4', () => {
    expect(DEBUG_EXIT_PORT).toBe(0xf4);
  });

  it('reports 1-, 2- and 4-byte writes as the unsigned value written', () => {
    const values: number[] = [];
    const dev = new DebugExit((v) => values.push(v));
    dev.pioWrite(0, 1, 0x2a);
    dev.pioWrite(0, 2, 0xbeef);
    dev.pioWrite(0, 4, 0xdeadbeef);
    dev.pioWrite(0, 4, -1); // a signed value from the exit loop comes out unsigned
    dev.pioWrite(0, 1, 0x1ff); // only the accessed byte counts
    expect(values).toEqual([0x2a, 0xbeef, 0xdeadbeef, 0xffffffff, 0xff]);
  });

  it('reads as all ones for the access size', () => {
    const dev = new DebugExit(() => {
      throw new Error('reads must not exit');
    });
    expect(dev.pioRead(0, 1)).toBe(0xff);
    expect(dev.pioRead(0, 2)).toBe(0xffff);
    expect(dev.pioRead(0, 4)).toBe(0xffffffff);
  });
});
