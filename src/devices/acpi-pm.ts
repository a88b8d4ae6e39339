/**
 * ACPI fixed hardware (ACPI 6.5 §4.8) in a PIIX4-style power-management I/O block, where QEMU's
 * PC puts it (PM base 0x600, 64 ports), as the FADT (src/arch/x86/acpi.ts) describes it:
 *
 *   +0x00 PM1a_STS (16)  TMR_STS, BM_STS, GBL_STS, PWRBTN_STS, SLPBTN_STS, RTC_STS, WAK_STS: write 1 to clear
 *   +0x02 PM1a_EN  (16)  TMR_EN, GBL_EN, PWRBTN_EN, SLPBTN_EN, RTC_EN
 *   +0x04 PM1a_CNT (16)  SCI_EN, BM_RLD, GBL_RLS, SLP_TYPx (bits 10-12), SLP_EN (bit 13, write-only)
 *   +0x08 PM_TMR   (32)  the power-management timer: 3.579545 MHz, 24 bits (32 with TMR_VAL_EXT)
 *   +0x0C GPE0_STS (16), +0x0E GPE0_EN (16)
 *
 * Any width of access works on any register byte (as on the chip). The timer runs from the host's
 * monotonic clock (injected, ns): count = elapsed ns × 3579545 / 10^9, exact at every read.
 * TMR_STS sets when the counter's top bit toggles; an enabled status raises the SCI (IRQ 9, a
 * level line) while SCI_EN is set. SCI_EN starts set: the FADT gives no SMI_CMD port, so the
 * machine is always in ACPI mode (ACPI §4.8.2.5: no legacy mode to leave).
 *
 * SLP_EN with SLP_TYPx = the DSDT's \_S5 value (0) powers the machine off, with \_S3 (1) it
 * suspends to RAM: the host decides what that means (`sleep`). `wake()` is the way back: it sets
 * WAK_STS (and the reason's status bit), as the chipset does on resume.
 */
import type { PioDevice, PioSize, Snapshottable } from './device.js';
import { boolField, intField, maskField, refuseState, stateFields } from './state-check.js';
import type { TimedDevice } from './timed-device.js';

export const PM_IO_SIZE = 0x40;
export const PM1_STS = 0x00;
export const PM1_EN = 0x02;
export const PM1_CNT = 0x04;
export const PM_TMR = 0x08;
export const GPE0_STS = 0x0c;
export const GPE0_EN = 0x0e;
/** FADT lengths of each block. */
export const PM1_EVT_LEN = 4;
export const PM1_CNT_LEN = 2;
export const PM_TMR_LEN = 4;
export const GPE0_BLK_LEN = 4;

// PM1 status / enable bits (the enable bits sit at the same positions as their status).
export const PM1_TMR = 1 << 0;
export const PM1_BM_STS = 1 << 4;
export const PM1_GBL = 1 << 5;
export const PM1_PWRBTN = 1 << 8;
export const PM1_SLPBTN = 1 << 9;
export const PM1_RTC = 1 << 10;
export const PM1_WAK_STS = 1 << 15;
const PM1_STS_BITS = PM1_TMR | PM1_BM_STS | PM1_GBL | PM1_PWRBTN | PM1_SLPBTN | PM1_RTC | PM1_WAK_STS;
const PM1_EN_BITS = PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_SLPBTN | PM1_RTC;
/** Status bits that raise the SCI when enabled (WAK_STS and BM_STS never do). */
const PM1_SCI_BITS = PM1_EN_BITS;

// PM1 control bits.
export const PM1_CNT_SCI_EN = 1 << 0;
export const PM1_CNT_BM_RLD = 1 << 1;
export const PM1_CNT_GBL_RLS = 1 << 2;
export const PM1_CNT_SLP_TYP_SHIFT = 10;
export const PM1_CNT_SLP_TYP_MASK = 0x7 << PM1_CNT_SLP_TYP_SHIFT;
export const PM1_CNT_SLP_EN = 1 << 13;
const PM1_CNT_KEPT = PM1_CNT_SCI_EN | PM1_CNT_BM_RLD | PM1_CNT_SLP_TYP_MASK;

