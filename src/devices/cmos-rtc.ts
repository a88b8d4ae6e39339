/**
 * The CMOS RAM and real-time clock of a PC (Motorola MC146818A, as the AT wired it): an index
 * port at 0x70 (bit 7 masks NMI) and a data port at 0x71 over 128 bytes. The clock registers
 * (0x00-0x09, century at 0x32) read the host's local time plus whatever offset the guest set
 * by writing them, in BCD or binary and 12- or 24-hour form as status register B says. Status A
 * shows update-in-progress (UIP) during the last 244 µs of each second, as the chip does; B, C
 * and D read as after a BIOS's POST. The configuration bytes a BIOS keeps here (floppy and hard
 * disk types, equipment, base and extended memory) are filled from `CmosConfig`.
 *
 * Alarm and periodic interrupts (IRQ8) are not generated; their registers read back.
 */
import type { PioDevice, PioSize, Snapshottable } from './device.js';

export const CMOS_IO_BASE = 0x70;
export const CMOS_IO_COUNT = 2;
const INDEX_OFFSET = 0;
const DATA_OFFSET = 1;
export const CMOS_NMI_DISABLE = 0x80;
export const CMOS_INDEX_MASK = 0x7f;
export const CMOS_SIZE = 128;

// Registers.
export const RTC_SECONDS = 0x00;
export const RTC_SECONDS_ALARM = 0x01;
export const RTC_MINUTES = 0x02;
export const RTC_MINUTES_ALARM = 0x03;
export const RTC_HOURS = 0x04;
export const RTC_HOURS_ALARM = 0x05;
export const RTC_DAY_OF_WEEK = 0x06;
export const RTC_DAY_OF_MONTH = 0x07;
export const RTC_MONTH = 0x08;
export const RTC_YEAR = 0x09;
export const RTC_STATUS_A = 0x0a;
export const RTC_STATUS_B = 0x0b;
export const RTC_STATUS_C = 0x0c;
export const RTC_STATUS_D = 0x0d;
export const CMOS_DIAGNOSTIC = 0x0e;
export const CMOS_SHUTDOWN = 0x0f;
export const CMOS_FLOPPY_TYPES = 0x10; // high nibble drive A, low nibble drive B
export const CMOS_DISK_TYPES = 0x12;
export const CMOS_EQUIPMENT = 0x14;
export const CMOS_BASE_MEMORY_LOW = 0x15; // KiB
export const CMOS_BASE_MEMORY_HIGH = 0x16;
export const CMOS_EXT_MEMORY_LOW = 0x17; // KiB above 1 MiB, at most 0xFFFF
export const CMOS_EXT_MEMORY_HIGH = 0x18;
export const CMOS_EXT_MEMORY2_LOW = 0x30;
export const CMOS_EXT_MEMORY2_HIGH = 0x31;
export const RTC_CENTURY = 0x32;
export const CMOS_MEMORY_ABOVE_16M_LOW = 0x34; // 64 KiB units above 16 MiB
export const CMOS_MEMORY_ABOVE_16M_HIGH = 0x35;

// Status A: divider 32.768 kHz (010), rate 1024 Hz (0110); UIP bit 7.
export const RTC_A_DEFAULT = 0x26;
export const RTC_A_UIP = 0x80;
// Status B.
export const RTC_B_SET = 0x80; // updates stopped while the guest sets the time
export const RTC_B_PIE = 0x40;
export const RTC_B_AIE = 0x20;
export const RTC_B_UIE = 0x10;
export const RTC_B_DM_BINARY = 0x04;
export const RTC_B_24H = 0x02;
export const RTC_B_DEFAULT = RTC_B_24H;
export const RTC_D_VRT = 0x80; // valid RAM and time
export const RTC_HOUR_PM = 0x80;
/** The update cycle: UIP is set 244 µs before the seconds change. */
export const RTC_UIP_MS = 0.244;

