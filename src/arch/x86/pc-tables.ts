/**
 * The machine description a PC BIOS leaves in low memory, written straight into guest RAM for
 * guests that boot without one: the BIOS data area (BDA) and EBDA header, and an Intel
 * MultiProcessor Specification 1.4 table (how a kernel without ACPI finds its CPUs, I/O APIC and
 * ISA interrupt routing). Pure functions over the guest RAM bytes; addresses come from
 * pc-layout.ts.
 *
 * The MP table follows the spec (chapter 4) with the choices kvmtool (x86/mptable.c) and QEMU's
 * SeaBIOS (src/fw/mptable.c) make for a KVM guest:
 * - Floating pointer at MP_FLOATING_POINTER_ADDRESS (0xF0000, the first paragraph of the BIOS
 *   area, where a kernel's 0xF0000-0xFFFFF scan finds it), configuration table right after it;
 *   both inside MP_TABLE_AREA (0xF0000-0xF1FFF), which leaves the rest of the BIOS area to ACPI.
 * - No default configuration (feature byte 1 = 0: the table is present) and virtual-wire mode
 *   (feature byte 2 IMCRP clear: there is no IMCR under KVM).
 * - One processor entry per vCPU, APIC ID = index, LAPIC version 0x14 (KVM's), EN on all, BP on
 *   CPU 0; CPU signature 0x600 and feature flags FPU|APIC, kvmtool's placeholders (Linux takes
 *   neither from here: it runs CPUID).
 * - One ISA bus (ID 0), one I/O APIC (version 0x11, KVM's; ID = number of CPUs unless given).
 * - ISA IRQs routed to the I/O APIC as SeaBIOS and Linux's default MP configuration do: IRQ0 to
 *   INTIN2 (the timer override QEMU also puts in ACPI), IRQ1 and 3-15 to the same-numbered pin,
 *   IRQ2 left out because its pin belongs to IRQ0 (the spec lists one entry per connected input,
 *   and IRQ2 is the PIC cascade). Polarity and trigger "conforms to the bus": ISA edge, high.
 * - LINT0 = ExtINT (the 8259 in virtual-wire mode) and LINT1 = NMI, both to every LAPIC (0xFF),
 *   as in Linux's default ISA configuration.
 */
import { checkInteger } from '../../check.js';
import { BDA_ADDRESS, BIOS_AREA_ADDRESS, BIOS_AREA_END, EBDA_ADDRESS, EBDA_SIZE, LOW_MEMORY_END, VGA_HOLE_ADDRESS } from './pc-layout.js';

const KIB = 1024;
const PARAGRAPH = 16;
const BYTE_MASK = 0xff;
const MAX_COM_PORTS = 4;
const U32_MAX = 0xffffffff;

// --- BIOS data area (offsets from BDA_ADDRESS) --------------------------------------------------

export const BDA_COM_BASES = 0x00; // u16[4]: I/O bases of COM1-COM4, 0 = absent
export const BDA_LPT_BASES = 0x08; // u16[3]: I/O bases of LPT1-LPT3, 0 = absent
export const BDA_EBDA_SEGMENT = 0x0e; // u16: real-mode segment of the EBDA
export const BDA_EQUIPMENT = 0x10; // u16: equipment list (INT 11h)
export const BDA_BASE_MEMORY_KIB = 0x13; // u16: conventional memory in KiB (INT 12h)
export const BDA_SIZE = 0x100;
// Equipment word bits.
export const EQUIPMENT_X87 = 0x0002; // math coprocessor present (a KVM vCPU always has one)
export const EQUIPMENT_SERIAL_SHIFT = 9; // bits 9-11: number of serial ports
export const EQUIPMENT_SERIAL_MASK = 0x7 << EQUIPMENT_SERIAL_SHIFT;
/** The EBDA's first word: its own size in KiB. */
export const EBDA_SIZE_KIB_OFFSET = 0x0;
/** Real-mode segment of the EBDA, as the BDA stores it. */
export const EBDA_SEGMENT = EBDA_ADDRESS / PARAGRAPH; // 0x9FC0
/** Conventional memory reported in the BDA: everything below the EBDA, 639 KiB. */
export const BASE_MEMORY_KIB = LOW_MEMORY_END / KIB;

export interface BiosDataAreaConfig {
  /** Guest RAM in bytes; must reach past the EBDA (640 KiB). */
  memorySize: number;
  /** I/O bases of the COM ports present, in COM1.. order (e.g. [0x3F8]); at most 4. */
  com: readonly number[];
}

