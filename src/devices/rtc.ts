/**
 * The PC's real-time clock and CMOS RAM: a Motorola MC146818A at 0x70 (index, bit 7 masks NMI)
 * and 0x71 (data), interrupting on IRQ 8 — what QEMU's PC has (hw/rtc/mc146818rtc.c) and what
 * kvm-unit-tests' s3 test sets an alarm on to wake from S3.
 *
 * The clock is the host's (UTC), read from an injected monotonic clock plus the wall time at
 * start; a guest that sets the time moves an offset. Registers A-D as the data sheet has them:
 * A (UIP, divider, rate select), B (SET, PIE, AIE, UIE, SQWE, DM binary, 24/12, DSE), C (IRQF,
 * PF, AF, UF: read to clear), D (VRT). UIP reads 1 during the 244 µs before each update, as on the
 * chip (software waits for its falling edge to read a stable time). Update, alarm (with the
 * 0xC0-0xFF "don't care" values) and periodic interrupts are found when the device is touched or
 * `poll()`ed: the board polls at `nextDeadlineNs()`. CMOS bytes 0x0E-0x7F are plain RAM, with
 * the memory sizes and CPU count a PC BIOS leaves there (as QEMU's pc_cmos_init does).
 */
import type { PioDevice, PioSize } from './device.js';

export const RTC_PORT = 0x70;
export const RTC_PORT_COUNT = 2;
export const RTC_IRQ = 8;
export const CMOS_SIZE = 128;
const INDEX_PORT_OFFSET = 0;
export const RTC_INDEX_NMI_DISABLE = 0x80;
const INDEX_MASK = 0x7f;

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
export const RTC_REG_A = 0x0a;
export const RTC_REG_B = 0x0b;
export const RTC_REG_C = 0x0c;
export const RTC_REG_D = 0x0d;
/** CMOS shutdown status: what the BIOS does after a reset (0xFE: S3 resume, 0x0A/0x05: jump via 40:67). */
export const CMOS_SHUTDOWN_STATUS = 0x0f;
export const CMOS_SHUTDOWN_S3_RESUME = 0xfe;
export const CMOS_EXTMEM_LOW = 0x17;
export const CMOS_EXTMEM_HIGH = 0x18;
export const CMOS_EXTMEM2_LOW = 0x30;
export const CMOS_EXTMEM2_HIGH = 0x31;
export const CMOS_CENTURY = 0x32;
export const CMOS_MEM_ABOVE_16M_LOW = 0x34;
export const CMOS_MEM_ABOVE_16M_HIGH = 0x35;
export const CMOS_MEM_ABOVE_4G = 0x5b; // 3 bytes, 64 KiB units
export const CMOS_CPU_COUNT = 0x5f; // CPUs - 1 (QEMU/SeaBIOS)
export const CMOS_BASE_MEMORY_LOW = 0x15;
export const CMOS_BASE_MEMORY_HIGH = 0x16;

// Register A.
export const REG_A_UIP = 0x80;
export const REG_A_DV_MASK = 0x70;
export const REG_A_DV_32768 = 0x20; // the normal 32.768 kHz time base
export const REG_A_RS_MASK = 0x0f;
export const REG_A_POWER_ON = REG_A_DV_32768 | 0x06; // 1024 Hz periodic rate
// Register B.
export const REG_B_SET = 0x80;
export const REG_B_PIE = 0x40;
export const REG_B_AIE = 0x20;
export const REG_B_UIE = 0x10;
export const REG_B_SQWE = 0x08;
export const REG_B_DM_BINARY = 0x04;
export const REG_B_24H = 0x02;
export const REG_B_DSE = 0x01;
export const REG_B_POWER_ON = REG_B_24H;
// Register C.
export const REG_C_IRQF = 0x80;
export const REG_C_PF = 0x40;
export const REG_C_AF = 0x20;
export const REG_C_UF = 0x10;
// Register D.
export const REG_D_VRT = 0x80;
/** An alarm byte of 0xC0-0xFF matches every value. */
export const ALARM_DONT_CARE = 0xc0;
const HOUR_PM = 0x80;

/** The update cycle: UIP is up for this long before each second's update. */
export const RTC_UIP_NS = 244_000n;
const NS_PER_SECOND = 1_000_000_000n;
const NS_PER_MS = 1_000_000n;
const SECONDS_PER_DAY = 86_400;
const TIME_BASE_HZ = 32_768;
const KiB = 1024;
const MiB = 1024 * KiB;
const BYTE_MASK = 0xff;
const U16_MAX = 0xffff;
const UNITS_64K = 64 * KiB;

export interface RtcHost {
  /** IRQ 8. */
  setIrq(level: boolean): void;
  /** Monotonic nanoseconds (default process.hrtime.bigint). */
  nowNs?(): bigint;
  /** Wall-clock milliseconds at construction (default Date.now()). */
  wallClockMs?(): number;
}

