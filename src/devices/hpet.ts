/**
 * The High Precision Event Timer (IA-PC HPET Specification 1.0a) at 0xFED00000, as QEMU's PC has
 * it: a 64-bit main counter running at 100 MHz (a 10 ns period, COUNTER_CLK_PERIOD = 10^7 fs)
 * while ENABLE_CNF is set, three comparators (timer 0 periodic-capable, timers 1 and 2 one-shot;
 * each 64-bit or, with TN_32MODE_CNF, 32-bit, where a one-shot also interrupts at the counter's
 * 32-bit wrap as the spec says), legacy replacement routing (LEG_RT_CNF: timer 0 → IRQ0 / I/O
 * APIC pin 2, timer 1 → IRQ8) and I/O APIC routing otherwise, level or edge interrupts with
 * GINTR_STA (write 1 to clear).
 *
 * The counter is derived from the host's monotonic clock (injected, nanoseconds): while enabled,
 * main counter = value at enable + (now - enable time) / 10 ns, so every read is exact and costs
 * no timer. Comparator matches are found when the device is touched or `poll()`ed: the board
 * calls `poll()` at `nextDeadlineNs()` (or sooner) to deliver interrupts on time. Interrupts go
 * through the injected IRQ line setter, by I/O APIC input pin (the board maps pins to GSIs).
 */
import type { MmioDevice, Snapshottable } from './device.js';
import { arrayField, bigField, refuseState, stateFields } from './state-check.js';
import type { TimedDevice } from './timed-device.js';

export const HPET_MMIO_SIZE = 0x400;

// Register offsets (spec 2.3.1).
export const HPET_GCAP_ID = 0x000;
export const HPET_GEN_CONF = 0x010;
export const HPET_GINTR_STA = 0x020;
export const HPET_MAIN_COUNTER = 0x0f0;
export const HPET_TIMER_BASE = 0x100;
export const HPET_TIMER_STRIDE = 0x20;
export const HPET_TN_CONF_CAP = 0x00;
export const HPET_TN_COMPARATOR = 0x08;
export const HPET_TN_FSB_ROUTE = 0x10;

// General capabilities (GCAP_ID).
export const HPET_REV_ID = 0x01;
export const HPET_NUM_TIM_CAP_SHIFT = 8;
export const HPET_COUNT_SIZE_CAP = 1n << 13n;
export const HPET_LEG_RT_CAP = 1n << 15n;
export const HPET_VENDOR_ID_SHIFT = 16;
/** Intel's vendor ID, as QEMU reports. */
export const HPET_VENDOR_ID = 0x8086;
export const HPET_COUNTER_CLK_PERIOD_SHIFT = 32n;
/** 10 ns, in femtoseconds: a 100 MHz counter, QEMU's HPET_CLK_PERIOD. */
export const HPET_CLK_PERIOD_FS = 10_000_000;
export const HPET_CLK_PERIOD_NS = 10;
export const HPET_TIMERS = 3;

// General configuration.
export const HPET_CFG_ENABLE = 1n << 0n;
export const HPET_CFG_LEGACY = 1n << 1n;
const HPET_CFG_WRITABLE = HPET_CFG_ENABLE | HPET_CFG_LEGACY;

// Timer N configuration and capabilities.
export const HPET_TN_INT_TYPE_LEVEL = 1n << 1n;
export const HPET_TN_INT_ENB = 1n << 2n;
export const HPET_TN_TYPE_PERIODIC = 1n << 3n;
export const HPET_TN_PER_INT_CAP = 1n << 4n;
export const HPET_TN_SIZE_CAP = 1n << 5n;
export const HPET_TN_VAL_SET = 1n << 6n;
export const HPET_TN_32MODE = 1n << 8n;
export const HPET_TN_INT_ROUTE_SHIFT = 9n;
export const HPET_TN_INT_ROUTE_MASK = 0x1fn << HPET_TN_INT_ROUTE_SHIFT;
export const HPET_TN_FSB_EN = 1n << 14n;
export const HPET_TN_FSB_INT_DEL_CAP = 1n << 15n;
export const HPET_TN_INT_ROUTE_CAP_SHIFT = 32n;
const HPET_TN_WRITABLE =
  HPET_TN_INT_TYPE_LEVEL | HPET_TN_INT_ENB | HPET_TN_TYPE_PERIODIC | HPET_TN_VAL_SET | HPET_TN_32MODE | HPET_TN_INT_ROUTE_MASK;
/**
 * I/O APIC pins a timer may be routed to: 2, 8 and 16-23 (QEMU's PC from 2.0 on: "IRQ16~23,
 * IRQ8 and IRQ2"), none of which an ISA device uses.
 */