/**
 * Clears and fills the BDA (0x400-0x4FF) and the EBDA header as a BIOS leaves them after POST:
 * COM port bases, no LPT ports, the EBDA's segment, the equipment word (x87, serial port count)
 * and the conventional memory size. Nothing else in memory is touched.
 */
export function writeBiosDataArea(memory: Uint8Array, config: BiosDataAreaConfig): void {
  if (!Number.isSafeInteger(config.memorySize) || config.memorySize < VGA_HOLE_ADDRESS) {
    throw new RangeError(
      `the BIOS data area needs at least ${VGA_HOLE_ADDRESS / KIB} KiB of RAM (to hold the EBDA), not ${config.memorySize} bytes`,
    );
  }
  requireRam(memory, VGA_HOLE_ADDRESS, 'the BIOS data area and EBDA');
  if (config.com.length > MAX_COM_PORTS) {
    throw new RangeError(`a PC has at most ${MAX_COM_PORTS} COM ports, not ${config.com.length}`);
  }
  for (const base of config.com) checkInteger('COM port base', base, 1, 0xffff);

  memory.fill(0, BDA_ADDRESS, BDA_ADDRESS + BDA_SIZE);
  memory.fill(0, EBDA_ADDRESS, EBDA_ADDRESS + EBDA_SIZE);
  const view = viewOf(memory);
  config.com.forEach((base, i) => view.setUint16(BDA_ADDRESS + BDA_COM_BASES + 2 * i, base, true));
  // LPT bases stay 0: there are no parallel ports (equipment bits 14-15 stay 0 too).
  view.setUint16(BDA_ADDRESS + BDA_EBDA_SEGMENT, EBDA_SEGMENT, true);
  const equipment = EQUIPMENT_X87 | (config.com.length << EQUIPMENT_SERIAL_SHIFT);
  view.setUint16(BDA_ADDRESS + BDA_EQUIPMENT, equipment, true);
  view.setUint16(BDA_ADDRESS + BDA_BASE_MEMORY_KIB, BASE_MEMORY_KIB, true);
  view.setUint16(EBDA_ADDRESS + EBDA_SIZE_KIB_OFFSET, EBDA_SIZE / KIB, true);
}

// --- MP table: where it goes --------------------------------------------------------------------

/** The part of the BIOS area the MP table may use; ACPI and anything else get the rest. */
export const MP_TABLE_AREA_ADDRESS = BIOS_AREA_ADDRESS; // 0xF0000
export const MP_TABLE_AREA_END = 0xf2000;
/** The floating pointer: 16-byte aligned in 0xF0000-0xFFFFF, where kernels scan for it. */
export const MP_FLOATING_POINTER_ADDRESS = MP_TABLE_AREA_ADDRESS;
/** APIC IDs are 8 bits and 0xFF means "all": at most 255 IDs, and one goes to the I/O APIC. */
export const MP_MAX_CPUS = 254;
export const MP_APIC_ID_ALL = 0xff;

export const LAPIC_DEFAULT_ADDRESS = 0xfee00000;
export const IOAPIC_DEFAULT_ADDRESS = 0xfec00000;
/** KVM's local APIC version register (arch/x86/kvm/lapic.c APIC_VERSION). */
export const KVM_LAPIC_VERSION = 0x14;
/** KVM's I/O APIC version register (arch/x86/kvm/ioapic.h IOAPIC_VERSION_ID). */
export const KVM_IOAPIC_VERSION = 0x11;

// --- MP floating pointer structure (spec 4.1) ---------------------------------------------------

export const MP_FLOATING_SIGNATURE = '_MP_';
export const MPF_SIGNATURE = 0; // char[4]
export const MPF_PHYSPTR = 4; // u32: configuration table address
export const MPF_LENGTH = 8; // u8: size in 16-byte paragraphs
export const MPF_SPEC_REV = 9; // u8
export const MPF_CHECKSUM = 10; // u8
export const MPF_FEATURE1 = 11; // u8: 0 = configuration table present, else a default config
export const MPF_FEATURE2 = 12; // u8: bit 7 IMCRP; bytes 13-15 reserved
export const MPF_SIZE = 16;
/** The configuration table, right after the floating pointer. */
export const MP_CONFIG_TABLE_ADDRESS = MP_FLOATING_POINTER_ADDRESS + MPF_SIZE;
export const MPF_FEATURE2_IMCRP = 0x80; // IMCR present, PIC mode (never set: virtual wire)
/** Specification revision 1.4. */
export const MP_SPEC_REV_1_4 = 4;

