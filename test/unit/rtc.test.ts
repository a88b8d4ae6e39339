/** The MC146818 RTC/CMOS at 0x70/0x71: the time, UIP, update and alarm interrupts, and what s3.c and init.c do with it. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CMOS_SHUTDOWN_STATUS,
  Mc146818Rtc,
  REG_A_UIP,
  REG_B_AIE,
  REG_B_DM_BINARY,
  REG_B_UIE,
  REG_C_AF,
  REG_C_IRQF,
  REG_C_PF,
  REG_C_UF,
  RTC_HOURS,
  RTC_MINUTES,
  RTC_REG_A,
  RTC_REG_B,
  RTC_REG_C,
  RTC_SECONDS,
  RTC_SECONDS_ALARM,
  RTC_MINUTES_ALARM,
  RTC_HOURS_ALARM,
  RTC_YEAR,
  ALARM_DONT_CARE,
  CMOS_EQUIPMENT,
  CMOS_FLOPPY_TYPES,
  REG_A_DV_32768,
  REG_A_POWER_ON,
  REG_B_24H,
  REG_B_PIE,
  REG_B_SET,
  RTC_HOUR_PM,
  RTC_INDEX_NMI_DISABLE,
  type RtcState,
} from '../../src/devices/rtc.js';
import { UsageError } from '../../src/errors.js';

/** Register A's divider bits held in reset (DV = 110). */
const REG_A_DV_RESET = 0x60;

// 2024-02-29 23:59:58.500 UTC.
const WALL = Date.UTC(2024, 1, 29, 23, 59, 58, 500);

class Rig {
  irq: boolean[] = [];
  readonly rtc: Mc146818Rtc;
  constructor(
    public ns = 0n,
    wall = WALL,
  ) {
    this.rtc = new Mc146818Rtc(
      { setIrq: (l) => this.irq.push(l), nowNs: () => this.ns, wallClockMs: () => wall },
      { memorySize: 256 * 2 ** 20, cpus: 2 },
    );
  }
  read(index: number): number {
    this.rtc.pioWrite(0, 1, index);
    return this.rtc.pioRead(1, 1);
  }
  write(index: number, value: number): void {
    this.rtc.pioWrite(0, 1, index);
    this.rtc.pioWrite(1, 1, value);
  }
  advanceMs(ms: number): void {
    this.ns += BigInt(ms) * 1_000_000n;
    this.rtc.poll();
  }
}