export const HPET_INT_ROUTE_CAP = 0x00ff0104;
/** Legacy replacement: timer 0 to IRQ0 (I/O APIC pin 2, the ACPI override), timer 1 to IRQ8. */
export const HPET_LEGACY_TIMER0_PIN = 2;
export const HPET_LEGACY_TIMER1_PIN = 8;

const U32_MASK = 0xffffffffn;
const U64_MASK = (1n << 64n) - 1n;
const U32_SPAN = 1n << 32n;
const HALF_32 = 1n << 31n;
const HALF_64 = 1n << 63n;

export interface HpetHost {
  /** Drives I/O APIC input `pin` (legacy mode: 2 for IRQ0, 8 for IRQ8). */
  setIrq(pin: number, level: boolean): void;
  /** The host's monotonic clock in nanoseconds (default process.hrtime.bigint). */
  nowNs?(): bigint;
  /** Legacy replacement switched on or off: a PC stops the 8254's IRQ0 while it is on. */
  legacyChanged?(on: boolean): void;
}

/**
 * What restore() takes: registers as decimal strings (64-bit values). The main counter is saved
 * as its value at the save, not as host time: a restored HPET counts on from there, and armed
 * comparators fire after the same number of ticks as they would have.
 */
export interface HpetState {
  config: string;
  isr: string;
  counter: string;
  timers: HpetTimerState[];
}

export interface HpetTimerState {
  config: string;
  comparator: string;
  period: string;
  /** The main counter value of the next match, or null: none pending. */
  nextFire: string | null;
}

interface HpetTimer {
  config: bigint;
  /** The comparator (in 32-bit mode only its low half is kept). */
  comparator: bigint;
  /** What a periodic timer adds to the comparator on each match. */
  period: bigint;
  /** The main counter value (absolute, 64-bit) of the next match, or NO_MATCH. */
  nextFire: bigint;
  /** Whether this timer's output line is asserted (level mode: until GINTR_STA is cleared). */
  asserted: boolean;
  /** The pin it drives while asserted, so a reroute can lower the old one. */
  pin: number;
}

/** No match pending (a one-shot 64-bit timer that has fired). */
const NO_MATCH = -1n;
const BYTE = 8n;

export class Hpet implements MmioDevice, Snapshottable<HpetState>, TimedDevice {
  private readonly now: () => bigint;
  private config = 0n;
  private isr = 0n;
  /** The main counter while halted; its value when last enabled while running. */
  private counterBase = 0n;
  /** Host time (ns) at which counterBase was taken. */
  private baseNs = 0n;
  private readonly timers: HpetTimer[];

  constructor(private readonly host: HpetHost) {
    this.now = host.nowNs ?? (() => process.hrtime.bigint());
    this.timers = Array.from({ length: HPET_TIMERS }, (_, n) => ({
      config: timerCapabilities(n),
      comparator: U64_MASK,
      period: 0n,
      nextFire: NO_MATCH,
      asserted: false,
      pin: 0,
    }));
  }

  /** GCAP_ID's low 32 bits: the ACPI HPET table's Event Timer Block ID. */
  static get eventTimerBlockId(): number {
    return Number(Hpet.capabilities & U32_MASK);
  }

  /** GCAP_ID: 10 ns period, Intel, legacy-capable, 64-bit counter, three timers, revision 1. */
  static get capabilities(): bigint {
    return (
      (BigInt(HPET_CLK_PERIOD_FS) << HPET_COUNTER_CLK_PERIOD_SHIFT) |
      (BigInt(HPET_VENDOR_ID) << BigInt(HPET_VENDOR_ID_SHIFT)) |
      HPET_LEG_RT_CAP |
      HPET_COUNT_SIZE_CAP |
      (BigInt(HPET_TIMERS - 1) << BigInt(HPET_NUM_TIM_CAP_SHIFT)) |
      BigInt(HPET_REV_ID)
    );
  }

  get enabled(): boolean {
    return (this.config & HPET_CFG_ENABLE) !== 0n;
  }

  get legacy(): boolean {
    return (this.config & HPET_CFG_LEGACY) !== 0n;
  }

  /** The main counter now. */
  counter(): bigint {
    if (!this.enabled) return this.counterBase;
    return (this.counterBase + (this.now() - this.baseNs) / BigInt(HPET_CLK_PERIOD_NS)) & U64_MASK;
  }

