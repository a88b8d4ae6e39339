/**
 * One PCI function's configuration space (PCI Local Bus Specification 3.0, chapter 6): the
 * 256-byte type-0 header and device-specific registers, with the per-byte write masks that make
 * read-only fields read-only, and Base Address Registers that size themselves as the spec says
 * (write all ones, read back the size mask). A function that decodes BARs answers accesses to
 * them through `barRead`/`barWrite`; the host bridge finds which BAR an address falls in.
 * `state()`/`prepareRestore()` save and take back the configuration space (the host bridge
 * saves all its functions in its own state).
 */
import { bytesField, refuseState, stateFields, type StateFields } from '../state-check.js';

export const PCI_CONFIG_SPACE_SIZE = 256;

// Type-0 header offsets.
export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_CLASS_DEVICE = 0x0a; // sub-class, then base class
export const PCI_CACHE_LINE_SIZE = 0x0c;
export const PCI_LATENCY_TIMER = 0x0d;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_BAR_COUNT = 6;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;

// Command register bits.
export const PCI_COMMAND_IO = 1 << 0;
export const PCI_COMMAND_MEMORY = 1 << 1;
export const PCI_COMMAND_MASTER = 1 << 2;
export const PCI_COMMAND_PARITY = 1 << 6;
export const PCI_COMMAND_SERR = 1 << 8;
export const PCI_COMMAND_INTX_DISABLE = 1 << 10;
const PCI_COMMAND_WRITABLE =
  PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE;

export const PCI_HEADER_TYPE_NORMAL = 0x00;
export const PCI_HEADER_TYPE_MULTI_FUNCTION = 0x80;

// BAR low bits.
export const PCI_BASE_ADDRESS_SPACE_IO = 0x01;
export const PCI_BASE_ADDRESS_SPACE_MEMORY = 0x00;
export const PCI_BASE_ADDRESS_MEM_TYPE_32 = 0x00;
const PCI_BASE_ADDRESS_IO_MASK = 0xfffffffc;
const PCI_BASE_ADDRESS_MEM_MASK = 0xfffffff0;

/** QEMU's subsystem IDs for its emulated devices (Red Hat / Qumranet, QEMU). */
export const PCI_SUBSYSTEM_VENDOR_QUMRANET = 0x1af4;
export const PCI_SUBSYSTEM_QEMU = 0x1100;

const BYTE_BITS = 8;
const BYTE_MASK = 0xff;

export type PciBarKind = 'io' | 'memory';

export interface PciBarDefinition {
  kind: PciBarKind;
  /** A power of two: at least 4 bytes for I/O, 16 for memory. */
  size: number;
}

/** What a PCI function's identity registers hold. */
export interface PciIdentity {
  vendorId: number;
  deviceId: number;
  revision: number;
  /** (base class << 16) | (sub-class << 8) | programming interface. */
  classCode: number;
  headerType?: number;
  subsystemVendorId?: number;
  subsystemId?: number;
  interruptPin?: number;
}

/** A function's saved state: its 256 configuration bytes (subclasses add their own fields). */
export interface PciFunctionState {
  config: number[];
}

export class PciFunction {
  readonly config = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  /** Bits a configuration write may change, per byte. */
  protected readonly writable = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  readonly bars: readonly (PciBarDefinition | undefined)[];

  constructor(identity: PciIdentity, bars: readonly (PciBarDefinition | undefined)[] = []) {
    this.bars = bars;
    this.set16(PCI_VENDOR_ID, identity.vendorId);
    this.set16(PCI_DEVICE_ID, identity.deviceId);
    this.config[PCI_REVISION_ID] = identity.revision;
    this.config[PCI_CLASS_PROG] = identity.classCode & BYTE_MASK;
    this.set16(PCI_CLASS_DEVICE, identity.classCode >>> BYTE_BITS);
    this.config[PCI_HEADER_TYPE] = identity.headerType ?? PCI_HEADER_TYPE_NORMAL;
    this.set16(PCI_SUBSYSTEM_VENDOR_ID, identity.subsystemVendorId ?? PCI_SUBSYSTEM_VENDOR_QUMRANET);
    this.set16(PCI_SUBSYSTEM_ID, identity.subsystemId ?? PCI_SUBSYSTEM_QEMU);
    this.config[PCI_INTERRUPT_PIN] = identity.interruptPin ?? 0;
    this.setWritable(PCI_COMMAND, 2, PCI_COMMAND_WRITABLE);
    this.setWritable(PCI_CACHE_LINE_SIZE, 1, BYTE_MASK);
    this.setWritable(PCI_LATENCY_TIMER, 1, BYTE_MASK);
    this.setWritable(PCI_INTERRUPT_LINE, 1, BYTE_MASK);
    bars.forEach((bar, i) => {
      if (!bar) return;
      if (bar.size & (bar.size - 1) || bar.size < (bar.kind === 'io' ? 4 : 16)) {
        throw new RangeError(`BAR ${i}: size ${bar.size} must be a power of two of at least ${bar.kind === 'io' ? 4 : 16}`);
      }
      const at = PCI_BASE_ADDRESS_0 + 4 * i;
      const type = bar.kind === 'io' ? PCI_BASE_ADDRESS_SPACE_IO : PCI_BASE_ADDRESS_SPACE_MEMORY | PCI_BASE_ADDRESS_MEM_TYPE_32;
      this.set32(at, type);
      const mask = (~(bar.size - 1) & (bar.kind === 'io' ? PCI_BASE_ADDRESS_IO_MASK : PCI_BASE_ADDRESS_MEM_MASK)) >>> 0;
      this.setWritable(at, 4, mask);
    });
  }

