/**
 * Where things live in a PC's first megabyte, and where tskvm puts its boot-time structures.
 * One table so that the loaders, the machine description and the CPU set-up never collide.
 *
 *   0x00000-0x003FF  real-mode IVT              0x00400-0x004FF  BIOS data area (BDA)
 *   0x00500-0x0051F  boot GDT (tskvm)           0x01000-0x06FFF  long-mode page tables (tskvm)
 *   0x07000-0x07BFF  multiboot info & strings   0x07C00-0x07DFF  boot sector
 *   0x08000-0x0FFFF  multiboot memory map, module list, command lines
 *   0x10000-...      flat binaries (kvmtool's convention)
 *   0x9FC00-0x9FFFF  EBDA (1 KiB)               0xA0000-0xBFFFF  VGA hole (not RAM in e820)
 *   0xC0000-0xEFFFF  option ROMs                0xF0000-0xFFFFF  BIOS area: MP table / ACPI
 *   0x100000-        kernels (ELF, multiboot) and their modules
 */

export const IVT_ADDRESS = 0x0;
export const BDA_ADDRESS = 0x400;
export const BOOT_GDT_ADDRESS = 0x500;
/** PML4 at 0x1000, PDPT at 0x2000, four page directories at 0x3000-0x6FFF: 4 GiB in 2 MiB pages. */
export const PAGE_TABLES_ADDRESS = 0x1000;
export const PAGE_TABLES_END = 0x7000;
export const MULTIBOOT_INFO_ADDRESS = 0x7000;
export const MULTIBOOT_INFO_END = 0x7c00;
export const MULTIBOOT_DATA_ADDRESS = 0x8000;
export const MULTIBOOT_DATA_END = 0x10000;
export const EBDA_ADDRESS = 0x9fc00;
export const EBDA_SIZE = 0x400;
export const VGA_HOLE_ADDRESS = 0xa0000;
export const VGA_HOLE_END = 0xc0000;
export const BIOS_AREA_ADDRESS = 0xf0000;
export const BIOS_AREA_END = 0x100000;
/** Conventional memory the BIOS reports (mem_lower): everything below the EBDA. */
export const LOW_MEMORY_END = EBDA_ADDRESS;
export const HIGH_MEMORY_ADDRESS = 0x100000;
