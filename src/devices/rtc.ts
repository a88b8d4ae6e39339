/**
 * The PC's real-time clock and CMOS RAM: one Motorola MC146818A at 0x70 (index; bit 7 masks NMI)
 * and 0x71 (data), interrupting on IRQ 8. The one model both tskvm's BIOS (INT 1Ah, the CMOS
 * configuration bytes DOS reads) and the kvm-unit-tests kernels (s3.c's UIP wait and alarm,
 * init.c's shutdown status) use, as QEMU's hw/rtc/mc146818rtc.c serves both.
 *
 * The chip, as its data sheet has it:
 * - A divider chain (register A's DV bits = 010: the 32.768 kHz time base running) drives an
 *   update cycle once a second, which advances the time registers. `clockSeconds` holds the time
 *   they show (seconds since the epoch in the clock's own frame: UTC, or local time with
 *   `base: 'localtime'` as DOS expects); setting a time register changes it without moving the
 *   divider's phase. While B's SET bit is on, updates stop (and UIE clears). A divider held in
 *   reset (DV = 11x) stops the clock; starting it again puts the first update 500 ms later.
 * - UIP (A bit 7) reads 1 during the 244 µs before each update: software waits for its fall.
 * - Register C's flags: UF at each update, AF at an update whose time matches the alarm bytes
 *   (a value 0xC0-0xFF in an alarm byte matches anything), PF at each edge of the periodic rate
 *   register A's RS bits select (RS = 1, 2: 256, 128 Hz; RS = 3-15: 8192 Hz down to 2 Hz, halving
 *   with each step; 0: none); the flags set whatever the enables say. IRQF and IRQ 8 are up
 *   while a flag is set whose enable (PIE, AIE, UIE) is too. Reading C returns the flags and
 *   clears them and the line. The chipset may gate the line (`gateIrq`: HPET legacy routing).
 * - Time registers in BCD or binary (B's DM bit), hours in 24- or 12-hour form (bit 7 = PM).
 * - D reads VRT (valid RAM and time); C and D are read-only. DSE (B bit 0, the 1980s US daylight
 *   saving switch) and SQWE (a square-wave pin the PC leaves unconnected) are kept and do nothing,
 *   as in QEMU.
 * - CMOS bytes 0x0E-0x7F are plain RAM, filled with what a PC BIOS leaves there (QEMU's
 *   pc_cmos_init): shutdown status 0x0F, floppy and disk types, equipment 0x14, base and extended
 *   memory (0x15-0x18, 0x30/0x31), memory above 16 MiB (0x34/0x35) and 4 GiB (0x5B-0x5D), the
 *   CPU count - 1 (0x5F); the century 0x32 is a clock register (the FADT's CENTURY names it).
 *
 * Nothing runs on its own: the registers are brought up to date with the clock on every access
 * and on `poll()`. `nextDeadlineNs()` says when the next interrupt the guest enabled is due, so
 * the board can wake a halted vCPU then (TimedDevice in timed-device.ts). `state()`/`restore()`
 * keep the clock relative to the guest (RtcState).
 */
import type { PioDevice, PioSize, Snapshottable } from './device.js';
import { boolField, bytesField, intField, maskField, stateFields } from './state-check.js';
import type { TimedDevice } from './timed-device.js';

export const RTC_PORT = 0x70;
export const RTC_PORT_COUNT = 2;
export const RTC_IRQ = 8;
export const CMOS_SIZE = 128;
const INDEX_PORT_OFFSET = 0;
const DATA_PORT_OFFSET = 1;
export const RTC_INDEX_NMI_DISABLE = 0x80;
const INDEX_MASK = 0x7f;

// The clock's registers.
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
export const RTC_CENTURY = 0x32;
/** The clock's own registers: read from and written to the running time, not the CMOS array. */
const TIME_REGISTERS: ReadonlySet<number> = new Set([
  RTC_SECONDS,
  RTC_MINUTES,
  RTC_HOURS,
  RTC_DAY_OF_WEEK,
  RTC_DAY_OF_MONTH,
  RTC_MONTH,
  RTC_YEAR,
  RTC_CENTURY,
]);

