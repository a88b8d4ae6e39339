/**
 * The functions QEMU's PC puts on bus 0, as enumeration shows them: the i440FX host bridge
 * (00:00.0, 8086:1237), the PIIX3 PCI-to-ISA bridge (00:01.0, 8086:7000, multi-function) and
 * the PIIX4 power-management function (00:01.3, 8086:7113) whose PMBA says where the ACPI
 * registers live (PM base 0x600, enabled), as SeaBIOS leaves it. Identity registers only: tskvm
 * decodes the chipset's fixed ranges itself, so the bridges' own configuration registers
 * (PAM, SMRAM, PIRQ routing) are plain bytes.
 */
import { PciFunction, PCI_HEADER_TYPE_MULTI_FUNCTION, PCI_INTERRUPT_LINE } from './function.js';

export const PCI_VENDOR_ID_INTEL = 0x8086;
export const PCI_DEVICE_ID_INTEL_82441 = 0x1237; // i440FX host bridge
export const PCI_DEVICE_ID_INTEL_82371SB_0 = 0x7000; // PIIX3 ISA bridge
export const PCI_DEVICE_ID_INTEL_82371AB_3 = 0x7113; // PIIX4 ACPI
export const PCI_CLASS_BRIDGE_HOST = 0x060000;
export const PCI_CLASS_BRIDGE_ISA = 0x060100;
export const PCI_CLASS_BRIDGE_OTHER = 0x068000;
export const I440FX_REVISION = 0x02;
export const PIIX4_PM_REVISION = 0x03;

/** PIIX4 PM function registers. */
export const PIIX4_PMBA = 0x40; // power-management I/O base, bit 0 = I/O space
export const PIIX4_PMREGMISC = 0x80; // bit 0: PM I/O space enabled
export const PIIX4_PMREGMISC_PMIOSE = 0x01;
const PIIX4_PMBA_IO_SPACE = 0x01;
/** The SCI's interrupt pin (INTA#), routed to IRQ 9. */
const PCI_INTERRUPT_PIN_INTA = 1;

export const I440FX_DEVICE = 0;
export const PIIX_DEVICE = 1;
export const PIIX_ISA_FUNCTION = 0;
export const PIIX_PM_FUNCTION = 3;

export function i440fxHostBridge(): PciFunction {
  return new PciFunction({
    vendorId: PCI_VENDOR_ID_INTEL,
    deviceId: PCI_DEVICE_ID_INTEL_82441,
    revision: I440FX_REVISION,
    classCode: PCI_CLASS_BRIDGE_HOST,
  });
}

export function piix3IsaBridge(): PciFunction {
  return new PciFunction({
    vendorId: PCI_VENDOR_ID_INTEL,
    deviceId: PCI_DEVICE_ID_INTEL_82371SB_0,
    revision: 0,
    classCode: PCI_CLASS_BRIDGE_ISA,
    headerType: PCI_HEADER_TYPE_MULTI_FUNCTION,
  });
}

/** 00:01.3, with PMBA = `pmBase` (enabled) and the SCI on `sciIrq`. */
export class Piix4Pm extends PciFunction {
  constructor(pmBase: number, sciIrq: number) {
    super({
      vendorId: PCI_VENDOR_ID_INTEL,
      deviceId: PCI_DEVICE_ID_INTEL_82371AB_3,
      revision: PIIX4_PM_REVISION,
      classCode: PCI_CLASS_BRIDGE_OTHER,
      interruptPin: PCI_INTERRUPT_PIN_INTA,
    });
    this.set32(PIIX4_PMBA, pmBase | PIIX4_PMBA_IO_SPACE);
    this.config[PIIX4_PMREGMISC] = PIIX4_PMREGMISC_PMIOSE;
    this.config[PCI_INTERRUPT_LINE] = sciIrq;
  }
}
