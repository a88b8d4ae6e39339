/** The MC146818 RTC/CMOS at 0x70/0x71: the time, UIP, update and alarm interrupts, and what s3.c and init.c do with it. */
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
} from '../../src/devices/rtc.js';

// 2024-02-29 23:59:58.500 UTC.
const WALL = Date.UTC(2024, 1, 29, 23, 59, 58, 500);

class Rig {
  ns = 0n;
  irq: boolean[] = [];
  readonly rtc = new Mc146818Rtc(
    { setIrq: (l) => this.irq.push(l), nowNs: () => this.ns, wallClockMs: () => WALL },
    { memorySize: 256 * 2 ** 20, cpus: 2 },
  );
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
    expect(r.rtc.read(CMOS_SHUTDOWN_STATUS)).toBe(0xfe);
    expect(r.read(0x15) | (r.read(0x16) << 8)).toBe(640);
    expect(r.read(0x34) | (r.read(0x35) << 8)).toBe((256 - 16) * 16); // 64 KiB units above 16 MiB
    expect(r.read(0x5f)).toBe(1);
    expect(r.rtc.pioRead(0, 1)).toBe(0xff); // the index port reads all ones
    r.write(0x0d, 0); // D is read-only
    expect(r.read(0x0d)).toBe(0x80);
  });
});