  mmioRead(offset: number, data: Uint8Array): void {
    this.poll();
    // Registers are 64 bits wide; 32-bit halves (and narrower accesses) read the bytes they cover.
    const value = this.readRegister(offset & ~7);
    const shift = BigInt(offset & 7) * BYTE;
    for (let i = 0; i < data.length; i++) data[i] = Number((value >> (shift + BigInt(i) * BYTE)) & 0xffn);
  }

  mmioWrite(offset: number, data: Uint8Array): void {
    this.poll();
    const shift = BigInt(offset & 7) * BYTE;
    let value = 0n;
    let mask = 0n;
    for (let i = 0; i < data.length && (offset & 7) + i < 8; i++) {
      value |= BigInt(data[i]!) << (shift + BigInt(i) * BYTE);
      mask |= 0xffn << (shift + BigInt(i) * BYTE);
    }
    this.writeRegister(offset & ~7, value, mask);
    this.poll();
  }

  /**
   * Delivers every comparator match due by now. The board calls it at nextDeadlineNs(); a later
   * call delivers late matches then (a periodic timer skips the periods it missed, as QEMU's does).
   */
  poll(): void {
    if (!this.enabled) return;
    const now = this.counter();
    this.timers.forEach((timer, n) => {
      if (timer.nextFire !== NO_MATCH && reached(now, timer.nextFire)) this.fire(n, timer, now);
    });
  }

  /** Host time (ns, the injected clock) of the next interrupting match; undefined if none is armed. */
  nextDeadlineNs(): bigint | undefined {
    if (!this.enabled) return undefined;
    const now = this.counter();
    const nowNs = this.now();
    let best: bigint | undefined;
    for (const timer of this.timers) {
      if (timer.nextFire === NO_MATCH || !(timer.config & HPET_TN_INT_ENB)) continue;
      const at = reached(now, timer.nextFire) ? nowNs : nowNs + (timer.nextFire - now) * BigInt(HPET_CLK_PERIOD_NS);
      if (best === undefined || at < best) best = at;
    }
    return best;
  }

  /**
   * The registers as they are: a match that fell due since the last poll stays pending (in
   * nextFire), so the restored HPET delivers it after the machine's interrupt controllers are
   * back, and none is lost between the two.
   */
  state(): HpetState {
    return {
      config: this.config.toString(),
      isr: this.isr.toString(),
      counter: this.counter().toString(),
      timers: this.timers.map((t) => ({
        config: t.config.toString(),
        comparator: t.comparator.toString(),
        period: t.period.toString(),
        nextFire: t.nextFire === NO_MATCH ? null : t.nextFire.toString(),
      })),
    };
  }

  /** Takes a saved state (HpetState); the counter goes on from the saved value. A UsageError if it is malformed. */
  restore(state: HpetState): void {
    const device = 'HPET';
    const fields = stateFields(device, state);
    const config = bigField(device, fields, 'config', 64n);
    if (config & ~HPET_CFG_WRITABLE) refuseState(device, `config 0x${config.toString(16)} has bits no HPET sets`);
    const isr = bigField(device, fields, 'isr', BigInt(HPET_TIMERS));
    const counter = bigField(device, fields, 'counter', 64n);
    const timers = arrayField(device, fields, 'timers', HPET_TIMERS, (v, n) => {
      const t = stateFields(device, v);
      const tconfig = bigField(device, t, 'config', 64n);
      // The read-only half (capabilities) must be this HPET's: the snapshot is of the same machine.
      if ((tconfig & ~HPET_TN_WRITABLE) !== timerCapabilities(n) || (!(tconfig & HPET_TN_PER_INT_CAP) && tconfig & HPET_TN_TYPE_PERIODIC)) {
        refuseState(device, `timer ${n}'s configuration 0x${tconfig.toString(16)} is not one this HPET's timer can have`);
      }
      const width = tconfig & HPET_TN_32MODE ? 32n : 64n;
      return {
        config: tconfig,
        comparator: bigField(device, t, 'comparator', width),
        period: bigField(device, t, 'period', width),
        nextFire: t.nextFire === null ? NO_MATCH : bigField(device, t, 'nextFire', 64n),
      };
    });
    const wasLegacy = this.legacy;
    // Lower what this device drives now, then take the saved registers and drive their lines.
    this.isr = 0n;
    this.timers.forEach((timer, n) => this.updateLevel(n, timer));
    this.config = config;
    this.isr = isr;
    this.counterBase = counter;
    this.baseNs = this.now();
    timers.forEach((saved, n) => {
      const timer = this.timers[n]!;
      Object.assign(timer, saved);
      this.updateLevel(n, timer);
    });
    if (wasLegacy !== this.legacy) this.host.legacyChanged?.(this.legacy);
  }