// CMOS RAM, as a PC BIOS lays it out.
export const CMOS_DIAGNOSTIC = 0x0e;
/** What the BIOS does after a reset (0xFE: S3 resume, 0x0A/0x05: jump via 40:67, 0: a normal boot). */
export const CMOS_SHUTDOWN_STATUS = 0x0f;
export const CMOS_SHUTDOWN_S3_RESUME = 0xfe;
export const CMOS_FLOPPY_TYPES = 0x10; // high nibble drive A, low nibble drive B
export const CMOS_DISK_TYPES = 0x12;
export const CMOS_EQUIPMENT = 0x14;
export const CMOS_BASE_MEMORY_LOW = 0x15; // KiB
export const CMOS_BASE_MEMORY_HIGH = 0x16;
export const CMOS_EXTMEM_LOW = 0x17; // KiB above 1 MiB, at most 0xFFFF
export const CMOS_EXTMEM_HIGH = 0x18;
export const CMOS_EXTMEM2_LOW = 0x30;
export const CMOS_EXTMEM2_HIGH = 0x31;
export const CMOS_MEM_ABOVE_16M_LOW = 0x34; // 64 KiB units above 16 MiB (below 4 GiB)
export const CMOS_MEM_ABOVE_16M_HIGH = 0x35;
export const CMOS_MEM_ABOVE_4G = 0x5b; // 3 bytes, 64 KiB units
const CMOS_MEM_ABOVE_4G_BYTES = 3;
export const CMOS_CPU_COUNT = 0x5f; // CPUs - 1 (QEMU/SeaBIOS)

/** Floppy drive types in CMOS 0x10. */
export const CMOS_FLOPPY_NONE = 0;
export const CMOS_FLOPPY_360K = 1;
export const CMOS_FLOPPY_1200K = 2;
export const CMOS_FLOPPY_720K = 3;
export const CMOS_FLOPPY_1440K = 4;
export const CMOS_FLOPPY_2880K = 5;
const FLOPPY_TYPE_MASK = 0xf;
/** CMOS 0x12: type 0xF = "see the extended type", the value every BIOS uses for any disk. */
export const CMOS_DISK_EXTENDED = 0xf;
// The equipment byte (0x14): bit 0 floppies present, bit 1 x87, bits 4-5 display (00 = EGA/VGA), 6-7 floppies - 1.
export const CMOS_EQUIP_FLOPPY = 0x01;
export const CMOS_EQUIP_X87 = 0x02;
const CMOS_EQUIP_FLOPPY_COUNT_SHIFT = 6;

// Register A.
export const REG_A_UIP = 0x80;
export const REG_A_DV_MASK = 0x70;
export const REG_A_DV_32768 = 0x20; // the 32.768 kHz time base, running
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
const REG_C_FLAGS = REG_C_PF | REG_C_AF | REG_C_UF;
// Register D.
export const REG_D_VRT = 0x80;
/** An alarm byte of 0xC0-0xFF matches every value. */
export const ALARM_DONT_CARE = 0xc0;
export const RTC_HOUR_PM = 0x80;

/** UIP is up for this long before each second's update. */
export const RTC_UIP_NS = 244_000n;
/** A divider started from reset makes its first update this long after (the data sheet's 500 ms). */
const DIVIDER_START_NS = 500_000_000n;
const NS_PER_SECOND = 1_000_000_000n;
const NS_PER_MS = 1_000_000n;
const MS_PER_SECOND = 1000;
const SECONDS_PER_MINUTE = 60;
const SECONDS_PER_HOUR = 3600;
const SECONDS_PER_DAY = 86_400;
const HOURS_PER_DAY = 24;
const MINUTES_PER_HOUR = 60;
const TIME_BASE_HZ = 32_768n;
/** The data sheet's rate table in 32.768 kHz cycles: RS = 1, 2 → 2^(RS + 6) cycles; RS = 3-15 → 2^(RS - 1). */
const RS_LOW_RATES = 2;
const RS_LOW_SHIFT = 6;
const RS_HIGH_SHIFT = 1;
const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const BASE_MEMORY_KIB = 640;
const BYTE_MASK = 0xff;
const NIBBLE = 4;
const NIBBLE_MASK = 0xf;
const BCD_DIGIT_MAX = 9;
const U16_MAX = 0xffff;
const UNITS_64K = 64 * KiB;
const MAX_HARD_DISKS = 2;

export interface RtcHost {
  /** IRQ 8 (absent: the line goes nowhere). */
  setIrq?(level: boolean): void;
  /** Monotonic nanoseconds (default process.hrtime.bigint). */
  nowNs?(): bigint;
  /** Wall-clock milliseconds since the epoch, read once at construction (default Date.now()). */
  wallClockMs?(): number;
}

