/**
 * Where things live in a PC's address spaces, and where tskvm puts its boot-time structures.
 * One table so that the loaders, the firmware tables, the chipset and the CPU set-up never collide.
 *
 *   0x00000-0x003FF  real-mode IVT              0x00400-0x004FF  BIOS data area (BDA)
 *   0x00500-0x9FBFF  conventional memory: the guest's (boot sectors at 0x7C00, flat binaries at
 *                    0x10000, kernels linked low such as kvm-unit-tests' realmode at 0x8000)
 *   0x9FC00-0x9FFFF  EBDA (1 KiB)               0xA0000-0xBFFFF  VGA hole (not RAM in e820)
 *   0xC0000-0xEFFFF  option-ROM area: tskvm's boot GDT and long-mode page tables, where QEMU's
 *                    linuxboot/multiboot option ROMs keep theirs (not RAM in e820, so no guest
 *                    allocates it); moved elsewhere when a kernel segment lies there
 *   0xF0000-0xF1FFF  BIOS area: MP table        0xF2000-0xFDFFF  BIOS area: ACPI tables
 *   0xFE000-0xFFFFF  BIOS area: tskvm's BIOS ROM (src/bios), when the guest boots through it
 *   0x100000-        kernels (ELF, multiboot), their modules, then the multiboot information
 *
 * The loader (src/loader/placement.ts) places the boot data where no kernel segment or module
 * lies: the areas above are its first choices, not fixed addresses.
 */

export const IVT_ADDRESS = 0x0;
export const BDA_ADDRESS = 0x400;
/** The first byte after the IVT and BDA: the lowest address tskvm ever places boot data at. */
export const CONVENTIONAL_MEMORY_ADDRESS = 0x500;
export const EBDA_ADDRESS = 0x9fc00;
export const EBDA_SIZE = 0x400;
export const VGA_HOLE_ADDRESS = 0xa0000;
export const VGA_HOLE_END = 0xc0000;
export const OPTION_ROM_AREA_ADDRESS = 0xc0000;
export const OPTION_ROM_AREA_END = 0xf0000;
export const BIOS_AREA_ADDRESS = 0xf0000;
export const BIOS_AREA_END = 0x100000;
/** ACPI tables (RSDP first, 16-byte aligned where kernels scan 0xE0000-0xFFFFF for it). */
export const ACPI_AREA_ADDRESS = 0xf2000;
/** Below the BIOS ROM (src/bios/layout.ts ROM_OFFSET: the area's top 8 KiB). */
export const ACPI_AREA_END = 0xfe000;
/** Conventional memory the BIOS reports (mem_lower): everything below the EBDA. */
export const LOW_MEMORY_END = EBDA_ADDRESS;
export const HIGH_MEMORY_ADDRESS = 0x100000;

// --- Boot data sizes (the loader chooses the addresses) ----------------------------------------

/** The boot GDT: null, 32-bit code, data, 64-bit code descriptors (src/arch/x86/boot-cpu.ts). */
export const BOOT_GDT_SIZE = 4 * 8;
export const BOOT_GDT_ALIGN = 8;
/** PML4, PDPT and four page directories: 4 GiB identity-mapped in 2 MiB pages. */
export const PAGE_TABLES_SIZE = 6 * 0x1000;
export const PAGE_TABLES_ALIGN = 0x1000;
/**
 * Where the boot GDT and page tables go when nothing is in the way (the option-ROM area): what
 * applyBootState uses when its caller placed nothing itself.
 */
export const DEFAULT_BOOT_GDT_ADDRESS = OPTION_ROM_AREA_ADDRESS;
export const DEFAULT_PAGE_TABLES_ADDRESS = OPTION_ROM_AREA_ADDRESS + PAGE_TABLES_ALIGN;

// --- Chipset addresses (port I/O and MMIO), as QEMU's PC (i440FX/PIIX) decodes them -------------

/** PIIX4 power-management I/O block (PMBA as SeaBIOS programs it on QEMU's PC). */
export const PM_IO_BASE = 0x600;
/** System Control Interrupt: ISA IRQ 9, as PIIX4 wires it and QEMU's FADT says. */
export const SCI_IRQ = 9;
/** HPET registers (1 KiB), as the HPET table and QEMU place them. */
export const HPET_ADDRESS = 0xfed00000;
export const HPET_MMIO_SIZE = 0x400;
/** The in-kernel I/O APIC and local APICs (KVM's defaults). */
export const IOAPIC_ADDRESS = 0xfec00000;
export const LAPIC_ADDRESS = 0xfee00000;
/**
 * 32-bit PCI memory BARs are assigned in [PCI_MMIO_WINDOW_BASE, PCI_MMIO_WINDOW_END), above RAM,
 * as SeaBIOS does on QEMU's PC (its window starts at 0xE0000000 when RAM ends below it).
 */
export const PCI_MMIO_WINDOW_BASE = 0xe0000000;
export const PCI_MMIO_WINDOW_END = IOAPIC_ADDRESS;
/** PCI I/O BARs: from 0xC000 up, as SeaBIOS assigns them. */
export const PCI_IO_WINDOW_BASE = 0xc000;
export const PCI_IO_WINDOW_END = 0x10000;