  private is32(timer: HpetTimer): boolean {
    return (timer.config & HPET_TN_32MODE) !== 0n;
  }

  private fire(n: number, timer: HpetTimer, now: bigint): void {
    if (timer.config & HPET_TN_TYPE_PERIODIC && timer.period !== 0n) {
      // The next match is the first comparator + k·period past now: missed periods are skipped.
      const steps = (now - timer.nextFire) / timer.period + 1n;
      timer.nextFire = (timer.nextFire + steps * timer.period) & U64_MASK;
      timer.comparator = (timer.comparator + steps * timer.period) & (this.is32(timer) ? U32_MASK : U64_MASK);
    } else if (this.is32(timer)) {
      // A 32-bit one-shot matches again each time the counter's low half comes round, and interrupts at the wrap too.
      timer.nextFire = (now + min(matchAhead32(timer.comparator, now + 1n) + 1n, wrapAhead32(now))) & U64_MASK;
    } else {
      timer.nextFire = NO_MATCH; // a 64-bit one-shot fires once
    }
    if (!(timer.config & HPET_TN_INT_ENB)) return;
    if (timer.config & HPET_TN_INT_TYPE_LEVEL) {
      this.isr |= 1n << BigInt(n);
      this.updateLevel(n, timer);
    } else {
      const pin = this.pinOf(n, timer);
      this.host.setIrq(pin, true); // an edge: a pulse on the line
      this.host.setIrq(pin, false);
    }
  }

  /** The I/O APIC pin timer n drives: legacy routing for timers 0 and 1 when LEG_RT_CNF is set. */
  private pinOf(n: number, timer: HpetTimer): number {
    if (this.legacy && n === 0) return HPET_LEGACY_TIMER0_PIN;
    if (this.legacy && n === 1) return HPET_LEGACY_TIMER1_PIN;
    return Number((timer.config & HPET_TN_INT_ROUTE_MASK) >> HPET_TN_INT_ROUTE_SHIFT);
  }

  /** A level-mode line follows its GINTR_STA bit (and the enables and the route: ENABLE_CNF clear disables all timer interrupts). */
  private updateLevel(n: number, timer: HpetTimer): void {
    const pin = this.pinOf(n, timer);
    const want =
      this.enabled && (this.isr >> BigInt(n)) & 1n && timer.config & HPET_TN_INT_ENB && timer.config & HPET_TN_INT_TYPE_LEVEL
        ? true
        : false;
    if (timer.asserted && (!want || timer.pin !== pin)) {
      this.host.setIrq(timer.pin, false);
      timer.asserted = false;
    }
    if (want && !timer.asserted) {
      timer.pin = pin;
      timer.asserted = true;
      this.host.setIrq(pin, true);
    }
  }

  /** Arms a timer from its comparator: the nearest counter value that matches it (within half the range). */
  private arm(timer: HpetTimer): void {
    const now = this.counter();
    if (this.is32(timer)) {
      let ahead = matchAhead32(timer.comparator, now);
      if (ahead >= HALF_32) ahead -= U32_SPAN; // just passed: due now, as QEMU fires it at once
      // The spec (2.3.9.2.1): a 32-bit one-shot also interrupts when the counter's low half wraps.
      if (!(timer.config & HPET_TN_TYPE_PERIODIC)) ahead = min(ahead, wrapAhead32(now));
      timer.nextFire = (now + ahead) & U64_MASK;
    } else {
      timer.nextFire = timer.comparator;
    }
  }

  private readRegister(reg: number): bigint {
    switch (reg) {
      case HPET_GCAP_ID:
        return Hpet.capabilities;
      case HPET_GEN_CONF:
        return this.config;
      case HPET_GINTR_STA:
        return this.isr;
      case HPET_MAIN_COUNTER:
        return this.counter();
      default: {
        const timer = this.timerAt(reg);
        if (!timer) return 0n;
        switch ((reg - HPET_TIMER_BASE) % HPET_TIMER_STRIDE) {
          case HPET_TN_CONF_CAP:
            return timer.config;
          case HPET_TN_COMPARATOR:
            return timer.comparator;
          default:
            return 0n; // FSB routing: not offered (FSB_INT_DEL_CAP clear)
        }
      }
    }
  }