describe('MC146818 RTC', () => {
  it('reads the host time in BCD, 24-hour mode, and in binary when DM is set', () => {
    const r = new Rig();
    expect([r.read(RTC_HOURS), r.read(RTC_MINUTES), r.read(RTC_SECONDS)]).toEqual([0x23, 0x59, 0x58]);
    expect(r.read(RTC_YEAR)).toBe(0x24);
    r.advanceMs(2000); // into March 1st
    expect([r.read(0x07), r.read(0x08), r.read(0x06)]).toEqual([0x01, 0x03, 0x06]); // day 1, month 3, Friday
    r.write(RTC_REG_B, r.read(RTC_REG_B) | REG_B_DM_BINARY);
    expect(r.read(RTC_SECONDS)).toBe(0);
    expect(r.read(0x32)).toBe(20); // century
  });

  it('shows UIP during the 244 µs before each update, as s3.c waits for', () => {
    const r = new Rig();
    expect(r.read(RTC_REG_A) & REG_A_UIP).toBe(0);
    r.ns = 499_800_000n; // 200 µs before the next second (the wall clock starts at .500)
    expect(r.read(RTC_REG_A) & REG_A_UIP).toBe(REG_A_UIP);
    r.ns = 500_000_001n;
    expect(r.read(RTC_REG_A) & REG_A_UIP).toBe(0);
    expect(r.read(RTC_REG_A) & 0x7f).toBe(0x26); // divider and rate as at power-on
  });

  it("raises IRQ 8 on the next second for an all-don't-care alarm (s3.c) and clears it when C is read", () => {
    const r = new Rig();
    r.read(RTC_REG_C);
    r.write(RTC_SECONDS_ALARM, 0xc0);
    r.write(RTC_MINUTES_ALARM, 0xc0);
    r.write(RTC_HOURS_ALARM, 0xc0);
    r.write(RTC_REG_B, r.read(RTC_REG_B) | REG_B_AIE);
    expect(r.rtc.nextAlarmNs()).toBe(500_000_000n);
    expect(r.rtc.nextDeadlineNs()).toBe(500_000_000n);
    r.advanceMs(499);
    expect(r.irq).toEqual([]);
    r.advanceMs(1);
    expect(r.irq).toEqual([true]);
    expect(r.read(RTC_REG_C)).toBe(REG_C_IRQF | REG_C_PF | REG_C_AF | REG_C_UF); // PF too: the 1024 Hz rate runs, PIE or not
    expect(r.irq).toEqual([true, false]);
    expect(r.read(RTC_REG_C)).toBe(0);
  });

  it('matches a specific alarm time only then', () => {
    const r = new Rig();
    r.write(RTC_SECONDS_ALARM, 0x05);
    r.write(RTC_MINUTES_ALARM, 0x00);
    r.write(RTC_HOURS_ALARM, 0x00);
    // 23:59:58.5 → 00:00:05 is 6.5 s away.
    expect(r.rtc.nextAlarmNs()).toBe(6_500_000_000n);
    r.write(RTC_REG_B, r.read(RTC_REG_B) | REG_B_AIE);
    r.advanceMs(6000);
    expect(r.irq).toEqual([]);
    r.advanceMs(500);
    expect(r.irq).toEqual([true]);
  });

  it('keeps the time a guest sets and interrupts each second with UIE', () => {
    const r = new Rig();
    r.write(RTC_HOURS, 0x12);
    expect(r.read(RTC_HOURS)).toBe(0x12);
    expect(r.read(RTC_SECONDS)).toBe(0x58);
    r.write(RTC_REG_B, r.read(RTC_REG_B) | REG_B_UIE);
    r.advanceMs(600);
    expect(r.irq).toEqual([true]);
    expect(r.read(RTC_HOURS)).toBe(0x12);
    expect(r.read(RTC_SECONDS)).toBe(0x59);
  });

  it('keeps CMOS bytes (init.c writes the shutdown status) and the memory sizes a BIOS leaves', () => {
    const r = new Rig();
    r.write(CMOS_SHUTDOWN_STATUS, 0x0a);
    expect(r.read(CMOS_SHUTDOWN_STATUS)).toBe(0x0a);
    r.rtc.setCmos(CMOS_SHUTDOWN_STATUS, 0xfe);
    expect(r.rtc.readRegister(CMOS_SHUTDOWN_STATUS)).toBe(0xfe);
    expect(r.read(0x15) | (r.read(0x16) << 8)).toBe(640);
    expect(r.read(0x34) | (r.read(0x35) << 8)).toBe((256 - 16) * 16); // 64 KiB units above 16 MiB
    expect(r.read(0x5f)).toBe(1);
    expect(r.rtc.pioRead(0, 1)).toBe(0xff); // the index port reads all ones
    r.write(0x0d, 0); // D is read-only
    expect(r.read(0x0d)).toBe(0x80);
  });
});