export interface RtcConfig {
  /** Guest RAM in bytes, for the CMOS memory-size bytes. */
  memorySize?: number;
  cpus?: number;
}

export class Mc146818Rtc implements PioDevice {
  private readonly now: () => bigint;
  /** Wall-clock ns (UTC) that corresponds to monotonic time `monoBase`. */
  private readonly wallBase: bigint;
  private readonly monoBase: bigint;
  /** What the guest did to the time: added to the host's. */
  private offsetNs = 0n;
  private readonly cmos = new Uint8Array(CMOS_SIZE);
  private index = 0;
  private flags = 0;
  private irqLevel = false;
  /** The last guest second (epoch seconds) whose update has been accounted for. */
  private lastUpdateSecond: bigint;
  /** The last periodic-interrupt period index accounted for. */
  private lastPeriod = 0n;

  constructor(
    private readonly host: RtcHost,
    config: RtcConfig = {},
  ) {
    this.now = host.nowNs ?? (() => process.hrtime.bigint());
    this.monoBase = this.now();
    this.wallBase = BigInt(Math.floor(host.wallClockMs?.() ?? Date.now())) * NS_PER_MS;
    this.cmos[RTC_REG_A] = REG_A_POWER_ON;
    this.cmos[RTC_REG_B] = REG_B_POWER_ON;
    this.cmos[RTC_REG_D] = REG_D_VRT;
    this.writeMemoryConfig(config);
    this.lastUpdateSecond = this.guestNs() / NS_PER_SECOND;
    this.lastPeriod = this.periodIndex();
  }

  pioRead(offset: number, _size: PioSize): number {
    if (offset === INDEX_PORT_OFFSET) return BYTE_MASK; // the index register is write-only (QEMU reads 0xFF)
    this.poll();
    return this.readRegister(this.index);
  }

  pioWrite(offset: number, _size: PioSize, value: number): void {
    if (offset === INDEX_PORT_OFFSET) {
      this.index = value & INDEX_MASK; // bit 7 masks NMI; KVM delivers no NMI from here
      return;
    }
    this.poll();
    this.writeRegister(this.index, value & BYTE_MASK);
  }

  /** A CMOS byte, as the guest would read it (time registers included). */
  read(index: number): number {
    this.poll();
    return this.readRegister(index & INDEX_MASK);
  }

  /** Sets a plain CMOS byte (0x0E-0x7F) from the host, e.g. the shutdown status at S3 entry. */
  setCmos(index: number, value: number): void {
    if (index >= CMOS_SHUTDOWN_STATUS - 1 && index < CMOS_SIZE) this.cmos[index] = value & BYTE_MASK;
  }

  /** Brings C's flags and IRQ 8 up to date with the clock. */
  poll(): void {
    const b = this.cmos[RTC_REG_B]!;
    const nowNs = this.guestNs();
    const second = nowNs / NS_PER_SECOND;
    if (b & REG_B_SET || !this.running()) {
      this.lastUpdateSecond = second; // no updates while SET or with the divider stopped
    } else if (second > this.lastUpdateSecond) {
      this.flags |= REG_C_UF;
      // Each second the clock passed through might match the alarm: look at each (at most a day's worth).
      const from =
        second - this.lastUpdateSecond > BigInt(SECONDS_PER_DAY) ? second - BigInt(SECONDS_PER_DAY) + 1n : this.lastUpdateSecond + 1n;
      for (let s = from; s <= second; s++) {
        if (this.alarmMatches(s)) {
          this.flags |= REG_C_AF;
          break;
        }
      }
      this.lastUpdateSecond = second;
    }
    const period = this.periodIndex();
    if (period !== this.lastPeriod) {
      if (this.periodNs() !== undefined) this.flags |= REG_C_PF;
      this.lastPeriod = period;
    }
    this.updateIrq();
  }

  /** When the next interrupt this guest enabled is due (monotonic ns); undefined if none. */
  nextDeadlineNs(): bigint | undefined {
    const b = this.cmos[RTC_REG_B]!;
    const candidates: bigint[] = [];
    if (b & REG_B_UIE) candidates.push(this.nextSecondNs());
    if (b & REG_B_AIE) {
      const alarm = this.nextAlarmNs();
      if (alarm !== undefined) candidates.push(alarm);
    }
    const period = this.periodNs();
    if (b & REG_B_PIE && period !== undefined) candidates.push(this.monoBase + (this.periodIndex() + 1n) * period);
    return candidates.length ? candidates.reduce((a, c) => (c < a ? c : a)) : undefined;
  }