/** Floppy drive types in CMOS 0x10. */
export const CMOS_FLOPPY_NONE = 0;
export const CMOS_FLOPPY_360K = 1;
export const CMOS_FLOPPY_1200K = 2;
export const CMOS_FLOPPY_720K = 3;
export const CMOS_FLOPPY_1440K = 4;
export const CMOS_FLOPPY_2880K = 5;
/** CMOS 0x12: type 0xF = "see the extended type", the value every BIOS uses for any disk. */
export const CMOS_DISK_EXTENDED = 0xf;
// Equipment byte (0x14): bit 0 floppy present, bit 1 x87, bits 4-5 display (00 = EGA/VGA), 6-7 floppies - 1.
export const CMOS_EQUIP_FLOPPY = 0x01;
export const CMOS_EQUIP_X87 = 0x02;
const CMOS_EQUIP_FLOPPY_COUNT_SHIFT = 6;

const KIB = 1024;
const MIB = 1024 * KIB;
const UNIT_64K = 64 * KIB;
const MAX_U16 = 0xffff;
const BYTE = 0xff;
const MS_PER_S = 1000;
const BASE_MEMORY_KIB = 640;

export interface CmosConfig {
  /** Guest RAM in bytes (fills the memory-size bytes). */
  memorySize: number;
  /** CMOS floppy types of drives A and B (CMOS_FLOPPY_*). */
  floppies?: [number, number];
  /** Hard disks present (up to two: CMOS 0x12 says type 0xF for each). */
  hardDisks?: number;
}

export interface CmosRtcState {
  ram: number[];
  index: number;
  nmiDisabled: boolean;
  /** Guest time minus host time, in milliseconds (the guest set its clock). */
  offsetMs: number;
  /** While status B's SET bit is on: the time the guest is writing, frozen. */
  frozenMs: number | undefined;
}

interface Clock {
  seconds: number;
  minutes: number;
  hours: number;
  dayOfWeek: number; // 1 = Sunday
  day: number;
  month: number;
  year: number; // full year
}

export class CmosRtc implements PioDevice, Snapshottable<CmosRtcState> {
  private readonly ram = new Uint8Array(CMOS_SIZE);
  private index = 0;
  private nmiDisabled = false;
  private offsetMs = 0;
  private frozenMs: number | undefined;

  /** `now` is the host's time in ms since the epoch; the clock shows it in the host's local time zone. */
  constructor(
    config: CmosConfig,
    private readonly now: () => number = () => Date.now(),
  ) {
    const ram = this.ram;
    ram[RTC_STATUS_A] = RTC_A_DEFAULT;
    ram[RTC_STATUS_B] = RTC_B_DEFAULT;
    ram[RTC_STATUS_D] = RTC_D_VRT;
    const [a, b] = config.floppies ?? [CMOS_FLOPPY_NONE, CMOS_FLOPPY_NONE];
    ram[CMOS_FLOPPY_TYPES] = (a << 4) | b;
    const disks = Math.min(config.hardDisks ?? 0, 2);
    ram[CMOS_DISK_TYPES] = (disks >= 1 ? CMOS_DISK_EXTENDED << 4 : 0) | (disks >= 2 ? CMOS_DISK_EXTENDED : 0);
    const floppyCount = (a ? 1 : 0) + (b ? 1 : 0);
    ram[CMOS_EQUIPMENT] = CMOS_EQUIP_X87 | (floppyCount ? CMOS_EQUIP_FLOPPY | ((floppyCount - 1) << CMOS_EQUIP_FLOPPY_COUNT_SHIFT) : 0);
    ram[CMOS_BASE_MEMORY_LOW] = BASE_MEMORY_KIB & BYTE;
    ram[CMOS_BASE_MEMORY_HIGH] = BASE_MEMORY_KIB >>> 8;
    const extKib = Math.min(Math.max(0, config.memorySize - MIB) / KIB, MAX_U16);
    for (const [low, high] of [
      [CMOS_EXT_MEMORY_LOW, CMOS_EXT_MEMORY_HIGH],
      [CMOS_EXT_MEMORY2_LOW, CMOS_EXT_MEMORY2_HIGH],
    ] as const) {
      ram[low] = extKib & BYTE;
      ram[high] = extKib >>> 8;
    }
    const above16m = Math.min(Math.max(0, config.memorySize - 16 * MIB) / UNIT_64K, MAX_U16);
    ram[CMOS_MEMORY_ABOVE_16M_LOW] = above16m & BYTE;
    ram[CMOS_MEMORY_ABOVE_16M_HIGH] = above16m >>> 8;
  }

