/**
 * The PCI host bridge's side of the CPU: configuration mechanism #1 (PCI 3.0 §3.2.2.3.2) at
 * 0xCF8 (CONFIG_ADDRESS, dword accesses only) and 0xCFC-0xCFF (CONFIG_DATA), one bus (bus 0)
 * of up to 32 devices × 8 functions, and the decoding of the functions' BARs inside the PCI I/O
 * and memory windows (which the board registers on its buses as one device each, so a guest may
 * move BARs freely).
 *
 * Byte and word accesses to 0xCF8-0xCFB are not configuration cycles: the byte at 0xCF9 is the
 * PIIX reset control register, passed to `resetControl`; the others are ignored (read all ones).
 *
 * The bridge's state (snapshots) is the CONFIG_ADDRESS latch, every function's configuration
 * space (and what a function keeps besides), and the reset control register's.
 */
import type { MmioDevice, PioDevice, PioSize, Snapshottable } from '../device.js';
import { PIO_ALL_ONES } from '../device.js';
import { intField, refuseState, stateFields } from '../state-check.js';
import { PCI_BAR_COUNT, type PciFunction, type PciFunctionState } from './function.js';

export const PCI_CONFIG_ADDRESS_PORT = 0xcf8;
/** 0xCF8-0xCFF: CONFIG_ADDRESS, then CONFIG_DATA at +4. */
export const PCI_CONFIG_PORT_COUNT = 8;
const CONFIG_DATA_OFFSET = 4;
const RESET_CONTROL_OFFSET = 1; // 0xCF9

export const PCI_CONFIG_ENABLE = 0x80000000;
const PCI_CONFIG_BUS_SHIFT = 16;
const PCI_CONFIG_DEVFN_SHIFT = 8;
/**
 * The register byte CONFIG_ADDRESS selects, bits 1-0 included: QEMU keeps them and ORs them into
 * the CONFIG_DATA byte offset (so kvm-unit-tests' pci_config_readw(dev, 2), CONFIG_ADDRESS
 * ending in 2 and a word read of 0xCFC, reads the device ID). The spec has them read-only 0.
 */
const PCI_CONFIG_REGISTER_MASK = 0xff;
const PCI_CONFIG_ADDRESS_MASK = 0x80ffffff; // reserved bits 30-24 read back 0
const BYTE_MASK = 0xff;
const DWORD = 4;
export const PCI_DEVICES_PER_BUS = 32;
export const PCI_FUNCTIONS_PER_DEVICE = 8;

/** Bus/device/function, as `bus:dev.fn`. */
export const devfn = (device: number, fn: number): number => (device << 3) | fn;

/** The host bridge's saved state; functions keyed by "device.function" in hex ("02.0"). */
export interface PciHostBridgeState {
  address: number;
  functions: Record<string, PciFunctionState>;
  /** The reset control register's state, when it has one. */
  resetControl?: unknown;
}

/** 0xCF9's register, as the bridge sees it: state kept with the bridge's when it has some. */
export type PciResetControl = PioDevice & Partial<Snapshottable<unknown>>;

const slotName = (key: number): string => `${(key >> 3).toString(16).padStart(2, '0')}.${key & 7}`;

export class PciHostBridge implements PioDevice, Snapshottable<PciHostBridgeState> {
  private address = 0;
  private readonly functions = new Map<number, PciFunction>();

  constructor(private readonly resetControl?: PciResetControl) {}

  /** Plugs `fn` in at bus 0, `device`.`function`. */
  attach(device: number, fnNumber: number, fn: PciFunction): void {
    if (device < 0 || device >= PCI_DEVICES_PER_BUS || fnNumber < 0 || fnNumber >= PCI_FUNCTIONS_PER_DEVICE) {
      throw new RangeError(`PCI address 00:${device}.${fnNumber} is out of range`);
    }
    const key = devfn(device, fnNumber);
    if (this.functions.has(key)) throw new RangeError(`PCI slot 00:${device.toString(16).padStart(2, '0')}.${fnNumber} is taken`);
    this.functions.set(key, fn);
  }

  /** The function at bus 0 `device`.`fn`, if any. */
  function(device: number, fn: number): PciFunction | undefined {
    return this.functions.get(devfn(device, fn));
  }

  /** The lowest free device number on bus 0 (QEMU's automatic slot choice). */
  freeSlot(): number {
    for (let device = 0; device < PCI_DEVICES_PER_BUS; device++) if (!this.functions.has(devfn(device, 0))) return device;
    throw new RangeError('PCI bus 0 is full');
  }

  pioRead(offset: number, size: PioSize): number {
    if (offset < CONFIG_DATA_OFFSET) {
      if (size === DWORD && offset === 0) return this.address;
      if (size === 1 && offset === RESET_CONTROL_OFFSET && this.resetControl) return this.resetControl.pioRead(0, 1);
      return PIO_ALL_ONES[size];
    }
    const target = this.target();
    if (!target) return PIO_ALL_ONES[size];
    return target.fn.readConfig(target.register | (offset - CONFIG_DATA_OFFSET), size);
  }

  pioWrite(offset: number, size: PioSize, value: number): void {
    if (offset < CONFIG_DATA_OFFSET) {
      if (size === DWORD && offset === 0) this.address = (value & PCI_CONFIG_ADDRESS_MASK) >>> 0;
      else if (size === 1 && offset === RESET_CONTROL_OFFSET) this.resetControl?.pioWrite(0, 1, value & BYTE_MASK);
      return;
    }
    const target = this.target();
    target?.fn.writeConfig(target.register | (offset - CONFIG_DATA_OFFSET), size, value);
  }