export interface RtcConfig {
  /** Guest RAM in bytes, for the CMOS memory-size bytes. */
  memorySize?: number;
  /** vCPUs (CMOS 0x5F holds the count - 1). */
  cpus?: number;
  /** CMOS floppy types of drives A and B (CMOS_FLOPPY_*). */
  floppies?: readonly [number, number];
  /** Hard disks present (up to two: CMOS 0x12 says type 0xF for each). */
  hardDisks?: number;
  /** What the clock shows: UTC (QEMU's default, `-rtc base=utc`) or the host's local time (DOS's idea of it). */
  base?: 'utc' | 'localtime';
}

/**
 * What restore() takes. Time is kept relative to the guest, not the host: the clock's reading
 * and the divider's phase at the moment of the save, so a restored clock goes on from there (as
 * kvmclock does after KVM_SET_CLOCK), in this process or another.
 */
export interface RtcState {
  /** The 128 bytes; the time registers (0-9, 0x32) and C are not read from here. */
  cmos: number[];
  index: number;
  nmiMasked: boolean;
  /** The time the registers show, in seconds since the epoch (in the clock's frame). */
  clockSeconds: number;
  /** Nanoseconds since the divider's last update (0 to 10^9 - 1). */
  phaseNs: number;
  /** Register C's PF, AF and UF. */
  flags: number;
  /** Whether IRQ 8 was up (IRQF as the line showed it). */
  irqLine: boolean;
}

/** Fields of one time of day; undefined where the alarm byte says "don't care". */
interface AlarmTime {
  hours: number | undefined;
  minutes: number | undefined;
  seconds: number | undefined;
}

export class Mc146818Rtc implements PioDevice, Snapshottable<RtcState>, TimedDevice {
  private readonly now: () => bigint;
  private readonly cmos = new Uint8Array(CMOS_SIZE);
  private index = 0;
  private nmiDisabled = false;
  /** The time registers' value, as epoch seconds in the clock's frame. */
  private clockSeconds: number;
  /** Monotonic ns at which the divider chain made an update (its seconds are counted from here). */
  private dividerBaseNs: bigint;
  /** The divider's second (since dividerBaseNs) the registers were last brought up to. */
  private lastUpdate = 0n;
  /** The periodic-rate edge (since dividerBaseNs) PF was last brought up to. */
  private lastPeriod = 0n;
  private flags = 0;
  private irqLevel = false;
  /** The chipset took IRQ 8 away (HPET legacy replacement): IRQF still sets, the line stays low. */
  private irqGated = false;
  /**
   * nextDeadlineNs()'s last answer, which holds until the guest touches a register (an index
   * write does not) or the state is restored, or until it has passed: the board asks after every
   * access to the chip, and a guest reading the CMOS writes the index port as often as it reads.
   */
  private deadline: bigint | undefined;
  private deadlineKnown = false;

  constructor(
    private readonly host: RtcHost = {},
    config: RtcConfig = {},
  ) {
    this.now = host.nowNs ?? (() => process.hrtime.bigint());
    const nowNs = this.now();
    const wallMs = Math.floor(host.wallClockMs?.() ?? Date.now());
    // Local time: the host's offset from UTC at start (a change of daylight saving later is not followed).
    const frameMs =
      config.base === 'localtime' ? wallMs - new Date(wallMs).getTimezoneOffset() * SECONDS_PER_MINUTE * MS_PER_SECOND : wallMs;
    this.clockSeconds = Math.floor(frameMs / MS_PER_SECOND);
    // The divider's phase follows the host's: updates happen as the host's seconds turn.
    this.dividerBaseNs = nowNs - BigInt(frameMs - this.clockSeconds * MS_PER_SECOND) * NS_PER_MS;
    this.cmos[RTC_REG_A] = REG_A_POWER_ON;
    this.cmos[RTC_REG_B] = REG_B_POWER_ON;
    this.cmos[RTC_REG_D] = REG_D_VRT;
    this.writeConfiguration(config);
    this.lastPeriod = this.periodEdge(nowNs);
  }

  pioRead(offset: number, size: PioSize): number {
    if (offset === INDEX_PORT_OFFSET) return BYTE_MASK; // the index register is write-only (QEMU reads 0xFF)
    if (offset !== DATA_PORT_OFFSET) return size === 1 ? BYTE_MASK : U16_MAX;
    return this.readRegister(this.index);
  }

