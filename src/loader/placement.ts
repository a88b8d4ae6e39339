/**
 * Where the loader puts the data a kernel boots with (the boot GDT, long-mode page tables, the
 * multiboot information and its strings): in free guest RAM, never under a kernel segment, a
 * module or the PC's own areas, as QEMU does (its GDT lives in an option ROM, the multiboot
 * information after the kernel). A kernel may then be linked anywhere in low memory — kvm-unit-tests'
 * realmode.flat is linked at 0x8000.
 *
 * A first-fit allocator over a list of preferred regions: each request names the regions it
 * would like, in order, and gets the lowest aligned address in the first one with room.
 */
import {
  BIOS_AREA_END,
  BOOT_GDT_ALIGN,
  BOOT_GDT_SIZE,
  CONVENTIONAL_MEMORY_ADDRESS,
  EBDA_ADDRESS,
  HIGH_MEMORY_ADDRESS,
  IVT_ADDRESS,
  LOW_MEMORY_END,
  OPTION_ROM_AREA_ADDRESS,
  OPTION_ROM_AREA_END,
  PAGE_TABLES_ALIGN,
  PAGE_TABLES_SIZE,
} from '../arch/x86/pc-layout.js';
import type { BootTables } from '../arch/x86/boot-cpu.js';
import { LoaderError } from './image.js';

export type { BootTables };

/** [start, end) in guest-physical bytes. */
export interface AddressRange {
  start: number;
  end: number;
}

/** 32-bit fields (multiboot) and the identity map (long mode) both end at 4 GiB. */
const ADDRESS_SPACE_32_END = 2 ** 32;

const hex = (n: number): string => `0x${n.toString(16)}`;
const alignUp = (n: number, to: number): number => Math.ceil(n / to) * to;

/**
 * The PC's own areas, never given out: the IVT and BDA, the EBDA, the VGA hole and the BIOS area
 * (the MP and ACPI tables). The option-ROM area is not here: it is where the boot tables go.
 */
export function pcReservedRanges(): AddressRange[] {
  return [
    { start: IVT_ADDRESS, end: CONVENTIONAL_MEMORY_ADDRESS },
    { start: EBDA_ADDRESS, end: OPTION_ROM_AREA_ADDRESS },
    { start: OPTION_ROM_AREA_END, end: BIOS_AREA_END },
  ];
}

export class BootDataAllocator {
  private readonly taken: AddressRange[];

  /**
   * @param memorySize guest RAM (one slot from 0): nothing is placed past it
   * @param occupied what the image uses (kernel segments with their bss, modules)
   */
  constructor(
    readonly memorySize: number,
    occupied: readonly AddressRange[],
  ) {
    this.taken = [...pcReservedRanges(), ...occupied.filter((r) => r.end > r.start)].sort((a, b) => a.start - b.start);
  }

  /** Marks a range used (a later request never overlaps it). */
  reserve(range: AddressRange): void {
    if (range.end <= range.start) return;
    this.taken.push(range);
    this.taken.sort((a, b) => a.start - b.start);
  }

  /**
   * The lowest `align`-aligned address where `size` bytes fit inside the first of `regions` that
   * has room (each clipped to RAM), reserved before returning. Undefined when none has room.
   */
  tryAllocate(size: number, align: number, regions: readonly AddressRange[]): number | undefined {
    for (const region of regions) {
      const end = Math.min(region.end, this.memorySize);
      let at = alignUp(region.start, align);
      for (;;) {
        if (at + size > end) break;
        const clash = this.taken.find((r) => r.start < at + size && r.end > at);
        if (clash === undefined) {
          this.reserve({ start: at, end: at + size });
          return at;
        }
        at = alignUp(clash.end, align);
      }
    }
    return undefined;
  }

  /** As tryAllocate, but a LoaderError naming `what` when there is no room anywhere. */
  allocate(size: number, align: number, regions: readonly AddressRange[], what: string): number {
    const at = this.tryAllocate(size, align, regions);
    if (at !== undefined) return at;
    const used = this.taken.map((r) => `${hex(r.start)}-${hex(r.end)}`).join(', ');
    throw new LoaderError(
      `there is no room in guest RAM (${this.memorySize} bytes) for ${what} (${size} bytes): the kernel, its modules and the PC's ` +
        `own areas use ${used}; raise options.memory or link the kernel elsewhere`,
    );
  }

  /** The end of the highest occupied range below 4 GiB (kernel, modules), or 1 MiB if lower. */
  highestEnd(): number {
    return this.taken.reduce((max, r) => (r.end <= ADDRESS_SPACE_32_END ? Math.max(max, r.end) : max), HIGH_MEMORY_ADDRESS);
  }
}

/** The option-ROM area first, then conventional memory, then anywhere below 4 GiB. */
export function bootTableRegions(): AddressRange[] {
  return [
    { start: OPTION_ROM_AREA_ADDRESS, end: OPTION_ROM_AREA_END },
    { start: CONVENTIONAL_MEMORY_ADDRESS, end: LOW_MEMORY_END },
    { start: HIGH_MEMORY_ADDRESS, end: ADDRESS_SPACE_32_END },
  ];
}

/**
 * Places the boot GDT (protected and long mode) and the identity page tables (long mode only).
 * With nothing in the way they land at DEFAULT_BOOT_GDT_ADDRESS and DEFAULT_PAGE_TABLES_ADDRESS.
 */
export function placeBootTables(allocator: BootDataAllocator, longMode: boolean): BootTables {
  const regions = bootTableRegions();
  const gdtAddress = allocator.allocate(BOOT_GDT_SIZE, BOOT_GDT_ALIGN, regions, 'the boot GDT');
  if (!longMode) return { gdtAddress };
  return { gdtAddress, pageTablesAddress: allocator.allocate(PAGE_TABLES_SIZE, PAGE_TABLES_ALIGN, regions, 'the long-mode page tables') };
}
