/**
 * pc-testdev's iomem before the guest writes it (src/devices/pc-testdev.ts allocates its 64 KiB
 * on the first write): it must read zero, save as 64 KiB of zeros, and restore like any other.
 */
import { describe, expect, it } from 'vitest';
import { PC_TESTDEV_IOMEM_SIZE, PcTestdevIomem } from '../../src/devices/pc-testdev.js';

describe('pc-testdev iomem never written', () => {
  it('reads zero everywhere, and past its end', () => {
    const mem = new PcTestdevIomem();
    for (const offset of [0, 0x1234, PC_TESTDEV_IOMEM_SIZE - 4, PC_TESTDEV_IOMEM_SIZE - 1]) {
      const out = new Uint8Array(4).fill(0xee);
      mem.mmioRead(offset, out);
      expect([...out]).toEqual([0, 0, 0, 0]);
    }
  });

  it('saves what a written-with-zeros one saves (64 KiB of zeros), and restores from it', () => {
    const fresh = new PcTestdevIomem().state();
    const zeroed = new PcTestdevIomem();
    zeroed.mmioWrite(0, new Uint8Array(8));
    expect(fresh).toEqual(zeroed.state());
    expect(Buffer.from(fresh.data, 'base64')).toEqual(Buffer.alloc(PC_TESTDEV_IOMEM_SIZE));
    const restored = new PcTestdevIomem();
    restored.restore(fresh);
    const out = new Uint8Array(2).fill(1);
    restored.mmioRead(PC_TESTDEV_IOMEM_SIZE - 2, out);
    expect([...out]).toEqual([0, 0]);
  });

  it('a read before the first write does not hide that write', () => {
    const mem = new PcTestdevIomem();
    mem.mmioRead(0x10, new Uint8Array(4));
    mem.mmioWrite(0x10, Uint8Array.of(5, 6));
    const out = new Uint8Array(3);
    mem.mmioRead(0x10, out);
    expect([...out]).toEqual([5, 6, 0]);
  });
});