  pioRead(offset: number, size: PioSize): number {
    if (offset === INDEX_OFFSET) return BYTE; // the index port is write-only
    if (offset !== DATA_OFFSET) return size === 1 ? BYTE : 0xffff;
    return this.readRegister(this.index);
  }

  pioWrite(offset: number, _size: PioSize, value: number): void {
    if (offset === INDEX_OFFSET) {
      this.index = value & CMOS_INDEX_MASK;
      this.nmiDisabled = (value & CMOS_NMI_DISABLE) !== 0;
    } else if (offset === DATA_OFFSET) {
      this.writeRegister(this.index, value & BYTE);
    }
  }

  /** Whether the guest masked NMI through port 0x70 bit 7 (there are no NMIs to mask). */
  get nmiMasked(): boolean {
    return this.nmiDisabled;
  }

  /** The guest's idea of the time, in ms since the epoch. */
  guestTimeMs(): number {
    return this.frozenMs ?? this.now() + this.offsetMs;
  }

  readRegister(index: number): number {
    const ram = this.ram;
    switch (index) {
      case RTC_SECONDS:
      case RTC_MINUTES:
      case RTC_HOURS:
      case RTC_DAY_OF_WEEK:
      case RTC_DAY_OF_MONTH:
      case RTC_MONTH:
      case RTC_YEAR:
      case RTC_CENTURY:
        return this.clockRegister(index, this.clock());
      case RTC_STATUS_A: {
        const ms = this.guestTimeMs() % MS_PER_S;
        const updating = this.frozenMs === undefined && ms >= MS_PER_S - RTC_UIP_MS;
        return (ram[RTC_STATUS_A]! & ~RTC_A_UIP) | (updating ? RTC_A_UIP : 0);
      }
      case RTC_STATUS_C: {
        const value = ram[RTC_STATUS_C]!;
        ram[RTC_STATUS_C] = 0; // reading C acknowledges the interrupt flags
        return value;
      }
      default:
        return ram[index] ?? BYTE;
    }
  }

  writeRegister(index: number, value: number): void {
    switch (index) {
      case RTC_SECONDS:
      case RTC_MINUTES:
      case RTC_HOURS:
      case RTC_DAY_OF_WEEK:
      case RTC_DAY_OF_MONTH:
      case RTC_MONTH:
      case RTC_YEAR:
      case RTC_CENTURY:
        this.setClockRegister(index, value);
        return;
      case RTC_STATUS_A:
        this.ram[RTC_STATUS_A] = value & ~RTC_A_UIP; // UIP is read-only
        return;
      case RTC_STATUS_B: {
        const wasSet = (this.ram[RTC_STATUS_B]! & RTC_B_SET) !== 0;
        this.ram[RTC_STATUS_B] = value;
        const isSet = (value & RTC_B_SET) !== 0;
        if (isSet && !wasSet) this.frozenMs = this.guestTimeMs();
        if (!isSet && wasSet && this.frozenMs !== undefined) {
          this.offsetMs = this.frozenMs - this.now();
          this.frozenMs = undefined;
        }
        return;
      }
      case RTC_STATUS_C:
      case RTC_STATUS_D:
        return; // read-only
      default:
        this.ram[index] = value;
    }
  }

