/**
 * The builder's firmware tables from the per-process cache (src/machine/builder.ts): copied into a
 * new VM's zeroed RAM, they must leave exactly the bytes writing the tables leaves, for every
 * machine shape: the first two VMs of a shape (written; the second's bytes kept) and after (copied).
 */
import { describe, expect, it } from 'vitest';
import { BIOS_AREA_END, VGA_HOLE_ADDRESS } from '../../src/arch/x86/pc-layout.js';
import { nonZeroRuns, writeFirmwareTables, writeFreshFirmwareTables } from '../../src/machine/builder.js';

const MIB = 1024 * 1024;

describe('firmware tables copied from the cache', () => {
  const shapes = [
    { memorySize: 512 * 1024, cpus: 1 }, // below the EBDA: nothing
    { memorySize: VGA_HOLE_ADDRESS, cpus: 1 }, // the BDA only
    { memorySize: 768 * 1024, cpus: 2 }, // the BDA, short of the BIOS area
    { memorySize: BIOS_AREA_END, cpus: 1 },
    { memorySize: 16 * MIB, cpus: 1 },
    { memorySize: 16 * MIB, cpus: 4 },
    { memorySize: 64 * MIB, cpus: 254 },
  ];
  for (const { memorySize, cpus } of shapes) {
    it(`${memorySize} bytes, ${cpus} vCPU(s): the same bytes as writing them, written and copied`, () => {
      const written = new Uint8Array(memorySize);
      writeFirmwareTables(written, memorySize, cpus);
      for (let round = 0; round < 4; round++) {
        const copied = new Uint8Array(memorySize);
        writeFreshFirmwareTables(copied, memorySize, cpus);
        expect(Buffer.compare(copied, written)).toBe(0);
      }
      if (memorySize >= VGA_HOLE_ADDRESS) expect(written.some((b) => b !== 0)).toBe(true);
    });
  }

  it('differs with the vCPU count (the MP table and MADT list every CPU)', () => {
    for (let round = 0; round < 3; round++) {
      const one = new Uint8Array(16 * MIB);
      const two = new Uint8Array(16 * MIB);
      writeFreshFirmwareTables(one, 16 * MIB, 1);
      writeFreshFirmwareTables(two, 16 * MIB, 2);
      expect(Buffer.compare(one, two)).not.toBe(0);
    }
  });
});

describe('nonZeroRuns', () => {
  it('finds each run, joins runs closer than the gap, and copies the bytes', () => {
    const bytes = new Uint8Array(64);
    bytes.set([1, 2], 3);
    bytes.set([3], 8); // 3 zeros after the first run: joined with gap 4
    bytes.set([4, 5], 30); // far: its own run
    bytes[63] = 6; // the last byte
    const runs = nonZeroRuns(bytes, 4);
    expect(runs.map((r) => [r.at, [...r.bytes]])).toEqual([
      [3, [1, 2, 0, 0, 0, 3]],
      [30, [4, 5]],
      [63, [6]],
    ]);
    expect(nonZeroRuns(bytes, 4, 0x1000).map((r) => r.at)).toEqual([0x1003, 0x101e, 0x103f]);
    bytes[3] = 9;
    expect(runs[0]!.bytes[0]).toBe(1); // a copy, not a view
  });

  it('an all-zero buffer has no runs; gap 1 joins nothing', () => {
    expect(nonZeroRuns(new Uint8Array(100), 8)).toEqual([]);
    const bytes = Uint8Array.from([1, 0, 1, 1, 0, 0, 1]);
    expect(nonZeroRuns(bytes, 1).map((r) => [r.at, r.bytes.length])).toEqual([
      [0, 1],
      [2, 2],
      [6, 1],
    ]);
  });
});