  /** A configuration read of `size` bytes at `offset` (inside one dword, as mechanism #1 makes them). */
  readConfig(offset: number, size: number): number {
    let value = 0;
    for (let i = 0; i < size; i++) value |= (this.config[offset + i] ?? BYTE_MASK) << (i * BYTE_BITS);
    return value >>> 0;
  }

  writeConfig(offset: number, size: number, value: number): void {
    for (let i = 0; i < size; i++) {
      const at = offset + i;
      if (at >= PCI_CONFIG_SPACE_SIZE) break;
      const mask = this.writable[at]!;
      this.config[at] = (this.config[at]! & ~mask) | ((value >>> (i * BYTE_BITS)) & BYTE_MASK & mask);
    }
  }

  /** The address a BAR decodes, or undefined when it is absent or its space is disabled in COMMAND. */
  barAddress(bar: number): number | undefined {
    const def = this.bars[bar];
    if (!def) return undefined;
    const command = this.readConfig(PCI_COMMAND, 2);
    if (!(command & (def.kind === 'io' ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY))) return undefined;
    const raw = this.readConfig(PCI_BASE_ADDRESS_0 + 4 * bar, 4);
    const address = (raw & (def.kind === 'io' ? PCI_BASE_ADDRESS_IO_MASK : PCI_BASE_ADDRESS_MEM_MASK)) >>> 0;
    return address === 0 ? undefined : address;
  }

  /** Firmware's job: puts a BAR at `address` (the guest may move it later). */
  assignBar(bar: number, address: number): void {
    const at = PCI_BASE_ADDRESS_0 + 4 * bar;
    const type = this.config[at]! & (this.bars[bar]?.kind === 'io' ? 0x3 : 0xf);
    this.set32(at, (address | type) >>> 0);
  }

  /** Firmware's job: turn on I/O and memory decoding. */
  enableDecoding(): void {
    this.set16(PCI_COMMAND, this.readConfig(PCI_COMMAND, 2) | PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
  }

  /** An access inside BAR `bar` (`size` 1, 2 or 4 bytes); a function without BAR handlers reads all ones. */
  barRead(_bar: number, _offset: number, size: number): number {
    return size === 4 ? 0xffffffff : (1 << (size * BYTE_BITS)) - 1;
  }

  barWrite(_bar: number, _offset: number, _size: number, _value: number): void {}

  state(): PciFunctionState {
    return { config: Array.from(this.config) };
  }

  /**
   * Checks a saved state (a UsageError naming `device` if it is malformed, or if its read-only
   * bits — identity, class, BAR types — are not this function's: another machine's snapshot) and
   * returns what puts it in place, so a caller can check every function before changing any.
   */
  prepareRestore(state: unknown, device: string): () => void {
    const fields = stateFields(device, state);
    const config = bytesField(device, fields, 'config', PCI_CONFIG_SPACE_SIZE);
    config.forEach((byte, at) => {
      if ((byte ^ this.config[at]!) & ~this.writable[at]! & BYTE_MASK) {
        refuseState(device, `configuration byte 0x${at.toString(16)} is read-only here and holds 0x${this.config[at]!.toString(16)}`);
      }
    });
    const own = this.prepareOwnRestore(fields, device);
    return () => {
      this.config.set(config);
      own();
    };
  }

  /** A subclass's own saved fields (checked, then put in place by the returned function). */
  protected prepareOwnRestore(_fields: StateFields, _device: string): () => void {
    return () => {};
  }

  /** A device-specific register the guest may write (bits in `mask`). */
  protected setWritable(offset: number, size: number, mask: number): void {
    for (let i = 0; i < size; i++) this.writable[offset + i] = (mask >>> (i * BYTE_BITS)) & BYTE_MASK;
  }

  protected set16(offset: number, value: number): void {
    this.config[offset] = value & BYTE_MASK;
    this.config[offset + 1] = (value >>> BYTE_BITS) & BYTE_MASK;
  }

  protected set32(offset: number, value: number): void {
    for (let i = 0; i < 4; i++) this.config[offset + i] = (value >>> (i * BYTE_BITS)) & BYTE_MASK;
  }
}