  private get binary(): boolean {
    return (this.ram[RTC_STATUS_B]! & RTC_B_DM_BINARY) !== 0;
  }

  private get hours24(): boolean {
    return (this.ram[RTC_STATUS_B]! & RTC_B_24H) !== 0;
  }

  private encode(value: number): number {
    return this.binary ? value : toBcd(value);
  }

  private decode(value: number): number {
    return this.binary ? value : fromBcd(value);
  }

  private clock(): Clock {
    const d = new Date(this.guestTimeMs());
    return {
      seconds: d.getSeconds(),
      minutes: d.getMinutes(),
      hours: d.getHours(),
      dayOfWeek: d.getDay() + 1,
      day: d.getDate(),
      month: d.getMonth() + 1,
      year: d.getFullYear(),
    };
  }

  private clockRegister(index: number, c: Clock): number {
    switch (index) {
      case RTC_SECONDS:
        return this.encode(c.seconds);
      case RTC_MINUTES:
        return this.encode(c.minutes);
      case RTC_HOURS: {
        if (this.hours24) return this.encode(c.hours);
        const h12 = c.hours % 12 === 0 ? 12 : c.hours % 12;
        return this.encode(h12) | (c.hours >= 12 ? RTC_HOUR_PM : 0);
      }
      case RTC_DAY_OF_WEEK:
        return this.encode(c.dayOfWeek);
      case RTC_DAY_OF_MONTH:
        return this.encode(c.day);
      case RTC_MONTH:
        return this.encode(c.month);
      case RTC_YEAR:
        return this.encode(c.year % 100);
      default:
        return this.encode(Math.floor(c.year / 100));
    }
  }

  /** A clock register written: the guest's time becomes that, kept as an offset from the host's. */
  private setClockRegister(index: number, value: number): void {
    const base = new Date(this.guestTimeMs());
    const c = this.clock();
    let v = value;
    if (index === RTC_HOURS && !this.hours24) {
      const pm = (v & RTC_HOUR_PM) !== 0;
      const h = this.decode(v & ~RTC_HOUR_PM) % 12;
      v = h + (pm ? 12 : 0);
    } else {
      v = this.decode(v);
    }
    switch (index) {
      case RTC_SECONDS:
        c.seconds = v;
        break;
      case RTC_MINUTES:
        c.minutes = v;
        break;
      case RTC_HOURS:
        c.hours = v;
        break;
      case RTC_DAY_OF_WEEK:
        return; // derived from the date
      case RTC_DAY_OF_MONTH:
        c.day = v;
        break;
      case RTC_MONTH:
        c.month = v;
        break;
      case RTC_YEAR:
        c.year = Math.floor(c.year / 100) * 100 + v;
        break;
      default:
        c.year = v * 100 + (c.year % 100);
    }
    const target = new Date(c.year, c.month - 1, c.day, c.hours, c.minutes, c.seconds, base.getMilliseconds()).getTime();
    if (Number.isNaN(target)) return;
    if (this.frozenMs !== undefined) this.frozenMs = target;
    else this.offsetMs = target - this.now();
  }

  state(): CmosRtcState {
    return {
      ram: Array.from(this.ram),
      index: this.index,
      nmiDisabled: this.nmiDisabled,
      offsetMs: this.offsetMs,
      frozenMs: this.frozenMs,
    };
  }

  restore(state: CmosRtcState): void {
    this.ram.set(state.ram.slice(0, CMOS_SIZE));
    this.index = state.index & CMOS_INDEX_MASK;
    this.nmiDisabled = state.nmiDisabled;
    this.offsetMs = state.offsetMs;
    this.frozenMs = state.frozenMs;
  }
}

export const toBcd = (value: number): number => ((Math.floor(value / 10) % 10) << 4) | (value % 10);
export const fromBcd = (value: number): number => (value >> 4) * 10 + (value & 0x0f);