// --- MP configuration table header (spec 4.2) ---------------------------------------------------

export const MP_CONFIG_SIGNATURE = 'PCMP';
export const MPC_SIGNATURE = 0; // char[4]
export const MPC_LENGTH = 4; // u16: base table length, header included
export const MPC_SPEC_REV = 6; // u8
export const MPC_CHECKSUM = 7; // u8: over the base table
export const MPC_OEM_ID = 8; // char[8], space-padded
export const MPC_PRODUCT_ID = 16; // char[12], space-padded
export const MPC_OEM_TABLE_POINTER = 28; // u32, 0 = none
export const MPC_OEM_TABLE_SIZE = 32; // u16
export const MPC_ENTRY_COUNT = 34; // u16
export const MPC_LAPIC_ADDRESS = 36; // u32
export const MPC_EXT_TABLE_LENGTH = 40; // u16, 0 = no extended entries
export const MPC_EXT_TABLE_CHECKSUM = 42; // u8; byte 43 reserved
export const MPC_HEADER_SIZE = 44;
export const MP_OEM_ID = 'TSKVM   ';
export const MP_PRODUCT_ID = 'PC          ';
const MP_OEM_ID_SIZE = 8;
const MP_PRODUCT_ID_SIZE = 12;

// --- MP configuration table entries (spec 4.3), in the order the base table must list them ------

export const MP_ENTRY_PROCESSOR = 0;
export const MP_ENTRY_BUS = 1;
export const MP_ENTRY_IOAPIC = 2;
export const MP_ENTRY_IO_INTERRUPT = 3;
export const MP_ENTRY_LOCAL_INTERRUPT = 4;
export const MP_PROCESSOR_ENTRY_SIZE = 20;
export const MP_BUS_ENTRY_SIZE = 8;
export const MP_IOAPIC_ENTRY_SIZE = 8;
export const MP_INTERRUPT_ENTRY_SIZE = 8;

// Processor entry: type, LAPIC ID, LAPIC version, flags, u32 signature, u32 features, 8 reserved.
export const MP_PROC_APIC_ID = 1;
export const MP_PROC_APIC_VERSION = 2;
export const MP_PROC_FLAGS = 3;
export const MP_PROC_SIGNATURE = 4;
export const MP_PROC_FEATURES = 8;
export const MP_PROC_FLAG_EN = 0x01; // usable
export const MP_PROC_FLAG_BP = 0x02; // the bootstrap processor
/** CPUID.1 EAX-style signature: family 6, model 0, stepping 0 (kvmtool's placeholder). */
export const MP_CPU_SIGNATURE = 0x600;
export const CPUID_1_EDX_FPU = 1 << 0;
export const CPUID_1_EDX_APIC = 1 << 9;
/** CPUID.1 EDX-style feature flags: FPU and APIC (kvmtool's 0x201). */
export const MP_CPU_FEATURES = CPUID_1_EDX_FPU | CPUID_1_EDX_APIC;

// Bus entry: type, bus ID, char[6] bus type.
export const MP_BUS_ID = 1;
export const MP_BUS_TYPE = 2;
export const MP_BUS_TYPE_ISA = 'ISA   ';
export const MP_ISA_BUS_ID = 0;

// I/O APIC entry: type, ID, version, flags, u32 address.
export const MP_IOAPIC_ID = 1;
export const MP_IOAPIC_VERSION = 2;
export const MP_IOAPIC_FLAGS = 3;
export const MP_IOAPIC_ADDRESS = 4;
export const MP_IOAPIC_FLAG_EN = 0x01;