  pioWrite(offset: number, _size: PioSize, value: number): void {
    if (offset === INDEX_PORT_OFFSET) {
      this.index = value & INDEX_MASK;
      this.nmiDisabled = (value & RTC_INDEX_NMI_DISABLE) !== 0; // KVM delivers no NMI from here: kept, read by nmiMasked
    } else if (offset === DATA_PORT_OFFSET) {
      this.writeRegister(this.index, value & BYTE_MASK);
    }
  }

  /** Whether the guest masked NMI through port 0x70's bit 7. */
  get nmiMasked(): boolean {
    return this.nmiDisabled;
  }

  /** IRQF: whether the chip asserts its interrupt output. */
  get irq(): boolean {
    return this.irqLevel;
  }

  /**
   * The chipset's routing of the chip's output to IRQ 8: HPET legacy replacement (LEG_RT_CNF)
   * gives IRQ 8 to HPET timer 1, and the RTC's interrupt stops reaching it until it is cleared.
   */
  gateIrq(gated: boolean): void {
    if (gated === this.irqGated) return;
    this.irqGated = gated;
    if (this.irqLevel) this.host.setIrq?.(!gated);
  }

  /** A register or CMOS byte as the guest reads it through 0x71 (reading C clears it). */
  readRegister(index: number): number {
    this.deadlineKnown = false;
    this.poll();
    const i = index & INDEX_MASK;
    if (TIME_REGISTERS.has(i)) return this.timeRegister(i);
    switch (i) {
      case RTC_REG_A:
        return (this.cmos[RTC_REG_A]! & ~REG_A_UIP) | (this.inUpdate() ? REG_A_UIP : 0);
      case RTC_REG_C: {
        const value = this.flags | (this.irqLevel ? REG_C_IRQF : 0);
        this.flags = 0; // reading C clears it, and lowers IRQ 8
        this.updateIrq();
        return value;
      }
      default:
        return this.cmos[i]!;
    }
  }

  /** A register or CMOS byte as the guest writes it through 0x71. */
  writeRegister(index: number, value: number): void {
    this.deadlineKnown = false;
    this.poll();
    const i = index & INDEX_MASK;
    const byte = value & BYTE_MASK;
    if (TIME_REGISTERS.has(i)) return this.setTimeRegister(i, byte);
    switch (i) {
      case RTC_REG_A: {
        const wasRunning = this.running();
        this.cmos[RTC_REG_A] = byte & ~REG_A_UIP; // UIP is read-only
        const nowNs = this.now();
        if (this.running() && !wasRunning) {
          this.dividerBaseNs = nowNs + DIVIDER_START_NS - NS_PER_SECOND;
          this.lastUpdate = this.updateIndex(nowNs);
        }
        this.lastPeriod = this.periodEdge(nowNs);
        return;
      }
      case RTC_REG_B:
        // Setting SET stops updates and clears UIE, as the data sheet says.
        this.cmos[RTC_REG_B] = byte & REG_B_SET ? byte & ~REG_B_UIE : byte;
        this.updateIrq();
        return;
      case RTC_REG_C:
      case RTC_REG_D:
        return; // read-only
      default:
        this.cmos[i] = byte;
    }
  }

  /** Sets a CMOS RAM byte (0x0E-0x7F) from the host, e.g. the shutdown status at S3 entry. */
  setCmos(index: number, value: number): void {
    if (index >= CMOS_DIAGNOSTIC && index < CMOS_SIZE && index !== RTC_CENTURY) this.cmos[index] = value & BYTE_MASK;
  }

  /** Brings the time registers, C's flags and IRQ 8 up to date with the clock (TimedDevice.poll). */
  poll(): void {
    this.catchUp();
    this.updateIrq();
  }

  /** The time registers and C's flags brought up to date; the line is left as it is. */
  private catchUp(): void {
    const nowNs = this.now();
    if (this.running()) {
      const update = this.updateIndex(nowNs);
      if (update > this.lastUpdate) {
        if (!(this.cmos[RTC_REG_B]! & REG_B_SET)) this.advance(Number(update - this.lastUpdate));
        this.lastUpdate = update;
      }
      const period = this.periodEdge(nowNs);
      if (period > this.lastPeriod) {
        if (this.periodNs() !== undefined) this.flags |= REG_C_PF;
        this.lastPeriod = period;
      }
    }
  }