  state(): PciHostBridgeState {
    const functions: Record<string, PciFunctionState> = {};
    for (const [key, fn] of this.functions) functions[slotName(key)] = fn.state();
    const reset = this.resetControl?.state?.();
    return { address: this.address, functions, ...(reset !== undefined ? { resetControl: reset } : {}) };
  }

  /** Takes a saved state of a bridge with the same functions in the same slots; a UsageError otherwise (nothing changes then). */
  restore(state: PciHostBridgeState): void {
    const device = 'PCI host bridge';
    const fields = stateFields(device, state);
    const address = intField(device, fields, 'address', 0, 0xffffffff);
    if ((address & ~PCI_CONFIG_ADDRESS_MASK) >>> 0 !== 0) refuseState(device, `address 0x${address.toString(16)} has reserved bits set`);
    const saved = stateFields(`${device} functions`, fields.functions);
    const names = [...this.functions.keys()].map(slotName);
    const extra = Object.keys(saved).filter((name) => !names.includes(name));
    const missing = names.filter((name) => !(name in saved));
    if (extra.length || missing.length) {
      refuseState(device, `it has functions ${Object.keys(saved).join(', ') || 'none'}; this machine has ${names.join(', ')}`);
    }
    const appliers = [...this.functions].map(([key, fn]) => fn.prepareRestore(saved[slotName(key)], `PCI function 00:${slotName(key)}`));
    const reset = this.resetControl;
    if (reset?.restore && fields.resetControl === undefined) refuseState(device, 'the reset control register (0xCF9) is missing');
    // The reset control register checks its own state; it goes first so a refusal leaves the functions alone.
    if (reset?.restore) reset.restore(fields.resetControl);
    for (const apply of appliers) apply();
    this.address = address;
  }

  /** The function and register CONFIG_ADDRESS selects (bus 0 only; other buses have no devices). */
  private target(): { fn: PciFunction; register: number } | undefined {
    if (!(this.address & PCI_CONFIG_ENABLE)) return undefined;
    if (((this.address >>> PCI_CONFIG_BUS_SHIFT) & BYTE_MASK) !== 0) return undefined;
    const fn = this.functions.get((this.address >>> PCI_CONFIG_DEVFN_SHIFT) & BYTE_MASK);
    return fn ? { fn, register: this.address & PCI_CONFIG_REGISTER_MASK } : undefined;
  }

  /** The function and BAR that decode `address` in `kind` space, with the offset inside the BAR. */
  decode(kind: 'io' | 'memory', address: number): { fn: PciFunction; bar: number; offset: number } | undefined {
    for (const fn of this.functions.values()) {
      for (let bar = 0; bar < PCI_BAR_COUNT; bar++) {
        const def = fn.bars[bar];
        if (def?.kind !== kind) continue;
        const base = fn.barAddress(bar);
        if (base !== undefined && address >= base && address < base + def.size) return { fn, bar, offset: address - base };
      }
    }
    return undefined;
  }
}

/** A BAR window keeps nothing: the BARs are the functions', saved with the host bridge. */
export type PciWindowState = Record<string, never>;

/** The PCI I/O window on the port bus: accesses go to whichever I/O BAR holds the port. */
export class PciIoWindow implements PioDevice, Snapshottable<PciWindowState> {
  constructor(
    private readonly host: PciHostBridge,
    private readonly base: number,
  ) {}

  state(): PciWindowState {
    return {};
  }

  restore(state: PciWindowState): void {
    stateFields('PCI I/O window', state);
  }

  pioRead(offset: number, size: PioSize): number {
    const hit = this.host.decode('io', this.base + offset);
    return hit ? hit.fn.barRead(hit.bar, hit.offset, size) : PIO_ALL_ONES[size];
  }

  pioWrite(offset: number, size: PioSize, value: number): void {
    const hit = this.host.decode('io', this.base + offset);
    hit?.fn.barWrite(hit.bar, hit.offset, size, value);
  }
}

/** The PCI memory window on the MMIO bus: accesses go to whichever memory BAR holds the address. */
export class PciMmioWindow implements MmioDevice, Snapshottable<PciWindowState> {
  constructor(
    private readonly host: PciHostBridge,
    private readonly base: number,
  ) {}

  state(): PciWindowState {
    return {};
  }

  restore(state: PciWindowState): void {
    stateFields('PCI memory window', state);
  }

  mmioRead(offset: number, data: Uint8Array): void {
    const hit = this.host.decode('memory', this.base + offset);
    if (!hit) {
      data.fill(BYTE_MASK);
      return;
    }
    // 1, 2 and 4 bytes at once; an 8-byte access as two dwords.
    for (let at = 0; at < data.length; at += DWORD) {
      const size = Math.min(DWORD, data.length - at);
      const value = hit.fn.barRead(hit.bar, hit.offset + at, size);
      for (let i = 0; i < size; i++) data[at + i] = (value >>> (i * 8)) & BYTE_MASK;
    }
  }

  mmioWrite(offset: number, data: Uint8Array): void {
    const hit = this.host.decode('memory', this.base + offset);
    if (!hit) return;
    for (let at = 0; at < data.length; at += DWORD) {
      const size = Math.min(DWORD, data.length - at);
      let value = 0;
      for (let i = 0; i < size; i++) value |= data[at + i]! << (i * 8);
      hit.fn.barWrite(hit.bar, hit.offset + at, size, value >>> 0);
    }
  }
}