  private writeRegister(reg: number, value: bigint, mask: bigint): void {
    const merge = (old: bigint, writable: bigint): bigint => (old & ~(mask & writable)) | (value & mask & writable);
    switch (reg) {
      case HPET_GEN_CONF: {
        const wasEnabled = this.enabled;
        const wasLegacy = this.legacy;
        const counter = this.counter();
        this.config = merge(this.config, HPET_CFG_WRITABLE);
        if (wasEnabled !== this.enabled) {
          // Start or stop the counter where it is.
          this.counterBase = counter;
          this.baseNs = this.now();
          if (this.enabled) for (const timer of this.timers) this.arm(timer);
        }
        if (wasLegacy !== this.legacy) this.host.legacyChanged?.(this.legacy);
        if (wasLegacy !== this.legacy || wasEnabled !== this.enabled) this.timers.forEach((timer, n) => this.updateLevel(n, timer));
        return;
      }
      case HPET_GINTR_STA:
        // Write 1 to clear a level-mode timer's status (and lower its line).
        this.isr &= ~(value & mask);
        this.timers.forEach((timer, n) => this.updateLevel(n, timer));
        return;
      case HPET_MAIN_COUNTER:
        // Writable while halted only (spec 2.3.5: software stops the counter first).
        if (!this.enabled) this.counterBase = merge(this.counterBase, U64_MASK);
        return;
      default:
        this.writeTimer(reg, value, mask, merge);
    }
  }

  private writeTimer(reg: number, value: bigint, mask: bigint, merge: (old: bigint, writable: bigint) => bigint): void {
    const timer = this.timerAt(reg);
    if (!timer) return; // GCAP_ID and reserved registers are read-only
    const n = Math.floor((reg - HPET_TIMER_BASE) / HPET_TIMER_STRIDE);
    switch ((reg - HPET_TIMER_BASE) % HPET_TIMER_STRIDE) {
      case HPET_TN_CONF_CAP: {
        let writable = HPET_TN_WRITABLE;
        if (!(timer.config & HPET_TN_PER_INT_CAP)) writable &= ~HPET_TN_TYPE_PERIODIC;
        // A route the capability field does not allow is ignored (the field keeps its value).
        const route = (value & HPET_TN_INT_ROUTE_MASK) >> HPET_TN_INT_ROUTE_SHIFT;
        if (mask & HPET_TN_INT_ROUTE_MASK && ((BigInt(HPET_INT_ROUTE_CAP) >> route) & 1n) === 0n) writable &= ~HPET_TN_INT_ROUTE_MASK;
        timer.config = merge(timer.config, writable);
        if (this.is32(timer)) {
          timer.comparator &= U32_MASK;
          timer.period &= U32_MASK;
        }
        if (!(timer.config & HPET_TN_INT_TYPE_LEVEL)) this.isr &= ~(1n << BigInt(n)); // edge mode keeps no status
        this.updateLevel(n, timer);
        if (this.enabled) this.arm(timer);
        return;
      }
      case HPET_TN_COMPARATOR: {
        const width = this.is32(timer) ? U32_MASK : U64_MASK;
        const written = merge(timer.comparator, width);
        const periodic = (timer.config & HPET_TN_TYPE_PERIODIC) !== 0n;
        // One-shot, or periodic with VAL_SET: the comparator itself. Periodic: always the period too.
        if (!periodic || timer.config & HPET_TN_VAL_SET) timer.comparator = written;
        if (periodic) timer.period = merge(timer.period, width);
        timer.config &= ~HPET_TN_VAL_SET;
        if (this.enabled) this.arm(timer);
        return;
      }
      default:
        return; // FSB routing: not offered
    }
  }

  private timerAt(reg: number): HpetTimer | undefined {
    if (reg < HPET_TIMER_BASE) return undefined;
    return this.timers[Math.floor((reg - HPET_TIMER_BASE) / HPET_TIMER_STRIDE)];
  }
}

/** Timer n's read-only configuration bits: the routes it may take, 64-bit capable, periodic capable (timer 0). */
function timerCapabilities(n: number): bigint {
  return (BigInt(HPET_INT_ROUTE_CAP) << HPET_TN_INT_ROUTE_CAP_SHIFT) | HPET_TN_SIZE_CAP | (n === 0 ? HPET_TN_PER_INT_CAP : 0n);
}

/** Ticks from `from` until the counter's low half equals `comparator` (0 to 2^32 - 1). */
function matchAhead32(comparator: bigint, from: bigint): bigint {
  return (comparator - from) & U32_MASK;
}

/** Ticks from `now` until the counter's low half next wraps to 0 (1 to 2^32). */
function wrapAhead32(now: bigint): bigint {
  return U32_SPAN - (now & U32_MASK);
}

const min = (a: bigint, b: bigint): bigint => (a < b ? a : b);

/** Whether the counter has reached `target` (64-bit, modulo wrap: within half the range behind). */
function reached(now: bigint, target: bigint): boolean {
  return ((now - target) & U64_MASK) < HALF_64;
}