  /**
   * When the next interrupt the guest enabled is due (monotonic ns, the injected clock), or
   * undefined if none is: the next update (UIE), the next update that matches the alarm (AIE),
   * the next periodic edge (PIE). None while IRQ 8 is already up: nothing can change the line
   * until the guest reads C.
   */
  nextDeadlineNs(): bigint | undefined {
    // Between the guest's accesses only time moves, and before the deadline the chip raises nothing
    // the guest enabled, so the answer stands until then.
    if (this.deadlineKnown && (this.deadline === undefined || this.deadline > this.now())) return this.deadline;
    this.deadline = this.computeDeadlineNs();
    this.deadlineKnown = true;
    return this.deadline;
  }

  private computeDeadlineNs(): bigint | undefined {
    this.poll();
    if (this.irqLevel || !this.running()) return undefined;
    const b = this.cmos[RTC_REG_B]!;
    const nowNs = this.now();
    const candidates: bigint[] = [];
    if (!(b & REG_B_SET)) {
      if (b & REG_B_UIE) candidates.push(this.updateAt(this.lastUpdate + 1n));
      if (b & REG_B_AIE) {
        const alarm = this.nextAlarmNs();
        if (alarm !== undefined) candidates.push(alarm);
      }
    }
    const period = this.periodNs();
    if (b & REG_B_PIE && period !== undefined) candidates.push(this.periodEdgeAt(this.periodEdge(nowNs) + 1n));
    return candidates.length ? candidates.reduce((a, c) => (c < a ? c : a)) : undefined;
  }

  /** When AF next sets (monotonic ns), whatever AIE says; undefined while the clock is stopped or the alarm never matches. */
  nextAlarmNs(): bigint | undefined {
    this.poll();
    if (this.cmos[RTC_REG_B]! & REG_B_SET || !this.running()) return undefined;
    const alarm = this.alarmTime();
    if (!alarm) return undefined;
    const dayBase = this.clockSeconds - mod(this.clockSeconds, SECONDS_PER_DAY);
    const secondOfDay = mod(this.clockSeconds, SECONDS_PER_DAY);
    const next = nextMatch(alarm, secondOfDay);
    if (next === undefined) return undefined;
    return this.updateAt(this.lastUpdate + BigInt(dayBase + next - this.clockSeconds));
  }

  /**
   * The state, with the clock caught up but no line moved: an interrupt that fell due since the
   * last poll is in `flags` and not yet on the line (`irqLine`), so the restored device raises it
   * after the machine's interrupt controllers are back, and none is lost between the two.
   */
  state(): RtcState {
    this.catchUp();
    const nowNs = this.now();
    const phase = this.running() ? (nowNs - this.dividerBaseNs) % NS_PER_SECOND : 0n;
    return {
      cmos: Array.from(this.cmos),
      index: this.index,
      nmiMasked: this.nmiDisabled,
      clockSeconds: this.clockSeconds,
      phaseNs: Number(phase < 0n ? phase + NS_PER_SECOND : phase),
      flags: this.flags,
      irqLine: this.irqLevel,
    };
  }

  /** Takes a saved state (RtcState): the clock goes on from the saved reading and phase. A UsageError if it is malformed. */
  restore(state: RtcState): void {
    const device = 'RTC';
    const fields = stateFields(device, state);
    const cmos = bytesField(device, fields, 'cmos', CMOS_SIZE);
    const index = intField(device, fields, 'index', 0, INDEX_MASK);
    const nmiMasked = boolField(device, fields, 'nmiMasked');
    // Years 0 to 9999, as the two BCD year registers can say.
    const clockSeconds = intField(device, fields, 'clockSeconds', MIN_CLOCK_SECONDS, MAX_CLOCK_SECONDS);
    const phaseNs = intField(device, fields, 'phaseNs', 0, Number(NS_PER_SECOND) - 1);
    const flags = maskField(device, fields, 'flags', REG_C_FLAGS); // only PF, AF and UF
    const irqLine = boolField(device, fields, 'irqLine');
    this.deadlineKnown = false;
    this.cmos.set(cmos);
    this.cmos[RTC_REG_A] = cmos[RTC_REG_A]! & ~REG_A_UIP;
    this.cmos[RTC_REG_C] = 0;
    this.cmos[RTC_REG_D] = REG_D_VRT;
    this.index = index;
    this.nmiDisabled = nmiMasked;
    this.clockSeconds = clockSeconds;
    this.flags = flags;
    const nowNs = this.now();
    this.dividerBaseNs = nowNs - BigInt(phaseNs);
    this.lastUpdate = 0n;
    this.lastPeriod = this.periodEdge(nowNs);
    // The line as the saved machine had it (its interrupt controllers' state agrees); the next poll raises what is pending.
    this.irqLevel = irqLine;
    if (!this.irqGated) this.host.setIrq?.(irqLine);
  }

