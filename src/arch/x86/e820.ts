/**
 * The guest's physical memory map, as the BIOS reports it through INT 15h, AX=E820h. Multiboot
 * passes the same entries to the kernel (mmap_addr), and mem_lower/mem_upper are derived from it.
 */
import { BIOS_AREA_ADDRESS, BIOS_AREA_END, EBDA_ADDRESS, EBDA_SIZE, HIGH_MEMORY_ADDRESS } from './pc-layout.js';

/** One range of the E820 map: `length` bytes from guest-physical `base`, of kind `type`. */
export interface E820Entry {
  base: number;
  length: number;
  type: number;
}

/** E820 address-range types (ACPI "Address Range Descriptor" types 1 and 2). */
export const E820_RAM = 1;
export const E820_RESERVED = 2;

/**
 * QEMU's PC layout (as SeaBIOS reports it): conventional memory below the EBDA, the EBDA and the
 * BIOS area reserved, the VGA hole and option-ROM space left out, and RAM from 1 MiB to the end of
 * guest memory. tskvm maps all RAM in one slot from 0, so there is no PCI hole below 4 GiB.
 */
export function pcE820Map(memorySize: number): E820Entry[] {
  if (!Number.isSafeInteger(memorySize) || memorySize <= 0) {
    throw new RangeError(`memory size must be a positive whole number of bytes, not ${memorySize}`);
  }
  const map: E820Entry[] = [
    // A guest smaller than 639 KiB simply has less conventional memory.
    { base: 0, length: Math.min(memorySize, EBDA_ADDRESS), type: E820_RAM },
    { base: EBDA_ADDRESS, length: EBDA_SIZE, type: E820_RESERVED },
    { base: BIOS_AREA_ADDRESS, length: BIOS_AREA_END - BIOS_AREA_ADDRESS, type: E820_RESERVED },
  ];
  if (memorySize > HIGH_MEMORY_ADDRESS) {
    map.push({ base: HIGH_MEMORY_ADDRESS, length: memorySize - HIGH_MEMORY_ADDRESS, type: E820_RAM });
  }
  return map;
}
