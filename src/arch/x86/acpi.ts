/**
 * The ACPI tables a PC's firmware leaves for the OS (ACPI 6.5 chapter 5), written straight into
 * guest RAM in the BIOS area, where a kernel without UEFI scans for the RSDP (0xE0000-0xFFFFF,
 * 16-byte aligned): RSDP (revision 2) → RSDT and XSDT → FADT (→ FACS, DSDT), MADT, HPET.
 * kvm-unit-tests finds its FADT, FACS and MADT this way (the s3 test, PM-timer vmexits); Linux
 * finds its CPUs, I/O APIC, SCI, PM timer, reset register and HPET.
 *
 * What they describe is QEMU's PC (i440FX/PIIX4), as tskvm's chipset models it:
 * - FADT: PM1a event block at PM base (0x600, 4 bytes), PM1a control at +4 (2), PM timer at +8
 *   (4; TMR_VAL_EXT when it is 32-bit), GPE0 at +0xC (4), SCI on IRQ 9, no SMI_CMD (the machine
 *   is always in ACPI mode), C2/C3 unsupported, the RTC century byte at CMOS 0x32, the reset
 *   register at 0xCF9 (value 0x06, a hard reset), and the FACS and DSDT (32- and 64-bit pointers).
 * - FACS: 64 bytes, 64-byte aligned; the OS writes its waking vector there for S3.
 * - DSDT: hand-assembled AML: \_S3_ and \_S5_ sleep-type packages (SLP_TYP 1 and 0, QEMU's PIIX4
 *   values), \_SB.PCI0 (the PCI root, PNP0A03) and \_SB.HPET (PNP0103 with its registers).
 * - MADT: the local APIC address, PCAT_COMPAT (8259s present), one enabled local APIC per vCPU
 *   (ACPI processor UID = APIC ID = index), the I/O APIC (GSI base 0), the interrupt source
 *   overrides IRQ0 → GSI 2 (the timer, edge/high as ISA) and IRQ 9 → GSI 9 (the SCI, level,
 *   active high, as QEMU declares it), and a local APIC NMI on LINT1 for every processor.
 * - HPET: event timer block ID (the HPET's GCAP_ID low half), base 0xFED00000, HPET number 0.
 *
 * The MP table (pc-tables.ts) stays: both coexist on a PC, in separate parts of the BIOS area.
 * Every table's checksum makes its bytes sum to 0 mod 256 (the RSDP's first 20 bytes too).
 */
import { checkInteger } from '../../check.js';
import { checksumByte } from './pc-tables.js';
import {
  ACPI_AREA_ADDRESS,
  ACPI_AREA_END,
  HPET_ADDRESS,
  HPET_MMIO_SIZE,
  IOAPIC_ADDRESS,
  LAPIC_ADDRESS,
  PM_IO_BASE,
  SCI_IRQ,
} from './pc-layout.js';

// --- Common table header (§5.2.6) ----------------------------------------------------------------

export const ACPI_HEADER_SIZE = 36;
export const ACPI_HDR_SIGNATURE = 0;
export const ACPI_HDR_LENGTH = 4;
export const ACPI_HDR_REVISION = 8;
export const ACPI_HDR_CHECKSUM = 9;
export const ACPI_HDR_OEM_ID = 10;
export const ACPI_HDR_OEM_TABLE_ID = 16;
export const ACPI_HDR_OEM_REVISION = 24;
export const ACPI_HDR_CREATOR_ID = 28;
export const ACPI_HDR_CREATOR_REVISION = 32;
export const ACPI_OEM_ID = 'TSKVM ';
export const ACPI_OEM_TABLE_ID = 'TSKVMPC ';
export const ACPI_OEM_REVISION = 1;
export const ACPI_CREATOR_ID = 'TSKV';
export const ACPI_CREATOR_REVISION = 1;

// --- RSDP (§5.2.5.3) -------------------------------------------------------------------------------

export const RSDP_SIGNATURE = 'RSD PTR ';
export const RSDP_SIZE = 36;
export const RSDP_V1_SIZE = 20;
export const RSDP_CHECKSUM = 8;
export const RSDP_OEM_ID = 9;
export const RSDP_REVISION = 15;
export const RSDP_RSDT_ADDRESS = 16;
export const RSDP_LENGTH = 20;
export const RSDP_XSDT_ADDRESS = 24;
export const RSDP_EXTENDED_CHECKSUM = 32;
/** Revision 2: ACPI 2.0 and later (RSDT and XSDT). */
export const RSDP_REVISION_2 = 2;
/** Where an OS without UEFI looks for the RSDP (16-byte aligned). */
export const RSDP_SCAN_START = 0xe0000;
export const RSDP_SCAN_END = 0x100000;

// --- FADT (§5.2.9), revision 3: the ACPI 2.0 layout with the 64-bit X_ fields ---------------------