  private running(): boolean {
    return (this.cmos[RTC_REG_A]! & REG_A_DV_MASK) === REG_A_DV_32768;
  }

  private updateIndex(nowNs: bigint): bigint {
    return floorDiv(nowNs - this.dividerBaseNs, NS_PER_SECOND);
  }

  private updateAt(update: bigint): bigint {
    return this.dividerBaseNs + update * NS_PER_SECOND;
  }

  /** UIP: the 244 µs before an update, while updates run. */
  private inUpdate(): boolean {
    if (this.cmos[RTC_REG_B]! & REG_B_SET || !this.running()) return false;
    const nowNs = this.now();
    return this.updateAt(this.updateIndex(nowNs) + 1n) - nowNs <= RTC_UIP_NS;
  }

  /** The periodic rate's period in 32.768 kHz cycles (RS 1-15), undefined when RS = 0. */
  private periodCycles(): bigint | undefined {
    const rs = this.cmos[RTC_REG_A]! & REG_A_RS_MASK;
    if (rs === 0) return undefined;
    return 1n << BigInt(rs <= RS_LOW_RATES ? rs + RS_LOW_SHIFT : rs - RS_HIGH_SHIFT);
  }

  /** The periodic interrupt's period in ns (a fraction for the fast rates: see periodEdge), undefined when off. */
  private periodNs(): bigint | undefined {
    const cycles = this.periodCycles();
    return cycles === undefined || !this.running() ? undefined : (cycles * NS_PER_SECOND) / TIME_BASE_HZ;
  }

  /** How many periodic edges the divider has made since its base (exact: counted in 32.768 kHz cycles). */
  private periodEdge(nowNs: bigint): bigint {
    const cycles = this.periodCycles();
    if (cycles === undefined) return 0n;
    return floorDiv((nowNs - this.dividerBaseNs) * TIME_BASE_HZ, NS_PER_SECOND * cycles);
  }

  /** The first ns at which edge `edge` has happened. */
  private periodEdgeAt(edge: bigint): bigint {
    const cycles = this.periodCycles() ?? 1n;
    const scaled = edge * cycles * NS_PER_SECOND;
    return this.dividerBaseNs + (scaled + TIME_BASE_HZ - 1n) / TIME_BASE_HZ;
  }

  /** `seconds` updates happened: the time moves on, UF sets, and AF if one of them matched the alarm. */
  private advance(seconds: number): void {
    const alarm = this.alarmTime();
    // Each second passed might match the alarm: look at the last day's worth at most.
    const from = Math.max(1, seconds - SECONDS_PER_DAY + 1);
    if (alarm) {
      for (let s = from; s <= seconds; s++) {
        if (matches(alarm, mod(this.clockSeconds + s, SECONDS_PER_DAY))) {
          this.flags |= REG_C_AF;
          break;
        }
      }
    }
    this.clockSeconds += seconds;
    this.flags |= REG_C_UF;
  }

  /** The alarm bytes decoded, or undefined when one of them holds a value no time has. */
  private alarmTime(): AlarmTime | undefined {
    const field = (reg: number, max: number, hours = false): number | undefined | null => {
      const byte = this.cmos[reg]!;
      if ((byte & ALARM_DONT_CARE) === ALARM_DONT_CARE) return undefined;
      const value = hours ? this.decodeHours(byte) : this.decode(byte);
      return value >= 0 && value < max ? value : null;
    };
    const hours = field(RTC_HOURS_ALARM, HOURS_PER_DAY, true);
    const minutes = field(RTC_MINUTES_ALARM, MINUTES_PER_HOUR);
    const seconds = field(RTC_SECONDS_ALARM, SECONDS_PER_MINUTE);
    if (hours === null || minutes === null || seconds === null) return undefined;
    return { hours, minutes, seconds };
  }

  private binary(): boolean {
    return (this.cmos[RTC_REG_B]! & REG_B_DM_BINARY) !== 0;
  }

  private encode(value: number): number {
    return this.binary() ? value & BYTE_MASK : toBcd(value);
  }