// Interrupt entries (I/O and local): type, interrupt type, u16 flags, source bus, source IRQ,
// destination APIC ID, destination pin (I/O APIC INTIN# or LAPIC LINTIN#).
export const MP_INT_TYPE = 1;
export const MP_INT_FLAGS = 2;
export const MP_INT_SOURCE_BUS = 4;
export const MP_INT_SOURCE_IRQ = 5;
export const MP_INT_DEST_APIC = 6;
export const MP_INT_DEST_PIN = 7;
export const MP_INT_TYPE_INT = 0; // vectored, from the APIC redirection entry
export const MP_INT_TYPE_NMI = 1;
export const MP_INT_TYPE_SMI = 2;
export const MP_INT_TYPE_EXTINT = 3; // vectored by the 8259
/** Polarity (bits 0-1) and trigger mode (bits 2-3) both "conforms to the bus". */
export const MP_INT_FLAGS_CONFORMING = 0x0000;
export const MP_LINT0 = 0;
export const MP_LINT1 = 1;
/** ISA IRQ0 (the PIT) arrives on I/O APIC pin 2, as QEMU's ACPI override also says. */
export const MP_TIMER_IRQ = 0;
export const MP_TIMER_IOAPIC_PIN = 2;
/** The cascade IRQ: not connected to the I/O APIC (its pin is the timer's). */
export const MP_CASCADE_IRQ = 2;
export const ISA_IRQ_COUNT = 16;
/** ISA IRQs given an I/O interrupt entry: 0, 1, 3-15. */
export const MP_ISA_IRQS: readonly number[] = Array.from({ length: ISA_IRQ_COUNT }, (_, irq) => irq).filter(
  (irq) => irq !== MP_CASCADE_IRQ,
);

export interface MpTableConfig {
  /** vCPUs: 1 to MP_MAX_CPUS. */
  cpus: number;
  /** The I/O APIC's ID; default `cpus` (the first ID after the CPUs'). */
  ioapicId?: number;
  ioapicAddress?: number;
  lapicAddress?: number;
}

export interface MpTableLocation {
  floatingPointerAddress: number;
  configTableAddress: number;
  /** Base configuration table length in bytes (header and entries), as in the header. */
  length: number;
}

