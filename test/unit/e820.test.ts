import { describe, expect, it } from 'vitest';
import { E820_RAM, E820_RESERVED, pcE820Map } from '../../src/arch/x86/e820.js';

const MiB = 2 ** 20;

describe('pcE820Map', () => {
  it("gives QEMU's PC layout: low RAM, EBDA and BIOS area reserved, RAM from 1 MiB", () => {
    expect(E820_RAM).toBe(1);
    expect(E820_RESERVED).toBe(2);
    expect(pcE820Map(16 * MiB)).toEqual([
      { base: 0, length: 0x9fc00, type: E820_RAM },
      { base: 0x9fc00, length: 0x400, type: E820_RESERVED },
      { base: 0xf0000, length: 0x10000, type: E820_RESERVED },
      { base: 0x100000, length: 15 * MiB, type: E820_RAM },
    ]);
  });

  it('has no high RAM entry for a guest of 1 MiB or less', () => {
    expect(pcE820Map(MiB)).toHaveLength(3);
    expect(pcE820Map(MiB).every((e) => e.base < MiB)).toBe(true);
  });

  it('describes more than 4 GiB in one entry (one slot, no PCI hole)', () => {
    expect(pcE820Map(8 * 1024 * MiB).at(-1)).toEqual({ base: MiB, length: 8 * 1024 * MiB - MiB, type: E820_RAM });
  });

  it('shrinks conventional memory for a tiny guest', () => {
    expect(pcE820Map(0x80000)[0]).toEqual({ base: 0, length: 0x80000, type: E820_RAM });
  });

  it.each([0, -1, 1.5, Number.NaN])('rejects a memory size of %s', (size) => {
    expect(() => pcE820Map(size)).toThrow(RangeError);
  });
});