  /** A register value as a number: BCD digits above 9 give an impossible value (no time matches it). */
  private decode(value: number): number {
    if (this.binary()) return value;
    const high = value >> NIBBLE;
    const low = value & NIBBLE_MASK;
    return low > BCD_DIGIT_MAX || high > BCD_DIGIT_MAX ? -1 : fromBcd(value);
  }

  private encodeHours(hours: number): number {
    if (this.cmos[RTC_REG_B]! & REG_B_24H) return this.encode(hours);
    const pm = hours >= 12 ? RTC_HOUR_PM : 0;
    return this.encode(hours % 12 === 0 ? 12 : hours % 12) | pm;
  }

  private decodeHours(value: number): number {
    if (this.cmos[RTC_REG_B]! & REG_B_24H) return this.decode(value);
    const h = this.decode(value & ~RTC_HOUR_PM);
    if (h < 1 || h > 12) return -1;
    return (h % 12) + (value & RTC_HOUR_PM ? 12 : 0);
  }

  private timeRegister(index: number): number {
    const t = new Date(this.clockSeconds * MS_PER_SECOND);
    switch (index) {
      case RTC_SECONDS:
        return this.encode(t.getUTCSeconds());
      case RTC_MINUTES:
        return this.encode(t.getUTCMinutes());
      case RTC_HOURS:
        return this.encodeHours(t.getUTCHours());
      case RTC_DAY_OF_WEEK:
        return this.encode(t.getUTCDay() + 1); // 1 = Sunday
      case RTC_DAY_OF_MONTH:
        return this.encode(t.getUTCDate());
      case RTC_MONTH:
        return this.encode(t.getUTCMonth() + 1);
      case RTC_YEAR:
        return this.encode(t.getUTCFullYear() % 100);
      default:
        return this.encode(Math.floor(t.getUTCFullYear() / 100));
    }
  }

  /** The guest sets one field: the time moves so that the field reads back what was written (the divider's phase stays). */
  private setTimeRegister(index: number, value: number): void {
    if (index === RTC_DAY_OF_WEEK) return; // derived from the date
    const v = index === RTC_HOURS ? this.decodeHours(value) : this.decode(value);
    if (v < 0) return; // not a value the field can hold
    const t = new Date(this.clockSeconds * MS_PER_SECOND);
    let year = t.getUTCFullYear();
    let month = t.getUTCMonth();
    let day = t.getUTCDate();
    let hours = t.getUTCHours();
    let minutes = t.getUTCMinutes();
    let seconds = t.getUTCSeconds();
    switch (index) {
      case RTC_SECONDS:
        seconds = v;
        break;
      case RTC_MINUTES:
        minutes = v;
        break;
      case RTC_HOURS:
        hours = v;
        break;
      case RTC_DAY_OF_MONTH:
        day = v;
        break;
      case RTC_MONTH:
        month = v - 1;
        break;
      case RTC_YEAR:
        year = Math.floor(year / 100) * 100 + v;
        break;
      default:
        year = v * 100 + (year % 100);
    }
    const d = new Date(0);
    d.setUTCFullYear(year, month, day);
    d.setUTCHours(hours, minutes, seconds, 0);
    const ms = d.getTime();
    if (Number.isNaN(ms) || ms < MIN_CLOCK_SECONDS * MS_PER_SECOND || ms > MAX_CLOCK_SECONDS * MS_PER_SECOND) return;
    this.clockSeconds = ms / MS_PER_SECOND;
  }

  /** IRQF: a flag set whose interrupt is enabled. */
  private pendingLevel(): boolean {
    const b = this.cmos[RTC_REG_B]!;
    const enabled = (b & REG_B_PIE ? REG_C_PF : 0) | (b & REG_B_AIE ? REG_C_AF : 0) | (b & REG_B_UIE ? REG_C_UF : 0);
    return (this.flags & enabled) !== 0;
  }