/** SLP_TYPx values, as the DSDT's \_S3 and \_S5 packages give them (QEMU's PIIX4 values). */
export const SLP_TYP_S5 = 0;
export const SLP_TYP_S3 = 1;

/** The ACPI PM timer's frequency (ACPI §4.8.3.3): 3.579545 MHz, the NTSC colour burst × 1. */
export const PM_TIMER_HZ = 3_579_545;
const NS_PER_SECOND = 1_000_000_000n;

const BYTE_BITS = 8;
const BYTE_MASK = 0xff;
const U16_MASK = 0xffff;

export type SleepState = 'S3' | 'S5';
export type WakeReason = 'rtc' | 'power-button';

export interface AcpiPmHost {
  /** The SCI line (IRQ 9): level-triggered, high while an enabled event is pending. */
  setSci(level: boolean): void;
  /** The guest wrote SLP_EN: power off (S5) or suspend to RAM (S3). */
  sleep(state: SleepState): void;
  /** The host's monotonic clock in nanoseconds (default process.hrtime.bigint). */
  nowNs?(): bigint;
}

export interface AcpiPmOptions {
  /** A 32-bit PM timer (the FADT then sets TMR_VAL_EXT); default 24-bit, as QEMU's PIIX4. */
  timer32?: boolean;
}

/**
 * What restore() takes. The PM timer is saved as its count at the save (not as host time), so a
 * restored timer counts on from there, and its next overflow comes after the same ticks.
 */
export interface AcpiPmState {
  pm1Status: number;
  pm1Enable: number;
  pm1Control: number;
  gpeStatus: number;
  gpeEnable: number;
  /** The PM timer's count, in its 24 or 32 bits. */
  timer: number;
  timer32: boolean;
  /** Whether the SCI was up. */
  sci: boolean;
}

export class AcpiPm implements PioDevice, Snapshottable<AcpiPmState>, TimedDevice {
  private readonly now: () => bigint;
  /** Host ns at which the timer counted 0. */
  private startNs: bigint;
  private readonly timerBits: number;
  private pm1Status = 0;
  private pm1Enable = 0;
  private pm1Control = PM1_CNT_SCI_EN;
  private gpeStatus = 0;
  private gpeEnable = 0;
  /** How many times the timer's top bit had toggled when TMR_STS was last brought up to date. */
  private timerHalves = 0n;
  private sciLevel = false;

  constructor(
    private readonly host: AcpiPmHost,
    options: AcpiPmOptions = {},
  ) {
    this.now = host.nowNs ?? (() => process.hrtime.bigint());
    this.startNs = this.now();
    this.timerBits = options.timer32 ? 32 : 24;
  }

  get timer32(): boolean {
    return this.timerBits === 32;
  }

  /** The PM timer's count now (24 or 32 bits). */
  timer(): number {
    return Number(this.ticks() & ((1n << BigInt(this.timerBits)) - 1n));
  }

  pioRead(offset: number, size: PioSize): number {
    this.poll();
    // One sample of the timer per access: an `inl` of PM_TMR reads one count, as on PIIX4, not
    // four bytes from four moments (a carry between them would make the count jump back or ahead).
    const timer = this.timer();
    let value = 0;
    for (let i = 0; i < size; i++) value |= this.readByte(offset + i, timer) << (i * BYTE_BITS);
    return value >>> 0;
  }

  pioWrite(offset: number, size: PioSize, value: number): void {
    this.poll();
    // Group the bytes by 16-bit register, so a register sees one write with a byte mask.
    for (let i = 0; i < size;) {
      const at = offset + i;
      const reg = at & ~1;
      let bits = 0;
      let mask = 0;
      for (; i < size && ((offset + i) & ~1) === reg; i++) {
        const shift = ((offset + i) & 1) * BYTE_BITS;
        bits |= ((value >>> (i * BYTE_BITS)) & BYTE_MASK) << shift;
        mask |= BYTE_MASK << shift;
      }
      this.writeRegister(reg, bits, mask);
    }
    this.updateSci();
  }