describe('MC146818 RTC: the data sheet', () => {
  it('sets PF at the rate RS selects, exactly (1024 Hz: 1 s / 1024, 2 Hz: 500 ms), and IRQ 8 with PIE', () => {
    const r = new Rig();
    r.read(RTC_REG_C);
    r.write(RTC_REG_B, REG_B_24H | REG_B_PIE);
    // 1024 Hz from the 32.768 kHz divider: 32 cycles, 976562.5 ns; the divider's phase is the wall clock's
    // (.500), and 500 ms is 512 periods: an edge now, the next one 976562.5 ns on (the first whole ns after it).
    const first = r.rtc.nextDeadlineNs()!;
    expect(first).toBe(976_563n);
    r.ns = first - 1n;
    r.rtc.poll();
    expect(r.irq).toEqual([]);
    r.ns = first;
    r.rtc.poll();
    expect(r.irq).toEqual([true]);
    expect(r.rtc.nextDeadlineNs()).toBeUndefined(); // the line is up until C is read
    expect(r.read(RTC_REG_C) & (REG_C_IRQF | REG_C_PF)).toBe(REG_C_IRQF | REG_C_PF);
    // 2 Hz (RS = 15): edges on the half seconds of the divider.
    r.write(RTC_REG_A, REG_A_DV_32768 | 0x0f);
    expect(r.rtc.nextDeadlineNs()).toBe(500_000_000n);
    r.write(RTC_REG_A, REG_A_DV_32768 | 0x01); // RS = 1: 256 Hz, 3.90625 ms
    const at = r.rtc.nextDeadlineNs()!;
    expect(at - r.ns).toBeLessThanOrEqual(3_906_250n);
    r.write(RTC_REG_A, REG_A_DV_32768); // RS = 0: no periodic interrupt
    expect(r.rtc.nextDeadlineNs()).toBeUndefined();
  });

  it('stops updating while SET is on (and clears UIE), and restarts 500 ms after the divider leaves reset', () => {
    const r = new Rig();
    r.write(RTC_REG_B, REG_B_24H | REG_B_UIE | REG_B_SET);
    expect(r.read(RTC_REG_B) & REG_B_UIE).toBe(0);
    r.advanceMs(5000);
    expect(r.read(RTC_SECONDS)).toBe(0x58);
    expect(r.read(RTC_REG_A) & REG_A_UIP).toBe(0); // no update in progress while SET
    r.write(RTC_REG_B, REG_B_24H);
    r.write(RTC_REG_A, REG_A_DV_RESET | 0x06); // divider held in reset: the clock stops
    r.advanceMs(3000);
    expect(r.read(RTC_SECONDS)).toBe(0x58);
    r.write(RTC_REG_A, REG_A_POWER_ON);
    r.advanceMs(499);
    expect(r.read(RTC_SECONDS)).toBe(0x58);
    r.advanceMs(1);
    expect(r.read(RTC_SECONDS)).toBe(0x59);
  });

  it("matches alarms in 12-hour BCD with don't-care bytes, and reports UF on every update", () => {
    const r = new Rig();
    r.write(RTC_REG_B, REG_B_AIE); // 12-hour BCD: 23:59:58 reads 11 PM
    expect(r.read(RTC_HOURS)).toBe(RTC_HOUR_PM | 0x11);
    r.write(RTC_HOURS_ALARM, 0x12); // 12 AM = midnight
    r.write(RTC_MINUTES_ALARM, ALARM_DONT_CARE);
    r.write(RTC_SECONDS_ALARM, 0x30);
    r.read(RTC_REG_C);
    // 23:59:58.5 → 00:00:30 is 31.5 s away.
    expect(r.rtc.nextAlarmNs()).toBe(31_500_000_000n);
    r.advanceMs(31_000);
    expect(r.irq).toEqual([]);
    expect(r.read(RTC_REG_C)).toBe(REG_C_UF | REG_C_PF); // updates happened, no alarm yet
    r.advanceMs(500);
    expect(r.irq).toEqual([true]);
    expect(r.read(RTC_REG_C) & REG_C_AF).toBe(REG_C_AF);
    // An impossible alarm value (minutes 0x75) never matches.
    r.write(RTC_MINUTES_ALARM, 0x75);
    expect(r.rtc.nextAlarmNs()).toBeUndefined();
  });

  it('keeps the NMI mask of port 0x70 bit 7, and the CMOS bytes for floppies, equipment and memory above 4 GiB', () => {
    const r = new Rig();
    r.rtc.pioWrite(0, 1, RTC_INDEX_NMI_DISABLE | RTC_SECONDS);
    expect(r.rtc.nmiMasked).toBe(true);
    expect(r.rtc.pioRead(1, 1)).toBe(0x58); // the index without bit 7
    r.rtc.pioWrite(0, 1, RTC_SECONDS);
    expect(r.rtc.nmiMasked).toBe(false);
    const big = new Mc146818Rtc({ nowNs: () => 0n, wallClockMs: () => WALL }, { memorySize: 6 * 2 ** 30, floppies: [4, 3] });
    expect(big.readRegister(CMOS_FLOPPY_TYPES)).toBe(0x43);
    expect(big.readRegister(CMOS_EQUIPMENT)).toBe(0x43); // two floppies, present, x87
    const above4G = big.readRegister(0x5b) | (big.readRegister(0x5c) << 8) | (big.readRegister(0x5d) << 16);
    expect(above4G).toBe((2 * 2 ** 30) / 65536);
    expect(big.readRegister(0x34) | (big.readRegister(0x35) << 8)).toBe((4 * 2 ** 30 - 16 * 2 ** 20) / 65536); // below 4 GiB only
  });

  it('shows local time with base "localtime"', () => {
    const local = new Date(2024, 5, 1, 7, 8, 9).getTime();
    const rtc = new Mc146818Rtc({ nowNs: () => 0n, wallClockMs: () => local }, { base: 'localtime' });
    expect([rtc.readRegister(RTC_HOURS), rtc.readRegister(RTC_MINUTES), rtc.readRegister(RTC_SECONDS)]).toEqual([0x07, 0x08, 0x09]);
  });
});