  /** When AF next sets (monotonic ns), whatever AIE says; undefined when the clock is stopped. */
  nextAlarmNs(): bigint | undefined {
    if (this.cmos[RTC_REG_B]! & REG_B_SET || !this.running()) return undefined;
    const second = this.guestNs() / NS_PER_SECOND;
    for (let s = second + 1n; s <= second + BigInt(SECONDS_PER_DAY); s++) {
      if (this.alarmMatches(s)) return s * NS_PER_SECOND - this.wallBase - this.offsetNs + this.monoBase;
    }
    return undefined;
  }

  /** Whether IRQ 8 is asserted (some enabled flag set in C). */
  get irq(): boolean {
    return this.irqLevel;
  }

  private running(): boolean {
    return (this.cmos[RTC_REG_A]! & REG_A_DV_MASK) === REG_A_DV_32768;
  }

  private guestNs(): bigint {
    return this.wallBase + (this.now() - this.monoBase) + this.offsetNs;
  }

  private nextSecondNs(): bigint {
    const g = this.guestNs();
    return this.now() + (NS_PER_SECOND - (g % NS_PER_SECOND));
  }

  /** The periodic interrupt's period (rate select 1-15 over the 32.768 kHz base), undefined when off. */
  private periodNs(): bigint | undefined {
    const rs = this.cmos[RTC_REG_A]! & REG_A_RS_MASK;
    if (rs === 0 || !this.running()) return undefined;
    const hz = rs <= 2 ? TIME_BASE_HZ >> (rs + 6) : TIME_BASE_HZ >> (rs - 1);
    return NS_PER_SECOND / BigInt(hz);
  }

  private periodIndex(): bigint {
    const period = this.periodNs();
    return period === undefined ? 0n : (this.now() - this.monoBase) / period;
  }

  private alarmMatches(epochSecond: bigint): boolean {
    const t = new Date(Number(epochSecond) * 1000);
    const match = (alarmReg: number, value: number, hours = false): boolean => {
      const alarm = this.cmos[alarmReg]!;
      if ((alarm & ALARM_DONT_CARE) === ALARM_DONT_CARE) return true;
      return alarm === (hours ? this.encodeHours(value) : this.encode(value));
    };
    return (
      match(RTC_SECONDS_ALARM, t.getUTCSeconds()) &&
      match(RTC_MINUTES_ALARM, t.getUTCMinutes()) &&
      match(RTC_HOURS_ALARM, t.getUTCHours(), true)
    );
  }

  private binary(): boolean {
    return (this.cmos[RTC_REG_B]! & REG_B_DM_BINARY) !== 0;
  }

  private encode(value: number): number {
    return this.binary() ? value : ((Math.floor(value / 10) << 4) | (value % 10)) & BYTE_MASK;
  }

  private decode(value: number): number {
    return this.binary() ? value : (value >> 4) * 10 + (value & 0xf);
  }

  private encodeHours(hours: number): number {
    if (this.cmos[RTC_REG_B]! & REG_B_24H) return this.encode(hours);
    const pm = hours >= 12 ? HOUR_PM : 0;
    return this.encode(hours % 12 === 0 ? 12 : hours % 12) | pm;
  }

  private decodeHours(value: number): number {
    if (this.cmos[RTC_REG_B]! & REG_B_24H) return this.decode(value);
    const h = this.decode(value & ~HOUR_PM) % 12;
    return value & HOUR_PM ? h + 12 : h;
  }

  private readRegister(index: number): number {
    const t = new Date(Number(this.guestNs() / NS_PER_MS));
    switch (index) {
      case RTC_SECONDS:
        return this.encode(t.getUTCSeconds());
      case RTC_MINUTES:
        return this.encode(t.getUTCMinutes());
      case RTC_HOURS:
        return this.encodeHours(t.getUTCHours());
      case RTC_DAY_OF_WEEK:
        return this.encode(t.getUTCDay() + 1);
      case RTC_DAY_OF_MONTH:
        return this.encode(t.getUTCDate());
      case RTC_MONTH:
        return this.encode(t.getUTCMonth() + 1);
      case RTC_YEAR:
        return this.encode(t.getUTCFullYear() % 100);
      case CMOS_CENTURY:
        return this.encode(Math.floor(t.getUTCFullYear() / 100));
      case RTC_REG_A: {
        const inUpdate =
          !(this.cmos[RTC_REG_B]! & REG_B_SET) && this.running() && NS_PER_SECOND - (this.guestNs() % NS_PER_SECOND) <= RTC_UIP_NS;
        return (this.cmos[RTC_REG_A]! & ~REG_A_UIP) | (inUpdate ? REG_A_UIP : 0);
      }
      case RTC_REG_C: {
        const value = this.flags | (this.irqLevel ? REG_C_IRQF : 0);
        this.flags = 0; // reading C clears it, and lowers IRQ 8
        this.updateIrq();
        return value;
      }
      default:
        return this.cmos[index]!;
    }
  }