  /**
   * Brings TMR_STS up to date with the clock and the SCI with it: the board calls this at
   * nextDeadlineNs() so the timer's overflow interrupt arrives on time.
   */
  poll(): void {
    this.catchUpTimer();
    this.updateSci();
  }

  /** TMR_STS set if the timer's top bit toggled since the last look. */
  private catchUpTimer(): void {
    const halves = this.ticks() >> BigInt(this.timerBits - 1);
    if (halves !== this.timerHalves) {
      this.timerHalves = halves;
      this.pm1Status |= PM1_TMR;
    }
  }

  /** When the timer's top bit next toggles (host ns), if its interrupt is enabled. */
  nextDeadlineNs(): bigint | undefined {
    if (!(this.pm1Enable & PM1_TMR) || !(this.pm1Control & PM1_CNT_SCI_EN)) return undefined;
    const half = 1n << BigInt(this.timerBits - 1);
    const nextTick = (this.ticks() / half + 1n) * half;
    // The first ns at which ticks() reaches nextTick.
    return this.startNs + (nextTick * NS_PER_SECOND + BigInt(PM_TIMER_HZ) - 1n) / BigInt(PM_TIMER_HZ);
  }

  /** The way out of S3 (or a button press): WAK_STS, and the reason's status bit, as the chipset sets them. */
  wake(reason: WakeReason): void {
    this.pm1Status |= PM1_WAK_STS | (reason === 'rtc' ? PM1_RTC : PM1_PWRBTN);
    this.updateSci();
  }

  /** RTC alarm and power button may wake the machine only if their enable bits say so (RTC_EN). */
  wakeEnabled(reason: WakeReason): boolean {
    return reason === 'power-button' || (this.pm1Enable & PM1_RTC) !== 0;
  }

  /** A level on a general-purpose event input (GPE0 bit `bit`, 0-15): status set until cleared. */
  raiseGpe(bit: number): void {
    this.gpeStatus |= (1 << bit) & U16_MASK;
    this.updateSci();
  }

  /** Power-on state of the registers (a hard reset); the timer keeps running, as on the chip. */
  reset(): void {
    this.pm1Status = 0;
    this.pm1Enable = 0;
    this.pm1Control = PM1_CNT_SCI_EN;
    this.gpeStatus = 0;
    this.gpeEnable = 0;
    this.updateSci();
  }

  /**
   * The registers with TMR_STS caught up but the SCI not moved (`sci` is the line as the machine
   * has it): the restored device raises what is pending at its first poll, after the machine's
   * interrupt controllers are back.
   */
  state(): AcpiPmState {
    this.catchUpTimer();
    return {
      pm1Status: this.pm1Status,
      pm1Enable: this.pm1Enable,
      pm1Control: this.pm1Control,
      gpeStatus: this.gpeStatus,
      gpeEnable: this.gpeEnable,
      timer: this.timer(),
      timer32: this.timer32,
      sci: this.sciLevel,
    };
  }