export const FADT_SIGNATURE = 'FACP';
export const FADT_REVISION = 3;
export const FADT_SIZE = 244;
export const FADT_FIRMWARE_CTRL = 36;
export const FADT_DSDT = 40;
export const FADT_PREFERRED_PM_PROFILE = 45;
export const FADT_SCI_INT = 46;
export const FADT_SMI_CMD = 48;
export const FADT_PM1A_EVT_BLK = 56;
export const FADT_PM1A_CNT_BLK = 64;
export const FADT_PM_TMR_BLK = 76;
export const FADT_GPE0_BLK = 80;
export const FADT_PM1_EVT_LEN = 88;
export const FADT_PM1_CNT_LEN = 89;
export const FADT_PM_TMR_LEN = 91;
export const FADT_GPE0_BLK_LEN = 92;
export const FADT_P_LVL2_LAT = 96;
export const FADT_P_LVL3_LAT = 98;
export const FADT_CENTURY = 108;
export const FADT_IAPC_BOOT_ARCH = 109;
export const FADT_FLAGS = 112;
export const FADT_RESET_REG = 116;
export const FADT_RESET_VALUE = 128;
export const FADT_X_FIRMWARE_CTRL = 132;
export const FADT_X_DSDT = 140;
export const FADT_X_PM1A_EVT_BLK = 148;
export const FADT_X_PM1A_CNT_BLK = 172;
export const FADT_X_PM_TMR_BLK = 208;
export const FADT_X_GPE0_BLK = 220;

// FADT flags.
export const FADT_F_WBINVD = 1 << 0;
export const FADT_F_PROC_C1 = 1 << 2;
export const FADT_F_SLP_BUTTON = 1 << 5;
export const FADT_F_RTC_S4 = 1 << 7;
export const FADT_F_TMR_VAL_EXT = 1 << 8;
export const FADT_F_RESET_REG_SUP = 1 << 10;
export const FADT_F_USE_PLATFORM_CLOCK = 1 << 15;
export const FADT_F_FORCE_APIC_PHYSICAL_DESTINATION_MODE = 1 << 19;
/** Above this many CPUs, xAPIC logical flat mode cannot address them all (QEMU sets the flag too). */
const FLAT_LOGICAL_MAX_CPUS = 8;
// IA-PC boot architecture flags.
export const IAPC_BOOT_ARCH_LEGACY_DEVICES = 1 << 0;
export const IAPC_BOOT_ARCH_8042 = 1 << 1;
export const IAPC_BOOT_ARCH_VGA_NOT_PRESENT = 1 << 2;
/** "Not supported" latencies: above 100 µs (C2) and 1000 µs (C3). */
export const FADT_C2_UNSUPPORTED = 0xfff;
export const FADT_C3_UNSUPPORTED = 0xfff;
/** CMOS index of the RTC century byte. */
export const FADT_CENTURY_CMOS_INDEX = 0x32;
/** The PIIX/ICH reset control register and the value that resets the system. */
export const ACPI_RESET_PORT = 0xcf9;
export const ACPI_RESET_VALUE = 0x06;

// Generic Address Structure (§5.2.3.2).
export const GAS_SIZE = 12;
export const GAS_SPACE_SYSTEM_MEMORY = 0;
export const GAS_SPACE_SYSTEM_IO = 1;
export const GAS_ACCESS_BYTE = 1;
const GAS_BIT_WIDTH = 1;
const GAS_BIT_OFFSET = 2;
const GAS_ACCESS_SIZE = 3;
const GAS_ADDRESS = 4;

// PM block layout (the PIIX4 one the chipset's AcpiPm implements).
export const PM1_EVT_OFFSET = 0x00;
export const PM1_EVT_LEN = 4;
export const PM1_CNT_OFFSET = 0x04;
export const PM1_CNT_LEN = 2;
export const PM_TMR_OFFSET = 0x08;
export const PM_TMR_LEN = 4;
export const GPE0_OFFSET = 0x0c;
export const GPE0_LEN = 4;

// --- FACS (§5.2.10) ------------------------------------------------------------------------------

export const FACS_SIGNATURE = 'FACS';
export const FACS_SIZE = 64;
export const FACS_ALIGN = 64;
export const FACS_LENGTH = 4;
export const FACS_HARDWARE_SIGNATURE = 8;
export const FACS_FIRMWARE_WAKING_VECTOR = 12;
export const FACS_GLOBAL_LOCK = 16;
export const FACS_FLAGS = 20;
export const FACS_X_FIRMWARE_WAKING_VECTOR = 24;
export const FACS_VERSION = 32;
export const FACS_VERSION_2 = 2;

// --- MADT (§5.2.12) ------------------------------------------------------------------------------

