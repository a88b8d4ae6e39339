/**
 * A bus of address ranges: the port-I/O space or guest-physical MMIO space, with devices claiming
 * non-overlapping [base, base + length) ranges. Overlap is rejected when a device is registered, so
 * every address has at most one owner and `find()` never has to choose.
 *
 * `find()` runs on every I/O or MMIO exit, so it allocates nothing: it checks the slot that
 * answered last time (guests hammer one device in a loop, e.g. polling LSR and writing THR), then
 * binary-searches the slots, which are kept sorted by base.
 */
import type { MmioDevice, PioDevice } from './device.js';

/** Size of the x86 port-I/O address space (ports 0x0000–0xFFFF). */
export const PIO_ADDRESS_SPACE_SIZE = 0x10000;
/** Addresses are JS numbers; anything up to 2^53 is exact. */
export const MMIO_ADDRESS_SPACE_SIZE = Number.MAX_SAFE_INTEGER + 1;

/** One registered range. `end` is exclusive and is base + length. */
export interface BusSlot<D> {
  readonly base: number;
  readonly length: number;
  readonly device: D;
  readonly name: string;
}

export type BusErrorCode = 'EBUSOVERLAP' | 'EBUSRANGE';

export class BusError extends Error {
  override readonly name = 'BusError';
  readonly code: BusErrorCode;
  constructor(code: BusErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

const hex = (n: number): string => `0x${n.toString(16)}`;
/** Inclusive range, as people write port ranges: 0x3f8-0x3ff. */
const range = (base: number, length: number): string => `${hex(base)}-${hex(base + length - 1)}`;

export class Bus<D> {
  /** Slots sorted by base; `bases`/`ends` mirror them as plain numbers for the search loop. */
  private readonly slots: BusSlot<D>[] = [];
  private readonly bases: number[] = [];
  private readonly ends: number[] = [];
  /** Index of the slot that answered the last successful `find()`, or -1. */
  private last = -1;
  /** Grows with every registration: whoever keeps a map derived from the bus knows when to redo it. */
  private registrations = 0;

  /** @param size the size of the address space; ranges must lie inside [0, size). */
  constructor(readonly size: number = MMIO_ADDRESS_SPACE_SIZE) {
    if (!Number.isSafeInteger(size - 1) || size <= 0) {
      throw new BusError('EBUSRANGE', `bus size ${size} must be a positive integer up to 2^53`);
    }
  }

  /**
   * Gives `device` the addresses [base, base + length). Throws BusError EBUSRANGE for a bad range
   * and EBUSOVERLAP when any address is already taken (the message names both devices).
   */
  register(base: number, length: number, device: D, name: string): void {
    if (!Number.isSafeInteger(base) || base < 0) {
      throw new BusError('EBUSRANGE', `cannot register ${name} at base ${base}: the base must be a non-negative integer`);
    }
    if (!Number.isSafeInteger(length) || length <= 0) {
      throw new BusError(
        'EBUSRANGE',
        `cannot register ${name} at ${hex(base)} with length ${length}: the length must be a positive integer`,
      );
    }
    if (base + length > this.size) {
      throw new BusError(
        'EBUSRANGE',
        `cannot register ${name} at ${range(base, length)}: it ends past the bus's last address ${hex(this.size - 1)}`,
      );
    }
    // First slot whose base is above ours: the only candidates for overlap are it and the one
    // before it, since existing slots do not overlap one another.
    const at = this.upperBound(base);
    const end = base + length;
    const before = at - 1;
    const clash =
      before >= 0 && (this.ends[before] as number) > base ? before : at < this.slots.length && (this.bases[at] as number) < end ? at : -1;
    if (clash >= 0) {
      const other = this.slots[clash] as BusSlot<D>;
      throw new BusError(
        'EBUSOVERLAP',
        `cannot register ${name} at ${range(base, length)}: it overlaps ${other.name} at ` + `${range(other.base, other.length)}`,
      );
    }
    const slot: BusSlot<D> = Object.freeze({ base, length, device, name });
    this.slots.splice(at, 0, slot);
    this.bases.splice(at, 0, base);
    this.ends.splice(at, 0, end);
    this.last = -1;
    this.registrations++;
  }

  /** How many ranges have been registered: it changes whenever the map of owners does. */
  get generation(): number {
    return this.registrations;
  }

  /** The slot that owns `addr`, or undefined if no device does. Allocation-free. */
  find(addr: number): BusSlot<D> | undefined {
    const last = this.last;
    if (last >= 0 && addr >= (this.bases[last] as number) && addr < (this.ends[last] as number)) {
      return this.slots[last];
    }
    const i = this.upperBound(addr) - 1;
    if (i >= 0 && addr < (this.ends[i] as number)) {
      this.last = i;
      return this.slots[i];
    }
    return undefined;
  }

  /** Every registered slot, sorted by base (a snapshot). */
  entries(): readonly BusSlot<D>[] {
    return this.slots.slice();
  }

  /** Index of the first slot whose base is greater than `addr` (slots.length if none). */
  private upperBound(addr: number): number {
    const bases = this.bases;
    let lo = 0;
    let hi = bases.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((bases[mid] as number) <= addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

export type PioBus = Bus<PioDevice>;
export type MmioBus = Bus<MmioDevice>;