describe('MC146818 RTC: state and restore', () => {
  it('round-trips through JSON into a new device in another "process": the clock and the periodic rate go on from the save', () => {
    const r = new Rig();
    r.write(RTC_REG_B, REG_B_24H | REG_B_UIE);
    r.write(0x40, 0x5a); // a CMOS RAM byte
    r.write(RTC_MINUTES, 0x42);
    r.advanceMs(300); // 23:42:58.8
    const saved = JSON.parse(JSON.stringify(r.rtc.state())) as RtcState;
    expect(saved.phaseNs).toBe(800_000_000);
    // The new process's clocks start elsewhere: 1000 s in, and the host's wall clock a year later.
    const other = new Rig(1000n * 1_000_000_000n, WALL + 365 * 86_400_000);
    other.rtc.restore(saved);
    expect(other.irq).toEqual([false]); // restore drives the line to the saved level
    expect(other.read(0x40)).toBe(0x5a);
    expect([other.read(RTC_HOURS), other.read(RTC_MINUTES), other.read(RTC_SECONDS)]).toEqual([0x23, 0x42, 0x58]);
    expect(other.rtc.nextDeadlineNs()).toBe(other.ns + 200_000_000n); // the update 200 ms on, as in the saved run
    other.advanceMs(200);
    expect(other.irq).toEqual([false, true]);
    expect(other.read(RTC_SECONDS)).toBe(0x59);
  });

  it('brings a pending interrupt back up', () => {
    const r = new Rig();
    r.write(RTC_REG_B, REG_B_24H | REG_B_UIE);
    r.advanceMs(600);
    expect(r.rtc.irq).toBe(true);
    const other = new Rig();
    other.rtc.restore(JSON.parse(JSON.stringify(r.rtc.state())) as RtcState);
    expect(other.irq).toEqual([true]);
    expect(other.read(RTC_REG_C) & REG_C_UF).toBe(REG_C_UF);
  });

  it('saves an interrupt that fell due since the last poll as pending, and the restored device raises it at its first poll', () => {
    const r = new Rig();
    r.write(RTC_REG_B, REG_B_24H | REG_B_UIE);
    r.ns += 600_000_000n; // the update happened, unseen
    const saved = JSON.parse(JSON.stringify(r.rtc.state())) as RtcState;
    expect(r.irq).toEqual([]); // saving moved no line
    expect(saved.irqLine).toBe(false);
    expect(saved.flags & REG_C_UF).toBe(REG_C_UF);
    const other = new Rig();
    other.rtc.restore(saved);
    expect(other.irq).toEqual([false]);
    other.rtc.poll();
    expect(other.irq).toEqual([false, true]);
  });

  it('refuses malformed state with a UsageError', () => {
    const r = new Rig();
    const good = r.rtc.state();
    const bad: unknown[] = [
      null,
      [],
      'rtc',
      { ...good, cmos: good.cmos.slice(1) },
      { ...good, cmos: [...good.cmos.slice(1), 256] },
      { ...good, index: 0x80 },
      { ...good, nmiMasked: 1 },
      { ...good, clockSeconds: 1.5 },
      { ...good, clockSeconds: 1e15 },
      { ...good, phaseNs: 1_000_000_000 },
      { ...good, flags: REG_C_IRQF },
      { ...good, flags: undefined },
      { ...good, irqLine: 'no' },
    ];
    for (const state of bad) expect(() => r.rtc.restore(state as RtcState), JSON.stringify(state)).toThrow(UsageError);
    expect(r.read(RTC_SECONDS)).toBe(0x58); // a refused restore changed nothing
  });
});