  /** Takes a saved state (AcpiPmState): the timer counts on from the saved count. A UsageError if it is malformed. */
  restore(state: AcpiPmState): void {
    const device = 'ACPI PM';
    const fields = stateFields(device, state);
    if (boolField(device, fields, 'timer32') !== this.timer32) {
      refuseState(device, `its PM timer has ${this.timer32 ? 24 : 32} bits, this machine's ${this.timer32 ? 32 : 24}`);
    }
    const pm1Status = maskField(device, fields, 'pm1Status', PM1_STS_BITS);
    const pm1Enable = maskField(device, fields, 'pm1Enable', PM1_EN_BITS);
    const pm1Control = maskField(device, fields, 'pm1Control', PM1_CNT_KEPT);
    const gpeStatus = maskField(device, fields, 'gpeStatus', U16_MASK);
    const gpeEnable = maskField(device, fields, 'gpeEnable', U16_MASK);
    const timer = intField(device, fields, 'timer', 0, 2 ** this.timerBits - 1);
    const sci = boolField(device, fields, 'sci');
    this.pm1Status = pm1Status;
    this.pm1Enable = pm1Enable;
    this.pm1Control = pm1Control;
    this.gpeStatus = gpeStatus;
    this.gpeEnable = gpeEnable;
    // The first ns at which ticks() reads `timer`, counted back from now.
    this.startNs = this.now() - (BigInt(timer) * NS_PER_SECOND + BigInt(PM_TIMER_HZ) - 1n) / BigInt(PM_TIMER_HZ);
    this.timerHalves = this.ticks() >> BigInt(this.timerBits - 1);
    this.sciLevel = sci; // the line as the saved machine had it; the next poll raises what is pending
    this.host.setSci(sci);
  }

  private ticks(): bigint {
    return ((this.now() - this.startNs) * BigInt(PM_TIMER_HZ)) / NS_PER_SECOND;
  }

  private readByte(offset: number, timer: number): number {
    const reg = offset & ~1;
    const shift = (offset & 1) * BYTE_BITS;
    if (offset >= PM_TMR && offset < PM_TMR + PM_TMR_LEN) return (timer >>> ((offset - PM_TMR) * BYTE_BITS)) & BYTE_MASK;
    return (this.readRegister(reg) >>> shift) & BYTE_MASK;
  }

  private readRegister(reg: number): number {
    switch (reg) {
      case PM1_STS:
        return this.pm1Status;
      case PM1_EN:
        return this.pm1Enable;
      case PM1_CNT:
        return this.pm1Control; // SLP_EN is write-only: it reads 0
      case GPE0_STS:
        return this.gpeStatus;
      case GPE0_EN:
        return this.gpeEnable;
      default:
        return 0; // reserved (and PM1_CNT's upper bytes): 0, as PIIX4's unused PM registers
    }
  }

  private writeRegister(reg: number, bits: number, mask: number): void {
    switch (reg) {
      case PM1_STS:
        this.pm1Status &= ~(bits & mask & PM1_STS_BITS); // write 1 to clear
        return;
      case PM1_EN:
        this.pm1Enable = (this.pm1Enable & ~mask) | (bits & mask & PM1_EN_BITS);
        return;
      case PM1_CNT: {
        // GBL_RLS raises GBL_STS for the BIOS; there is none, so it only sets the status (as PIIX4).
        if (bits & mask & PM1_CNT_GBL_RLS) this.pm1Status |= PM1_GBL;
        this.pm1Control = (this.pm1Control & ~mask) | (bits & mask & PM1_CNT_KEPT);
        if (bits & mask & PM1_CNT_SLP_EN) {
          const type = (this.pm1Control & PM1_CNT_SLP_TYP_MASK) >> PM1_CNT_SLP_TYP_SHIFT;
          if (type === SLP_TYP_S5) this.host.sleep('S5');
          else if (type === SLP_TYP_S3) this.host.sleep('S3');
          // Other types name no state in the DSDT: ignored, as QEMU does.
        }
        return;
      }
      case GPE0_STS:
        this.gpeStatus &= ~(bits & mask);
        return;
      case GPE0_EN:
        this.gpeEnable = (this.gpeEnable & ~mask) | (bits & mask);
        return;
      default:
        return; // the timer and reserved registers are read-only
    }
  }

  private sciPending(): boolean {
    const pending = (this.pm1Status & this.pm1Enable & PM1_SCI_BITS) !== 0 || (this.gpeStatus & this.gpeEnable) !== 0;
    return pending && (this.pm1Control & PM1_CNT_SCI_EN) !== 0;
  }

  private updateSci(): void {
    const level = this.sciPending();
    if (level !== this.sciLevel) {
      this.sciLevel = level;
      this.host.setSci(level);
    }
  }
}