export const MADT_SIGNATURE = 'APIC';
export const MADT_REVISION = 3;
export const MADT_LOCAL_APIC_ADDRESS = 36;
export const MADT_FLAGS = 40;
export const MADT_HEADER_SIZE = 44;
export const MADT_PCAT_COMPAT = 1 << 0;
export const MADT_TYPE_LOCAL_APIC = 0;
export const MADT_TYPE_IO_APIC = 1;
export const MADT_TYPE_INTERRUPT_OVERRIDE = 2;
export const MADT_TYPE_LOCAL_APIC_NMI = 4;
export const MADT_LOCAL_APIC_SIZE = 8;
export const MADT_IO_APIC_SIZE = 12;
export const MADT_INTERRUPT_OVERRIDE_SIZE = 10;
export const MADT_LOCAL_APIC_NMI_SIZE = 6;
export const MADT_LOCAL_APIC_ENABLED = 1 << 0;
/** MPS INTI flags: polarity bits 0-1 (1 = active high), trigger bits 2-3 (1 = edge, 3 = level). */
export const MPS_INTI_CONFORMS = 0x0000;
export const MPS_INTI_POLARITY_HIGH = 0x0001;
export const MPS_INTI_TRIGGER_LEVEL = 0x000c;
/** The SCI override as QEMU writes it: level-triggered, active high. */
export const SCI_OVERRIDE_FLAGS = MPS_INTI_POLARITY_HIGH | MPS_INTI_TRIGGER_LEVEL;
export const ISA_BUS = 0;
export const TIMER_IRQ = 0;
export const TIMER_GSI = 2;
/** "All processors" in a local APIC NMI entry. */
export const ACPI_ALL_PROCESSORS = 0xff;
export const LINT1 = 1;
/** ACPI processor UIDs and APIC IDs are 8 bits here; 0xFF means "all". */
export const ACPI_MAX_CPUS = 254;

// --- HPET table (IA-PC HPET specification §3.2.4) -----------------------------------------------

export const HPET_SIGNATURE = 'HPET';
export const HPET_TABLE_REVISION = 1;
export const HPET_TABLE_SIZE = 56;
export const HPET_EVENT_TIMER_BLOCK_ID = 36;
export const HPET_BASE_ADDRESS = 40;
export const HPET_NUMBER = 52;
export const HPET_MIN_CLOCK_TICK = 53;
export const HPET_PAGE_PROTECTION = 55;
/** Minimum periodic tick QEMU reports (0: no minimum). */
const HPET_MIN_TICK = 0;

// --- Other tables ----------------------------------------------------------------------------------

export const RSDT_SIGNATURE = 'RSDT';
export const XSDT_SIGNATURE = 'XSDT';
export const DSDT_SIGNATURE = 'DSDT';
export const RSDT_REVISION = 1;
export const XSDT_REVISION = 1;
/** Revision 2: 64-bit AML integers. */
export const DSDT_REVISION = 2;
const TABLE_ALIGN = 16;
/** The DSDT's \_S3_ and \_S5_ SLP_TYP values (what the PM1 control register expects). */
export const SLP_TYP_S3 = 1;
export const SLP_TYP_S5 = 0;

const BYTE_MASK = 0xff;
const U32_MAX = 0xffffffff;

export interface AcpiConfig {
  /** vCPUs: 1 to ACPI_MAX_CPUS, APIC IDs 0..cpus-1. */
  cpus: number;
  /** The I/O APIC's ID (default `cpus`, as the MP table gives it). */
  ioapicId?: number;
  ioapicAddress?: number;
  lapicAddress?: number;
  /** The PM I/O block (default 0x600). */
  pmBase?: number;
  /** A 32-bit PM timer (FADT TMR_VAL_EXT); default 24-bit. */
  pmTimer32?: boolean;
  sciIrq?: number;
  /** The HPET: its registers' address and GCAP_ID's low 32 bits; absent for a machine without one. */
  hpet?: { address?: number; eventTimerBlockId: number };
}

/** Where each table went. */
export interface AcpiTables {
  rsdp: number;
  rsdt: number;
  xsdt: number;
  fadt: number;
  facs: number;
  dsdt: number;
  madt: number;
  hpet?: number;
  /** End (exclusive) of the last table. */
  end: number;
}