  private writeRegister(index: number, value: number): void {
    switch (index) {
      case RTC_SECONDS:
      case RTC_MINUTES:
      case RTC_HOURS:
      case RTC_DAY_OF_MONTH:
      case RTC_MONTH:
      case RTC_YEAR:
      case CMOS_CENTURY:
        this.setTimeField(index, value);
        return;
      case RTC_DAY_OF_WEEK:
        return; // derived from the date
      case RTC_REG_A:
        this.cmos[RTC_REG_A] = value & ~REG_A_UIP;
        this.lastPeriod = this.periodIndex();
        return;
      case RTC_REG_B: {
        // Setting SET stops updates (and clears UIE, as the data sheet says).
        const next = value & REG_B_SET ? value & ~REG_B_UIE : value;
        this.cmos[RTC_REG_B] = next;
        this.updateIrq();
        return;
      }
      case RTC_REG_C:
      case RTC_REG_D:
        return; // read-only
      default:
        this.cmos[index] = value;
    }
  }

  /** The guest sets one field: the clock moves so that the field reads back what was written. */
  private setTimeField(index: number, value: number): void {
    const ns = this.guestNs();
    const t = new Date(Number(ns / NS_PER_MS));
    const fields = {
      year: t.getUTCFullYear(),
      month: t.getUTCMonth(),
      day: t.getUTCDate(),
      hours: t.getUTCHours(),
      minutes: t.getUTCMinutes(),
      seconds: t.getUTCSeconds(),
    };
    switch (index) {
      case RTC_SECONDS:
        fields.seconds = this.decode(value);
        break;
      case RTC_MINUTES:
        fields.minutes = this.decode(value);
        break;
      case RTC_HOURS:
        fields.hours = this.decodeHours(value);
        break;
      case RTC_DAY_OF_MONTH:
        fields.day = this.decode(value);
        break;
      case RTC_MONTH:
        fields.month = this.decode(value) - 1;
        break;
      case RTC_YEAR:
        fields.year = Math.floor(fields.year / 100) * 100 + this.decode(value);
        break;
      case CMOS_CENTURY:
        fields.year = this.decode(value) * 100 + (fields.year % 100);
        break;
    }
    const wanted = Date.UTC(fields.year, fields.month, fields.day, fields.hours, fields.minutes, fields.seconds);
    const subSecond = ns % NS_PER_SECOND;
    this.offsetNs += BigInt(wanted) * NS_PER_MS + subSecond - ns;
    this.lastUpdateSecond = this.guestNs() / NS_PER_SECOND;
  }

  private updateIrq(): void {
    const b = this.cmos[RTC_REG_B]!;
    const level =
      ((this.flags & REG_C_PF && b & REG_B_PIE) || (this.flags & REG_C_AF && b & REG_B_AIE) || (this.flags & REG_C_UF && b & REG_B_UIE)) !==
      0;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.host.setIrq(level);
    }
  }

  /** The memory and CPU bytes a PC BIOS leaves in CMOS (QEMU's pc_cmos_init). */
  private writeMemoryConfig(config: RtcConfig): void {
    const memory = config.memorySize ?? 0;
    const base = Math.floor(Math.min(memory, 640 * KiB) / KiB);
    this.cmos[CMOS_BASE_MEMORY_LOW] = base & BYTE_MASK;
    this.cmos[CMOS_BASE_MEMORY_HIGH] = base >> 8;
    const extKiB = Math.min(U16_MAX, Math.floor(Math.max(0, Math.min(memory, 4 * 1024 * MiB) - MiB) / KiB));
    this.cmos[CMOS_EXTMEM_LOW] = this.cmos[CMOS_EXTMEM2_LOW] = extKiB & BYTE_MASK;
    this.cmos[CMOS_EXTMEM_HIGH] = this.cmos[CMOS_EXTMEM2_HIGH] = extKiB >> 8;
    const above16M = Math.min(U16_MAX, Math.floor(Math.max(0, Math.min(memory, 4 * 1024 * MiB) - 16 * MiB) / UNITS_64K));
    this.cmos[CMOS_MEM_ABOVE_16M_LOW] = above16M & BYTE_MASK;
    this.cmos[CMOS_MEM_ABOVE_16M_HIGH] = above16M >> 8;
    const above4G = Math.floor(Math.max(0, memory - 4 * 1024 * MiB) / UNITS_64K);
    for (let i = 0; i < 3; i++) this.cmos[CMOS_MEM_ABOVE_4G + i] = Math.floor(above4G / 256 ** i) & BYTE_MASK;
    this.cmos[CMOS_CPU_COUNT] = Math.max(0, (config.cpus ?? 1) - 1);
  }
}
