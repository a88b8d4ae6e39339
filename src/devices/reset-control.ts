/**
 * The PC's two chipset reset registers besides the i8042's pulse:
 *
 * - System Control Port A at 0x92 (PS/2 "fast reset" port; PIIX3/ICH decode it): bit 0 FAST_RESET
 *   resets the CPUs on its 0→1 edge (an INIT, a soft reset: the register keeps its value, which is
 *   how firmware and kvm-unit-tests' init test tell an INIT from a power-on), bit 1 FAST_A20 gates
 *   address line 20. KVM has no A20 gate (the line is always on), so A20 is the bit read back.
 *   The other bits are read back as written; a hard reset clears FAST_RESET (`hardReset()`).
 * - The Reset Control Register at 0xCF9 (PIIX3 RCR, ICH RST_CNT): writing RST_CPU (bit 2) resets
 *   the machine, hard (SYS_RST, bit 1, or FULL_RST, bit 3, set) or soft (an INIT) otherwise;
 *   SYS_RST and FULL_RST are kept and read back, RST_CPU always reads 0. The FADT's reset register
 *   names it (value 0x06: a hard reset). 0xCF9 lies inside the PCI CONFIG_ADDRESS dword at 0xCF8:
 *   the PCI host bridge forwards byte accesses to it (src/devices/pci/host.ts).
 *
 * What a reset does to the machine is the host's: the device only says which kind.
 */
import type { PioDevice, PioSize, Snapshottable } from './device.js';
import { maskField, stateFields } from './state-check.js';

export const PORT_A_PORT = 0x92;
export const PORT_A_SIZE = 1;
export const PORT_A_FAST_RESET = 1 << 0;
export const PORT_A_FAST_A20 = 1 << 1;

export const RESET_CONTROL_PORT = 0xcf9;
export const RESET_CONTROL_SIZE = 1;
export const RCR_SYS_RST = 1 << 1;
export const RCR_RST_CPU = 1 << 2;
export const RCR_FULL_RST = 1 << 3;
/** The bits the register keeps (RST_CPU is a strobe). */
export const RCR_KEPT_BITS = RCR_SYS_RST | RCR_FULL_RST;
/** What the FADT's RESET_VALUE writes: SYS_RST | RST_CPU, a hard reset. */
export const RCR_HARD_RESET_VALUE = RCR_SYS_RST | RCR_RST_CPU;

const BYTE_MASK = 0xff;

/** A soft reset is an INIT of the CPUs (memory and chipset state kept); a hard one resets the platform. */
export type ResetKind = 'soft' | 'hard';

export interface ResetHost {
  reset(kind: ResetKind): void;
}

/** What either register's restore() takes: the byte it holds (taking it back resets nothing). */
export interface ResetRegisterState {
  value: number;
}

function restoredValue(device: string, state: ResetRegisterState, mask: number): number {
  return maskField(device, stateFields(device, state), 'value', mask);
}

/** Port 0x92. Register it with length PORT_A_SIZE; wider accesses see only the byte. */
export class SystemControlPortA implements PioDevice, Snapshottable<ResetRegisterState> {
  private value = 0;

  constructor(private readonly host: ResetHost) {}

  pioRead(_offset: number, _size: PioSize): number {
    return this.value;
  }

  pioWrite(_offset: number, _size: PioSize, value: number): void {
    const before = this.value;
    this.value = value & BYTE_MASK;
    if (!(before & PORT_A_FAST_RESET) && this.value & PORT_A_FAST_RESET) this.host.reset('soft');
  }

  /** A20 as the guest set it (KVM keeps the line on whatever it says). */
  get a20(): boolean {
    return (this.value & PORT_A_FAST_A20) !== 0;
  }

  /** A hard reset clears FAST_RESET; a soft one leaves it, as on the chip. */
  hardReset(): void {
    this.value &= ~PORT_A_FAST_RESET;
  }

  state(): ResetRegisterState {
    return { value: this.value };
  }

  /** Takes a saved byte (FAST_RESET included: no edge, no reset). A UsageError if it is not a byte. */
  restore(state: ResetRegisterState): void {
    this.value = restoredValue('port 92', state, BYTE_MASK);
  }
}

/**
 * 0xCF9, as a byte register (the PCI host bridge calls it for byte accesses to 0xCF9, and saves
 * its state with its own).
 */
export class ResetControlRegister implements PioDevice, Snapshottable<ResetRegisterState> {
  private value = 0;

  constructor(private readonly host: ResetHost) {}

  pioRead(_offset: number, _size: PioSize): number {
    return this.value;
  }

  pioWrite(_offset: number, _size: PioSize, value: number): void {
    const byte = value & BYTE_MASK;
    this.value = byte & RCR_KEPT_BITS;
    if (byte & RCR_RST_CPU) this.host.reset(byte & (RCR_SYS_RST | RCR_FULL_RST) ? 'hard' : 'soft');
  }

  hardReset(): void {
    this.value = 0;
  }

  state(): ResetRegisterState {
    return { value: this.value };
  }

  /** Takes saved SYS_RST / FULL_RST bits. A UsageError for any other bit (RST_CPU is a strobe, never kept). */
  restore(state: ResetRegisterState): void {
    this.value = restoredValue('0xCF9 reset control', state, RCR_KEPT_BITS);
  }
}