/** Writes the ACPI tables into the BIOS area (ACPI_AREA_ADDRESS); returns where each one lies. */
export function writeAcpiTables(memory: Uint8Array, config: AcpiConfig): AcpiTables {
  const { cpus } = config;
  checkInteger('cpus', cpus, 1, ACPI_MAX_CPUS);
  const ioapicId = config.ioapicId ?? cpus;
  checkInteger('ioapicId', ioapicId, 0, ACPI_ALL_PROCESSORS - 1);
  const pmBase = config.pmBase ?? PM_IO_BASE;
  checkInteger('pmBase', pmBase, 0, 0xffff - 0x3f);
  const sciIrq = config.sciIrq ?? SCI_IRQ;
  checkInteger('sciIrq', sciIrq, 0, 15);
  if (memory.length < ACPI_AREA_END) {
    throw new RangeError(`the ACPI tables need guest RAM up to 0x${ACPI_AREA_END.toString(16)}, but there are only ${memory.length} bytes`);
  }

  // Build every table first (sizes known), then lay them out and fix up the pointers.
  const dsdt = table(DSDT_SIGNATURE, DSDT_REVISION, dsdtAml(config.hpet ? { address: config.hpet.address ?? HPET_ADDRESS } : undefined));
  const madt = madtTable(cpus, ioapicId, config.ioapicAddress ?? IOAPIC_ADDRESS, config.lapicAddress ?? LAPIC_ADDRESS, sciIrq);
  const hpet = config.hpet ? hpetTable(config.hpet.address ?? HPET_ADDRESS, config.hpet.eventTimerBlockId) : undefined;

  let cursor = ACPI_AREA_ADDRESS;
  const place = (size: number, align = TABLE_ALIGN): number => {
    const at = Math.ceil(cursor / align) * align;
    cursor = at + size;
    if (cursor > ACPI_AREA_END)
      throw new RangeError(`the ACPI tables do not fit in 0x${ACPI_AREA_ADDRESS.toString(16)}-0x${ACPI_AREA_END.toString(16)}`);
    return at;
  };
  const rsdpAt = place(RSDP_SIZE);
  const facsAt = place(FACS_SIZE, FACS_ALIGN);
  const dsdtAt = place(dsdt.length);
  const fadtAt = place(FADT_SIZE);
  const madtAt = place(madt.length);
  const hpetAt = hpet ? place(hpet.length) : undefined;
  const entries = [fadtAt, madtAt, ...(hpetAt === undefined ? [] : [hpetAt])];
  const rsdtAt = place(ACPI_HEADER_SIZE + 4 * entries.length);
  const xsdtAt = place(ACPI_HEADER_SIZE + 8 * entries.length);

  const fadt = fadtTable({ facs: facsAt, dsdt: dsdtAt, pmBase, sciIrq, timer32: config.pmTimer32 ?? false, cpus });
  const rsdt = table(RSDT_SIGNATURE, RSDT_REVISION, pointers(entries, 4));
  const xsdt = table(XSDT_SIGNATURE, XSDT_REVISION, pointers(entries, 8));

  memory.fill(0, ACPI_AREA_ADDRESS, cursor);
  memory.set(rsdp(rsdtAt, xsdtAt), rsdpAt);
  memory.set(facsTable(), facsAt);
  memory.set(dsdt, dsdtAt);
  memory.set(fadt, fadtAt);
  memory.set(madt, madtAt);
  if (hpet && hpetAt !== undefined) memory.set(hpet, hpetAt);
  memory.set(rsdt, rsdtAt);
  memory.set(xsdt, xsdtAt);
  return {
    rsdp: rsdpAt,
    rsdt: rsdtAt,
    xsdt: xsdtAt,
    fadt: fadtAt,
    facs: facsAt,
    dsdt: dsdtAt,
    madt: madtAt,
    ...(hpetAt === undefined ? {} : { hpet: hpetAt }),
    end: cursor,
  };
}

/** A table: the common header (length and checksum filled in) followed by `body`. */
function table(signature: string, revision: number, body: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(ACPI_HEADER_SIZE + body.length);
  const view = new DataView(bytes.buffer);
  putAscii(bytes, ACPI_HDR_SIGNATURE, signature);
  view.setUint32(ACPI_HDR_LENGTH, bytes.length, true);
  bytes[ACPI_HDR_REVISION] = revision;
  putAscii(bytes, ACPI_HDR_OEM_ID, ACPI_OEM_ID);
  putAscii(bytes, ACPI_HDR_OEM_TABLE_ID, ACPI_OEM_TABLE_ID);
  view.setUint32(ACPI_HDR_OEM_REVISION, ACPI_OEM_REVISION, true);
  putAscii(bytes, ACPI_HDR_CREATOR_ID, ACPI_CREATOR_ID);
  view.setUint32(ACPI_HDR_CREATOR_REVISION, ACPI_CREATOR_REVISION, true);
  bytes.set(body, ACPI_HEADER_SIZE);
  bytes[ACPI_HDR_CHECKSUM] = checksumByte(bytes);
  return bytes;
}

/** A whole table built in place (FADT, MADT, HPET): the header fields, then the checksum. */
function finishTable(bytes: Uint8Array, signature: string, revision: number): Uint8Array {
  const header = table(signature, revision, new Uint8Array(0));
  bytes.set(header.subarray(0, ACPI_HEADER_SIZE), 0);
  new DataView(bytes.buffer).setUint32(ACPI_HDR_LENGTH, bytes.length, true);
  bytes[ACPI_HDR_CHECKSUM] = 0;
  bytes[ACPI_HDR_CHECKSUM] = checksumByte(bytes);
  return bytes;
}