/** Writes the MP floating pointer and configuration table into MP_TABLE_AREA. */
export function writeMpTable(memory: Uint8Array, config: MpTableConfig): MpTableLocation {
  const { cpus } = config;
  checkInteger('cpus', cpus, 1, MP_MAX_CPUS);
  const ioapicId = config.ioapicId ?? cpus;
  checkInteger('ioapicId', ioapicId, 0, MP_APIC_ID_ALL - 1);
  const ioapicAddress = config.ioapicAddress ?? IOAPIC_DEFAULT_ADDRESS;
  const lapicAddress = config.lapicAddress ?? LAPIC_DEFAULT_ADDRESS;
  checkInteger('ioapicAddress', ioapicAddress, 0, U32_MAX);
  checkInteger('lapicAddress', lapicAddress, 0, U32_MAX);
  requireRam(memory, BIOS_AREA_END, 'the MP table');

  const entryCount = cpus + 1 + 1 + MP_ISA_IRQS.length + 2;
  const length =
    MPC_HEADER_SIZE +
    cpus * MP_PROCESSOR_ENTRY_SIZE +
    MP_BUS_ENTRY_SIZE +
    MP_IOAPIC_ENTRY_SIZE +
    (MP_ISA_IRQS.length + 2) * MP_INTERRUPT_ENTRY_SIZE;
  // Holds by construction for cpus <= MP_MAX_CPUS; checked so a future entry cannot spill over.
  if (MP_CONFIG_TABLE_ADDRESS + length > MP_TABLE_AREA_END) {
    throw new RangeError(`the MP table (${length} bytes) does not fit in its area`);
  }

  const table = new Uint8Array(length);
  const view = new DataView(table.buffer);
  putAscii(table, MPC_SIGNATURE, MP_CONFIG_SIGNATURE);
  view.setUint16(MPC_LENGTH, length, true);
  table[MPC_SPEC_REV] = MP_SPEC_REV_1_4;
  putAscii(table, MPC_OEM_ID, MP_OEM_ID.padEnd(MP_OEM_ID_SIZE).slice(0, MP_OEM_ID_SIZE));
  putAscii(table, MPC_PRODUCT_ID, MP_PRODUCT_ID.padEnd(MP_PRODUCT_ID_SIZE).slice(0, MP_PRODUCT_ID_SIZE));
  view.setUint16(MPC_ENTRY_COUNT, entryCount, true);
  view.setUint32(MPC_LAPIC_ADDRESS, lapicAddress, true);
  // OEM table pointer/size and the extended table length/checksum stay 0: there are none.

  let at = MPC_HEADER_SIZE;
  for (let cpu = 0; cpu < cpus; cpu++) {
    table[at] = MP_ENTRY_PROCESSOR;
    table[at + MP_PROC_APIC_ID] = cpu;
    table[at + MP_PROC_APIC_VERSION] = KVM_LAPIC_VERSION;
    table[at + MP_PROC_FLAGS] = MP_PROC_FLAG_EN | (cpu === 0 ? MP_PROC_FLAG_BP : 0);
    view.setUint32(at + MP_PROC_SIGNATURE, MP_CPU_SIGNATURE, true);
    view.setUint32(at + MP_PROC_FEATURES, MP_CPU_FEATURES, true);
    at += MP_PROCESSOR_ENTRY_SIZE;
  }

  table[at] = MP_ENTRY_BUS;
  table[at + MP_BUS_ID] = MP_ISA_BUS_ID;
  putAscii(table, at + MP_BUS_TYPE, MP_BUS_TYPE_ISA);
  at += MP_BUS_ENTRY_SIZE;

  table[at] = MP_ENTRY_IOAPIC;
  table[at + MP_IOAPIC_ID] = ioapicId;
  table[at + MP_IOAPIC_VERSION] = KVM_IOAPIC_VERSION;
  table[at + MP_IOAPIC_FLAGS] = MP_IOAPIC_FLAG_EN;
  view.setUint32(at + MP_IOAPIC_ADDRESS, ioapicAddress, true);
  at += MP_IOAPIC_ENTRY_SIZE;

  const interrupt = (entry: number, type: number, irq: number, apic: number, pin: number) => {
    table[at] = entry;
    table[at + MP_INT_TYPE] = type;
    view.setUint16(at + MP_INT_FLAGS, MP_INT_FLAGS_CONFORMING, true);
    table[at + MP_INT_SOURCE_BUS] = MP_ISA_BUS_ID;
    table[at + MP_INT_SOURCE_IRQ] = irq;
    table[at + MP_INT_DEST_APIC] = apic;
    table[at + MP_INT_DEST_PIN] = pin;
    at += MP_INTERRUPT_ENTRY_SIZE;
  };
  for (const irq of MP_ISA_IRQS) {
    const pin = irq === MP_TIMER_IRQ ? MP_TIMER_IOAPIC_PIN : irq;
    interrupt(MP_ENTRY_IO_INTERRUPT, MP_INT_TYPE_INT, irq, ioapicId, pin);
  }
  interrupt(MP_ENTRY_LOCAL_INTERRUPT, MP_INT_TYPE_EXTINT, 0, MP_APIC_ID_ALL, MP_LINT0);
  interrupt(MP_ENTRY_LOCAL_INTERRUPT, MP_INT_TYPE_NMI, 0, MP_APIC_ID_ALL, MP_LINT1);
  table[MPC_CHECKSUM] = checksumByte(table);

  const mpf = new Uint8Array(MPF_SIZE);
  const mpfView = new DataView(mpf.buffer);
  putAscii(mpf, MPF_SIGNATURE, MP_FLOATING_SIGNATURE);
  mpfView.setUint32(MPF_PHYSPTR, MP_CONFIG_TABLE_ADDRESS, true);
  mpf[MPF_LENGTH] = MPF_SIZE / PARAGRAPH;
  mpf[MPF_SPEC_REV] = MP_SPEC_REV_1_4;
  // Feature bytes stay 0: configuration table present, virtual-wire mode (no IMCR).
  mpf[MPF_CHECKSUM] = checksumByte(mpf);

  memory.set(mpf, MP_FLOATING_POINTER_ADDRESS);
  memory.set(table, MP_CONFIG_TABLE_ADDRESS);
  return {
    floatingPointerAddress: MP_FLOATING_POINTER_ADDRESS,
    configTableAddress: MP_CONFIG_TABLE_ADDRESS,
    length,
  };
}

/** The byte that makes all of `bytes` (whose checksum byte is still 0) sum to 0 mod 256. */
export function checksumByte(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum += b;
  return -sum & BYTE_MASK;
}

function putAscii(target: Uint8Array, at: number, text: string): void {
  for (let i = 0; i < text.length; i++) target[at + i] = text.charCodeAt(i) & BYTE_MASK;
}

function viewOf(memory: Uint8Array): DataView {
  return new DataView(memory.buffer, memory.byteOffset, memory.byteLength);
}

function requireRam(memory: Uint8Array, end: number, what: string): void {
  if (memory.length < end) {
    throw new RangeError(`${what} needs guest RAM up to 0x${end.toString(16)}, but there are only ${memory.length} bytes`);
  }
}