describe('MC146818 RTC: any time set reads back', () => {
  it('in BCD and binary, 12- and 24-hour mode (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date(Date.UTC(2000, 0, 1)), max: new Date(Date.UTC(2099, 11, 31, 23, 59, 59)), noInvalidDate: true }),
        fc.boolean(),
        fc.boolean(),
        (date, binary, h24) => {
          const r = new Rig();
          const b = (binary ? REG_B_DM_BINARY : 0) | (h24 ? REG_B_24H : 0);
          r.write(RTC_REG_B, REG_B_SET | b);
          const enc = (v: number): number => (binary ? v : ((v / 10) << 4) | (v % 10));
          const h = date.getUTCHours();
          const hours = h24 ? enc(h) : enc(h % 12 === 0 ? 12 : h % 12) | (h >= 12 ? RTC_HOUR_PM : 0);
          const fields: [number, number][] = [
            [0x32, enc(Math.floor(date.getUTCFullYear() / 100))],
            [RTC_YEAR, enc(date.getUTCFullYear() % 100)],
            [0x08, enc(date.getUTCMonth() + 1)],
            [0x07, enc(date.getUTCDate())],
            [RTC_HOURS, hours],
            [RTC_MINUTES, enc(date.getUTCMinutes())],
            [RTC_SECONDS, enc(date.getUTCSeconds())],
          ];
          // Day first would not fit every month: set the date from a day that fits all, then the day.
          r.write(0x07, enc(1));
          for (const [reg, value] of fields) r.write(reg, value);
          r.write(RTC_REG_B, b);
          for (const [reg, value] of fields) expect(r.read(reg), `register ${reg}`).toBe(value);
          expect(r.read(0x06)).toBe(enc(date.getUTCDay() + 1));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("answers nextDeadlineNs() from its last answer until a register access or the deadline, and that answer is always today's", () => {
    type Step =
      | { kind: 'write'; index: number; value: number }
      | { kind: 'read'; index: number }
      | { kind: 'index'; value: number }
      | { kind: 'wait'; ms: number }
      | { kind: 'poll' };
    const register = fc.constantFrom(
      RTC_REG_A,
      RTC_REG_B,
      RTC_REG_C,
      RTC_SECONDS,
      RTC_SECONDS_ALARM,
      RTC_MINUTES_ALARM,
      RTC_HOURS_ALARM,
      RTC_MINUTES,
    );
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.record({
        kind: fc.constant('write' as const),
        index: register,
        value: fc.oneof(
          fc.integer({ min: 0, max: 0xff }),
          fc.constantFrom(REG_A_DV_32768 | 6, REG_A_DV_32768 | 15, REG_B_PIE | REG_B_AIE | REG_B_UIE | REG_B_24H, ALARM_DONT_CARE),
        ),
      }),
      fc.record({ kind: fc.constant('read' as const), index: register }),
      fc.record({ kind: fc.constant('index' as const), value: fc.integer({ min: 0, max: 0xff }) }),
      fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 2500 }) }),
      fc.record({ kind: fc.constant('poll' as const) }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
        const r = new Rig();
        const fresh = (): bigint | undefined => (r.rtc as unknown as { computeDeadlineNs(): bigint | undefined }).computeDeadlineNs();
        for (const s of steps) {
          if (s.kind === 'write') r.write(s.index, s.value);
          else if (s.kind === 'read') r.read(s.index);
          else if (s.kind === 'index') r.rtc.pioWrite(0, 1, s.value);
          else if (s.kind === 'wait') r.ns += BigInt(s.ms) * 1_000_000n;
          else r.rtc.poll();
          const cached = r.rtc.nextDeadlineNs();
          expect(cached).toBe(fresh());
        }
      }),
      { numRuns: 400 },
    );
  });
});