  private updateIrq(): void {
    const level = this.pendingLevel();
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      if (!this.irqGated) this.host.setIrq?.(level);
    }
  }

  /** The configuration bytes a PC BIOS leaves in CMOS (QEMU's pc_cmos_init). */
  private writeConfiguration(config: RtcConfig): void {
    const ram = this.cmos;
    const memory = config.memorySize ?? 0;
    const [a, b] = config.floppies ?? [CMOS_FLOPPY_NONE, CMOS_FLOPPY_NONE];
    ram[CMOS_FLOPPY_TYPES] = ((a & FLOPPY_TYPE_MASK) << NIBBLE) | (b & FLOPPY_TYPE_MASK);
    const disks = Math.min(config.hardDisks ?? 0, MAX_HARD_DISKS);
    ram[CMOS_DISK_TYPES] = (disks >= 1 ? CMOS_DISK_EXTENDED << NIBBLE : 0) | (disks >= 2 ? CMOS_DISK_EXTENDED : 0);
    const floppyCount = (a ? 1 : 0) + (b ? 1 : 0);
    ram[CMOS_EQUIPMENT] = CMOS_EQUIP_X87 | (floppyCount ? CMOS_EQUIP_FLOPPY | ((floppyCount - 1) << CMOS_EQUIP_FLOPPY_COUNT_SHIFT) : 0);
    const base = Math.min(BASE_MEMORY_KIB, Math.floor(memory / KiB));
    ram[CMOS_BASE_MEMORY_LOW] = base & BYTE_MASK;
    ram[CMOS_BASE_MEMORY_HIGH] = base >> 8;
    const below4G = Math.min(memory, 4 * GiB);
    const extKiB = Math.min(U16_MAX, Math.floor(Math.max(0, below4G - MiB) / KiB));
    ram[CMOS_EXTMEM_LOW] = ram[CMOS_EXTMEM2_LOW] = extKiB & BYTE_MASK;
    ram[CMOS_EXTMEM_HIGH] = ram[CMOS_EXTMEM2_HIGH] = extKiB >> 8;
    const above16M = Math.min(U16_MAX, Math.floor(Math.max(0, below4G - 16 * MiB) / UNITS_64K));
    ram[CMOS_MEM_ABOVE_16M_LOW] = above16M & BYTE_MASK;
    ram[CMOS_MEM_ABOVE_16M_HIGH] = above16M >> 8;
    const above4G = Math.floor(Math.max(0, memory - 4 * GiB) / UNITS_64K);
    for (let i = 0; i < CMOS_MEM_ABOVE_4G_BYTES; i++) ram[CMOS_MEM_ABOVE_4G + i] = Math.floor(above4G / 256 ** i) & BYTE_MASK;
    ram[CMOS_CPU_COUNT] = Math.max(0, (config.cpus ?? 1) - 1);
  }
}

/** The clock's range: years 0 to 9999 (what the century and year registers can hold). */
const MIN_CLOCK_SECONDS = -62_167_219_200; // 0000-01-01T00:00:00Z
const MAX_CLOCK_SECONDS = 253_402_300_799; // 9999-12-31T23:59:59Z

export const toBcd = (value: number): number => ((Math.floor(value / 10) % 10) << NIBBLE) | (value % 10);
export const fromBcd = (value: number): number => (value >> NIBBLE) * 10 + (value & NIBBLE_MASK);

function mod(a: number, n: number): number {
  return ((a % n) + n) % n;
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

function matches(alarm: AlarmTime, secondOfDay: number): boolean {
  const h = Math.floor(secondOfDay / SECONDS_PER_HOUR);
  const m = Math.floor((secondOfDay % SECONDS_PER_HOUR) / SECONDS_PER_MINUTE);
  const s = secondOfDay % SECONDS_PER_MINUTE;
  return (alarm.hours ?? h) === h && (alarm.minutes ?? m) === m && (alarm.seconds ?? s) === s;
}

/**
 * The first second of day after `after` (in [after + 1, after + 86400], counted from `after`'s
 * day) whose time matches the alarm: walks hours, then minutes, then seconds, skipping whole
 * hours and minutes that cannot match.
 */
function nextMatch(alarm: AlarmTime, after: number): number | undefined {
  for (let day = 0; day <= 1; day++) {
    for (let h = 0; h < HOURS_PER_DAY; h++) {
      if (alarm.hours !== undefined && alarm.hours !== h) continue;
      const hourStart = day * SECONDS_PER_DAY + h * SECONDS_PER_HOUR;
      if (hourStart + SECONDS_PER_HOUR - 1 <= after) continue;
      for (let m = 0; m < MINUTES_PER_HOUR; m++) {
        if (alarm.minutes !== undefined && alarm.minutes !== m) continue;
        const minuteStart = hourStart + m * SECONDS_PER_MINUTE;
        if (minuteStart + SECONDS_PER_MINUTE - 1 <= after) continue;
        const first = Math.max(minuteStart, after + 1);
        const s = alarm.seconds === undefined ? first - minuteStart : alarm.seconds;
        if (minuteStart + s >= first) return minuteStart + s;
      }
    }
  }
  return undefined;
}