function pointers(addresses: readonly number[], width: 4 | 8): Uint8Array {
  const bytes = new Uint8Array(addresses.length * width);
  const view = new DataView(bytes.buffer);
  addresses.forEach((a, i) => (width === 4 ? view.setUint32(i * 4, a, true) : view.setBigUint64(i * 8, BigInt(a), true)));
  return bytes;
}

function rsdp(rsdt: number, xsdt: number): Uint8Array {
  const bytes = new Uint8Array(RSDP_SIZE);
  const view = new DataView(bytes.buffer);
  putAscii(bytes, 0, RSDP_SIGNATURE);
  putAscii(bytes, RSDP_OEM_ID, ACPI_OEM_ID);
  bytes[RSDP_REVISION] = RSDP_REVISION_2;
  view.setUint32(RSDP_RSDT_ADDRESS, rsdt, true);
  view.setUint32(RSDP_LENGTH, RSDP_SIZE, true);
  view.setBigUint64(RSDP_XSDT_ADDRESS, BigInt(xsdt), true);
  // The ACPI 1.0 checksum covers the first 20 bytes; the extended one the whole structure.
  bytes[RSDP_CHECKSUM] = checksumByte(bytes.subarray(0, RSDP_V1_SIZE));
  bytes[RSDP_EXTENDED_CHECKSUM] = checksumByte(bytes);
  return bytes;
}

function facsTable(): Uint8Array {
  const bytes = new Uint8Array(FACS_SIZE);
  const view = new DataView(bytes.buffer);
  putAscii(bytes, 0, FACS_SIGNATURE);
  view.setUint32(FACS_LENGTH, FACS_SIZE, true);
  // Hardware signature 0 (no hardware change to report), waking vectors 0 (the OS sets one), no global lock owner.
  bytes[FACS_VERSION] = FACS_VERSION_2;
  return bytes; // the FACS has no checksum
}

function gas(bytes: Uint8Array, at: number, space: number, bitWidth: number, accessSize: number, address: number): void {
  bytes[at] = space;
  bytes[at + GAS_BIT_WIDTH] = bitWidth;
  bytes[at + GAS_BIT_OFFSET] = 0;
  bytes[at + GAS_ACCESS_SIZE] = accessSize;
  new DataView(bytes.buffer).setBigUint64(at + GAS_ADDRESS, BigInt(address), true);
}

function fadtTable(o: { facs: number; dsdt: number; pmBase: number; sciIrq: number; timer32: boolean; cpus: number }): Uint8Array {
  const bytes = new Uint8Array(FADT_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(FADT_FIRMWARE_CTRL, o.facs, true);
  view.setUint32(FADT_DSDT, o.dsdt, true);
  view.setUint16(FADT_SCI_INT, o.sciIrq, true);
  view.setUint32(FADT_SMI_CMD, 0, true); // no SMM: always in ACPI mode, SCI_EN set from reset
  view.setUint32(FADT_PM1A_EVT_BLK, o.pmBase + PM1_EVT_OFFSET, true);
  view.setUint32(FADT_PM1A_CNT_BLK, o.pmBase + PM1_CNT_OFFSET, true);
  view.setUint32(FADT_PM_TMR_BLK, o.pmBase + PM_TMR_OFFSET, true);
  view.setUint32(FADT_GPE0_BLK, o.pmBase + GPE0_OFFSET, true);
  bytes[FADT_PM1_EVT_LEN] = PM1_EVT_LEN;
  bytes[FADT_PM1_CNT_LEN] = PM1_CNT_LEN;
  bytes[FADT_PM_TMR_LEN] = PM_TMR_LEN;
  bytes[FADT_GPE0_BLK_LEN] = GPE0_LEN;
  view.setUint16(FADT_P_LVL2_LAT, FADT_C2_UNSUPPORTED, true);
  view.setUint16(FADT_P_LVL3_LAT, FADT_C3_UNSUPPORTED, true);
  bytes[FADT_CENTURY] = FADT_CENTURY_CMOS_INDEX;
  view.setUint16(FADT_IAPC_BOOT_ARCH, IAPC_BOOT_ARCH_LEGACY_DEVICES | IAPC_BOOT_ARCH_8042 | IAPC_BOOT_ARCH_VGA_NOT_PRESENT, true);
  let flags = FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON | FADT_F_RTC_S4 | FADT_F_RESET_REG_SUP | FADT_F_USE_PLATFORM_CLOCK;
  if (o.timer32) flags |= FADT_F_TMR_VAL_EXT;
  if (o.cpus > FLAT_LOGICAL_MAX_CPUS) flags |= FADT_F_FORCE_APIC_PHYSICAL_DESTINATION_MODE;
  view.setUint32(FADT_FLAGS, flags >>> 0, true);
  gas(bytes, FADT_RESET_REG, GAS_SPACE_SYSTEM_IO, 8, GAS_ACCESS_BYTE, ACPI_RESET_PORT);
  bytes[FADT_RESET_VALUE] = ACPI_RESET_VALUE;
  view.setBigUint64(FADT_X_FIRMWARE_CTRL, BigInt(o.facs), true);
  view.setBigUint64(FADT_X_DSDT, BigInt(o.dsdt), true);
  gas(bytes, FADT_X_PM1A_EVT_BLK, GAS_SPACE_SYSTEM_IO, PM1_EVT_LEN * 8, 0, o.pmBase + PM1_EVT_OFFSET);
  gas(bytes, FADT_X_PM1A_CNT_BLK, GAS_SPACE_SYSTEM_IO, PM1_CNT_LEN * 8, 0, o.pmBase + PM1_CNT_OFFSET);
  gas(bytes, FADT_X_PM_TMR_BLK, GAS_SPACE_SYSTEM_IO, PM_TMR_LEN * 8, 0, o.pmBase + PM_TMR_OFFSET);
  gas(bytes, FADT_X_GPE0_BLK, GAS_SPACE_SYSTEM_IO, GPE0_LEN * 8, 0, o.pmBase + GPE0_OFFSET);
  return finishTable(bytes, FADT_SIGNATURE, FADT_REVISION);
}

function madtTable(cpus: number, ioapicId: number, ioapicAddress: number, lapicAddress: number, sciIrq: number): Uint8Array {
  checkInteger('ioapicAddress', ioapicAddress, 0, U32_MAX);
  checkInteger('lapicAddress', lapicAddress, 0, U32_MAX);
  const overrides = [
    { irq: TIMER_IRQ, gsi: TIMER_GSI, flags: MPS_INTI_CONFORMS },
    { irq: sciIrq, gsi: sciIrq, flags: SCI_OVERRIDE_FLAGS },
  ];
  const size =
    MADT_HEADER_SIZE +
    cpus * MADT_LOCAL_APIC_SIZE +
    MADT_IO_APIC_SIZE +
    overrides.length * MADT_INTERRUPT_OVERRIDE_SIZE +
    MADT_LOCAL_APIC_NMI_SIZE;
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setUint32(MADT_LOCAL_APIC_ADDRESS, lapicAddress, true);
  view.setUint32(MADT_FLAGS, MADT_PCAT_COMPAT, true);
  let at = MADT_HEADER_SIZE;
  for (let cpu = 0; cpu < cpus; cpu++) {
    bytes[at] = MADT_TYPE_LOCAL_APIC;
    bytes[at + 1] = MADT_LOCAL_APIC_SIZE;
    bytes[at + 2] = cpu; // ACPI processor UID
    bytes[at + 3] = cpu; // APIC ID
    view.setUint32(at + 4, MADT_LOCAL_APIC_ENABLED, true);
    at += MADT_LOCAL_APIC_SIZE;
  }
  bytes[at] = MADT_TYPE_IO_APIC;
  bytes[at + 1] = MADT_IO_APIC_SIZE;
  bytes[at + 2] = ioapicId;
  view.setUint32(at + 4, ioapicAddress, true);
  view.setUint32(at + 8, 0, true); // GSI base
  at += MADT_IO_APIC_SIZE;
  for (const o of overrides) {
    bytes[at] = MADT_TYPE_INTERRUPT_OVERRIDE;
    bytes[at + 1] = MADT_INTERRUPT_OVERRIDE_SIZE;
    bytes[at + 2] = ISA_BUS;
    bytes[at + 3] = o.irq;
    view.setUint32(at + 4, o.gsi, true);
    view.setUint16(at + 8, o.flags, true);
    at += MADT_INTERRUPT_OVERRIDE_SIZE;
  }
  bytes[at] = MADT_TYPE_LOCAL_APIC_NMI;
  bytes[at + 1] = MADT_LOCAL_APIC_NMI_SIZE;
  bytes[at + 2] = ACPI_ALL_PROCESSORS;
  view.setUint16(at + 3, MPS_INTI_CONFORMS, true);
  bytes[at + 5] = LINT1;
  return finishTable(bytes, MADT_SIGNATURE, MADT_REVISION);
}

function hpetTable(address: number, blockId: number): Uint8Array {
  checkInteger('HPET address', address, 0, U32_MAX);
  checkInteger('HPET event timer block ID', blockId, 0, U32_MAX);
  const bytes = new Uint8Array(HPET_TABLE_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(HPET_EVENT_TIMER_BLOCK_ID, blockId, true);
  gas(bytes, HPET_BASE_ADDRESS, GAS_SPACE_SYSTEM_MEMORY, 64, 0, address);
  bytes[HPET_NUMBER] = 0;
  view.setUint16(HPET_MIN_CLOCK_TICK, HPET_MIN_TICK, true);
  bytes[HPET_PAGE_PROTECTION] = 0; // no page protection
  return finishTable(bytes, HPET_SIGNATURE, HPET_TABLE_REVISION);
}

// --- AML (ACPI 6.5 chapter 20), just what the DSDT needs -----------------------------------------

export const AML_ZERO_OP = 0x00;
export const AML_ONE_OP = 0x01;
export const AML_NAME_OP = 0x08;
export const AML_BYTE_PREFIX = 0x0a;
export const AML_WORD_PREFIX = 0x0b;
export const AML_DWORD_PREFIX = 0x0c;
export const AML_SCOPE_OP = 0x10;
export const AML_BUFFER_OP = 0x11;
export const AML_PACKAGE_OP = 0x12;
export const AML_EXT_OP_PREFIX = 0x5b;
export const AML_DEVICE_OP = 0x82; // after the extended-op prefix
export const AML_ROOT_CHAR = 0x5c; // '\'
// Resource descriptors (§6.4).
export const RES_MEMORY32_FIXED = 0x86;
export const RES_MEMORY32_FIXED_LENGTH = 9;
export const RES_MEMORY32_READ_WRITE = 0x01;
export const RES_END_TAG = 0x79;
/** PkgLength: one byte holds up to 63; longer lengths take 1-3 more bytes, 4 bits in the first. */
const PKG_LENGTH_ONE_BYTE_MAX = 0x3f;
const PKG_LENGTH_LOW_NIBBLE = 0x0f;
const PKG_LENGTH_COUNT_SHIFT = 6;
const NAME_SEG_LENGTH = 4;

const cat = (...parts: (Uint8Array | readonly number[])[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

/** The PkgLength encoding of a package whose contents (after the PkgLength) are `contentLength` bytes. */
export function amlPkgLength(contentLength: number): Uint8Array {
  for (let extra = 0; extra <= 3; extra++) {
    const total = contentLength + 1 + extra;
    if (extra === 0 && total <= PKG_LENGTH_ONE_BYTE_MAX) return Uint8Array.of(total);
    if (extra > 0 && total < 2 ** (4 + 8 * extra)) {
      const bytes = [(extra << PKG_LENGTH_COUNT_SHIFT) | (total & PKG_LENGTH_LOW_NIBBLE)];
      for (let i = 0; i < extra; i++) bytes.push((total >>> (4 + 8 * i)) & BYTE_MASK);
      return Uint8Array.from(bytes);
    }
  }
  throw new RangeError(`AML package of ${contentLength} bytes is too long`);
}

/** A NameSeg: four characters, '_'-padded. */
function nameSeg(name: string): Uint8Array {
  if (!/^[A-Z_][A-Z0-9_]{0,3}$/.test(name)) throw new RangeError(`bad AML name segment '${name}'`);
  return Uint8Array.from(name.padEnd(NAME_SEG_LENGTH, '_'), (c) => c.charCodeAt(0));
}

/** A NameString: "\\_SB_" style root paths or a single segment. */
function nameString(path: string): Uint8Array {
  const root = path.startsWith('\\');
  const segs = (root ? path.slice(1) : path).split('.');
  if (segs.length !== 1) throw new RangeError(`AML paths with several segments are not needed here: '${path}'`);
  return cat(root ? [AML_ROOT_CHAR] : [], nameSeg(segs[0]!));
}

/** An integer as the shortest AML constant. */
export function amlInteger(value: number): Uint8Array {
  if (value === 0) return Uint8Array.of(AML_ZERO_OP);
  if (value === 1) return Uint8Array.of(AML_ONE_OP);
  if (value <= BYTE_MASK) return Uint8Array.of(AML_BYTE_PREFIX, value);
  if (value <= 0xffff) return Uint8Array.of(AML_WORD_PREFIX, value & BYTE_MASK, value >>> 8);
  const bytes = new Uint8Array(5);
  bytes[0] = AML_DWORD_PREFIX;
  new DataView(bytes.buffer).setUint32(1, value >>> 0, true);
  return bytes;
}

/** EISAID("PNP0A03"): three letters in 5 bits each and four hex digits, as a DWord constant. */
export function eisaId(id: string): number {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new RangeError(`bad EISA ID '${id}'`);
  const c = (i: number): number => id.charCodeAt(i) - 0x40;
  const b0 = (c(0) << 2) | (c(1) >> 3);
  const b1 = ((c(1) & 0x7) << 5) | c(2);
  const b2 = parseInt(id.slice(3, 5), 16);
  const b3 = parseInt(id.slice(5, 7), 16);
  return (b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)) >>> 0;
}

const amlName = (name: string, value: Uint8Array): Uint8Array => cat([AML_NAME_OP], nameString(name), value);

function amlPackage(values: readonly number[]): Uint8Array {
  const contents = cat([values.length], ...values.map(amlInteger));
  return cat([AML_PACKAGE_OP], amlPkgLength(contents.length), contents);
}

function amlBuffer(data: Uint8Array): Uint8Array {
  const contents = cat(amlInteger(data.length), data);
  return cat([AML_BUFFER_OP], amlPkgLength(contents.length), contents);
}

function amlScope(name: string, ...terms: Uint8Array[]): Uint8Array {
  const contents = cat(nameString(name), ...terms);
  return cat([AML_SCOPE_OP], amlPkgLength(contents.length), contents);
}

function amlDevice(name: string, ...terms: Uint8Array[]): Uint8Array {
  const contents = cat(nameString(name), ...terms);
  return cat([AML_EXT_OP_PREFIX, AML_DEVICE_OP], amlPkgLength(contents.length), contents);
}

/** ResourceTemplate () { Memory32Fixed (ReadWrite, address, length) } with its end tag. */
function memory32FixedTemplate(address: number, length: number): Uint8Array {
  const bytes = new Uint8Array(3 + RES_MEMORY32_FIXED_LENGTH + 2);
  const view = new DataView(bytes.buffer);
  bytes[0] = RES_MEMORY32_FIXED;
  view.setUint16(1, RES_MEMORY32_FIXED_LENGTH, true);
  bytes[3] = RES_MEMORY32_READ_WRITE;
  view.setUint32(4, address, true);
  view.setUint32(8, length, true);
  bytes[12] = RES_END_TAG;
  bytes[13] = 0; // checksum 0: "the resource template is treated as if the checksum is valid"
  return bytes;
}

/** The DSDT's AML: sleep states, the PCI root bridge and the HPET. */
export function dsdtAml(hpet?: { address: number }): Uint8Array {
  return cat(
    amlName('\\_S3', amlPackage([SLP_TYP_S3, SLP_TYP_S3, 0, 0])),
    amlName('\\_S5', amlPackage([SLP_TYP_S5, SLP_TYP_S5, 0, 0])),
    amlScope(
      '\\_SB',
      amlDevice('PCI0', amlName('_HID', amlInteger(eisaId('PNP0A03'))), amlName('_ADR', amlInteger(0)), amlName('_UID', amlInteger(0))),
      ...(hpet
        ? [
            amlDevice(
              'HPET',
              amlName('_HID', amlInteger(eisaId('PNP0103'))),
              amlName('_UID', amlInteger(0)),
              amlName('_CRS', amlBuffer(memory32FixedTemplate(hpet.address, HPET_MMIO_SIZE))),
            ),
          ]
        : []),
    ),
  );
}

function putAscii(target: Uint8Array, at: number, text: string): void {
  for (let i = 0; i < text.length; i++) target[at + i] = text.charCodeAt(i) & BYTE_MASK;
}

/**
 * The FACS a guest's tables point at, found as firmware finds it on resume: the RSDP in
 * 0xE0000-0xFFFFF, its RSDT, the FADT there, and the FADT's FIRMWARE_CTRL. Undefined when any
 * link is missing or out of RAM (a guest may have overwritten its tables).
 */
export function findFacs(memory: Uint8Array): number | undefined {
  const view = new DataView(memory.buffer, memory.byteOffset, memory.byteLength);
  const fits = (at: number, size: number): boolean => at > 0 && at + size <= memory.length;
  const signature = (at: number, text: string): boolean =>
    fits(at, text.length) && [...text].every((c, i) => memory[at + i] === c.charCodeAt(0));
  let rsdp: number | undefined;
  for (let at = RSDP_SCAN_START; at + RSDP_V1_SIZE <= Math.min(RSDP_SCAN_END, memory.length); at += TABLE_ALIGN) {
    if (signature(at, RSDP_SIGNATURE)) {
      rsdp = at;
      break;
    }
  }
  if (rsdp === undefined) return undefined;
  const rsdt = view.getUint32(rsdp + RSDP_RSDT_ADDRESS, true);
  if (!signature(rsdt, RSDT_SIGNATURE) || !fits(rsdt, ACPI_HEADER_SIZE)) return undefined;
  const length = view.getUint32(rsdt + ACPI_HDR_LENGTH, true);
  for (let entry = rsdt + ACPI_HEADER_SIZE; entry + 4 <= rsdt + length && fits(entry, 4); entry += 4) {
    const table = view.getUint32(entry, true);
    if (!signature(table, FADT_SIGNATURE) || !fits(table, FADT_FIRMWARE_CTRL + 4)) continue;
    const facs = view.getUint32(table + FADT_FIRMWARE_CTRL, true);
    return signature(facs, FACS_SIGNATURE) && fits(facs, FACS_SIZE) ? facs : undefined;
  }
  return undefined;
}

/** Where the OS asked to resume from S3 (FACS firmware_waking_vector, real mode), or undefined when it set none. */
export function facsWakingVector(memory: Uint8Array): number | undefined {
  const facs = findFacs(memory);
  if (facs === undefined) return undefined;
  const vector = new DataView(memory.buffer, memory.byteOffset, memory.byteLength).getUint32(facs + FACS_FIRMWARE_WAKING_VECTOR, true);
  return vector === 0 ? undefined : vector;
}
