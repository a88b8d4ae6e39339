/**
 * ACPI PM1a event/control and the PM timer, as the FADT places them: status write-1-to-clear, the
 * SCI, the 3.579545 MHz timer (injected clock, and the real clock without assumptions about
 * speed), and sleep-state writes as kvm-unit-tests' s3 test makes them.
 */
import { describe, expect, it } from 'vitest';
import {
  AcpiPm,
  PM1_CNT,
  PM1_CNT_SCI_EN,
  PM1_EN,
  PM1_PWRBTN,
  PM1_RTC,
  PM1_STS,
  PM1_TMR,
  PM1_WAK_STS,
  PM_TIMER_HZ,
  PM_TMR,
  GPE0_EN,
  GPE0_STS,
  type AcpiPmState,
  type SleepState,
} from '../../src/devices/acpi-pm.js';
import { UsageError } from '../../src/errors.js';

class Rig {
  ns = 5_000_000_000n;
  sci: boolean[] = [];
  sleeps: SleepState[] = [];
  readonly pm: AcpiPm;
  constructor(timer32 = false) {
    this.pm = new AcpiPm({ setSci: (l) => this.sci.push(l), sleep: (s) => this.sleeps.push(s), nowNs: () => this.ns }, { timer32 });
  }
  in(offset: number, size: 1 | 2 | 4): number {
    return this.pm.pioRead(offset, size);
  }
  out(offset: number, size: 1 | 2 | 4, value: number): void {
    this.pm.pioWrite(offset, size, value);
  }
}

describe('ACPI PM timer', () => {
  it('counts at 3.579545 MHz from the injected clock, in 24 bits', () => {
    const r = new Rig();
    expect(r.in(PM_TMR, 4)).toBe(0);
    r.ns += 1_000_000_000n;
    expect(r.in(PM_TMR, 4)).toBe(PM_TIMER_HZ);
    r.ns += 4_000_000_000n; // 5 s: 17897725 ticks, past 2^24
    expect(r.in(PM_TMR, 4)).toBe((5 * PM_TIMER_HZ) % 2 ** 24);
    expect(r.in(PM_TMR + 2, 1)).toBe(((5 * PM_TIMER_HZ) % 2 ** 24) >>> 16); // bytes of it
  });

  it('counts in 32 bits with TMR_VAL_EXT', () => {
    const r = new Rig(true);
    r.ns += 5_000_000_000n;
    expect(r.in(PM_TMR, 4)).toBe(5 * PM_TIMER_HZ);
  });

  it('reads one count per access, even while the clock moves between its bytes (no torn inl across a carry)', () => {
    let ns = 0n;
    const tickNs = 1_000_000_000n / BigInt(PM_TIMER_HZ) + 1n; // a little over one tick per look at the clock
    // Each look at the clock moves it on by a tick: a read made of four looks would see four counts.
    const pm = new AcpiPm({ setSci: () => {}, sleep: () => {}, nowNs: () => (ns += tickNs) }, { timer32: true });
    for (let i = 0; i < 600; i++) {
      const before = pm.timer();
      const value = pm.pioRead(PM_TMR, 4);
      const after = pm.timer();
      expect(value).toBeGreaterThan(before);
      expect(value).toBeLessThan(after);
    }
  });

  it('runs at the documented rate against the host monotonic clock', async () => {
    const pm = new AcpiPm({ setSci: () => {}, sleep: () => {} }, { timer32: true });
    const t0 = process.hrtime.bigint();
    const c0 = pm.pioRead(PM_TMR, 4);
    const t1 = process.hrtime.bigint();
    await new Promise((resolve) => setTimeout(resolve, 30));
    const t2 = process.hrtime.bigint();
    const c1 = pm.pioRead(PM_TMR, 4);
    const t3 = process.hrtime.bigint();
    const ticks = BigInt(c1 - c0);
    // ticks / HZ seconds lie between the inner and outer clock brackets (±1 tick of truncation).
    expect((ticks + 1n) * 1_000_000_000n).toBeGreaterThanOrEqual((t2 - t1) * BigInt(PM_TIMER_HZ));
    expect((ticks - 1n) * 1_000_000_000n).toBeLessThanOrEqual((t3 - t0) * BigInt(PM_TIMER_HZ));
  });

  it('sets TMR_STS when the top bit toggles, raising the SCI only while TMR_EN and SCI_EN are set', () => {
    const r = new Rig();
    const half = (2n ** 23n * 1_000_000_000n) / BigInt(PM_TIMER_HZ) + 1n; // ns until bit 23 first sets
    r.out(PM1_EN, 2, PM1_TMR);
    expect(r.pm.nextDeadlineNs()).toBe(r.ns + half);
    r.ns += half;
    r.pm.poll();
    expect(r.in(PM1_STS, 2) & PM1_TMR).toBe(PM1_TMR);
    expect(r.sci).toEqual([true]);
    r.out(PM1_STS, 2, PM1_TMR); // write 1 to clear
    expect(r.in(PM1_STS, 2) & PM1_TMR).toBe(0);
    expect(r.sci).toEqual([true, false]);
    // With SCI_EN clear the status still sets, but no SCI.
    r.out(PM1_CNT, 2, 0);
    r.ns += half * 2n;
    r.pm.poll();
    expect(r.in(PM1_STS, 2) & PM1_TMR).toBe(PM1_TMR);
    expect(r.sci).toEqual([true, false]);
  });
});

describe('ACPI PM1 registers', () => {
  it('starts in ACPI mode (SCI_EN) with nothing enabled', () => {
    const r = new Rig();
    expect(r.in(PM1_CNT, 2)).toBe(PM1_CNT_SCI_EN);
    expect(r.in(PM1_EN, 2)).toBe(0);
    expect(r.in(PM1_STS, 2)).toBe(0);
  });

  it("enters S3 on s3.c's outw(0x2400) and S5 on SLP_TYP 0, and reads SLP_EN back as 0", () => {
    const r = new Rig();
    r.out(PM1_EN, 2, 0x400); // s3.c: outw(0x400, pm1a_evt_blk + 2): RTC_EN
    expect(r.in(PM1_EN, 2)).toBe(PM1_RTC);
    expect(r.pm.wakeEnabled('rtc')).toBe(true);
    r.out(PM1_CNT, 2, 0x2400);
    expect(r.sleeps).toEqual(['S3']);
    expect(r.in(PM1_CNT, 2)).toBe(0x0400);
    r.out(PM1_CNT, 2, 0x2000 | PM1_CNT_SCI_EN);
    expect(r.sleeps).toEqual(['S3', 'S5']);
    r.out(PM1_CNT, 2, 0x2000 | (5 << 10)); // SLP_TYP 5: no such state in the DSDT
    expect(r.sleeps).toEqual(['S3', 'S5']);
  });

  it('enters a sleep state written byte-wise (the high byte holds SLP_TYP and SLP_EN)', () => {
    const r = new Rig();
    r.out(PM1_CNT + 1, 1, 0x24);
    expect(r.sleeps).toEqual(['S3']);
    expect(r.in(PM1_CNT, 2)).toBe(PM1_CNT_SCI_EN | 0x0400);
  });

  it('sets WAK_STS and RTC_STS on wake, raising the SCI when RTC_EN is set', () => {
    const r = new Rig();
    r.out(PM1_EN, 2, PM1_RTC);
    r.pm.wake('rtc');
    expect(r.in(PM1_STS, 2)).toBe(PM1_WAK_STS | PM1_RTC);
    expect(r.sci).toEqual([true]);
    r.out(PM1_STS, 2, 0xffff);
    expect(r.in(PM1_STS, 2)).toBe(0);
    expect(r.sci).toEqual([true, false]);
    r.pm.wake('power-button');
    expect(r.in(PM1_STS, 2)).toBe(PM1_WAK_STS | PM1_PWRBTN);
  });

  it('handles a dword access across PM1_STS and PM1_EN, and GPE0 status/enable', () => {
    const r = new Rig();
    r.out(PM1_STS, 4, PM1_RTC << 16);
    expect(r.in(PM1_EN, 2)).toBe(PM1_RTC);
    r.out(GPE0_EN, 2, 0x2);
    r.pm.raiseGpe(1);
    expect(r.in(GPE0_STS, 2)).toBe(2);
    expect(r.sci).toEqual([true]);
    r.out(GPE0_STS, 2, 2);
    expect(r.sci).toEqual([true, false]);
  });
});

describe('ACPI PM: state and restore', () => {
  it('round-trips through JSON into a new device on another clock: registers, SCI and the timer going on from its count', () => {
    const r = new Rig();
    r.out(PM1_EN, 2, PM1_TMR | PM1_RTC);
    r.out(GPE0_EN, 2, 0x0004);
    r.pm.raiseGpe(2); // SCI up
    r.ns += 1_000_000_000n; // a second: 3579545 ticks
    const saved = JSON.parse(JSON.stringify(r.pm.state())) as AcpiPmState;
    expect(saved.timer).toBe(PM_TIMER_HZ);
    const deadlineIn = r.pm.nextDeadlineNs()! - r.ns;

    const other = new Rig();
    other.ns = 123_456_789_000n;
    other.pm.restore(saved);
    expect(other.sci).toEqual([true]);
    expect(other.in(PM_TMR, 4)).toBe(PM_TIMER_HZ);
    expect(other.in(PM1_EN, 2)).toBe(PM1_TMR | PM1_RTC);
    expect(other.in(GPE0_STS, 2)).toBe(0x0004);
    // The overflow (TMR_STS) comes after the same time as it would have.
    const otherIn = other.pm.nextDeadlineNs()! - other.ns;
    expect(Math.abs(Number(otherIn - deadlineIn))).toBeLessThanOrEqual(1);
    other.ns += otherIn;
    other.pm.poll();
    expect(other.in(PM1_STS, 2) & PM1_TMR).toBe(PM1_TMR);
    expect(other.in(PM_TMR, 4)).toBe(1 << 23);
  });

  it('saves a timer overflow not yet polled as TMR_STS with the SCI still down, raised after the restore', () => {
    const r = new Rig();
    r.out(PM1_EN, 2, PM1_TMR);
    r.ns += 2_400_000_000n; // past 2^23 ticks (2.34 s): the top bit toggled, unseen
    const saved = JSON.parse(JSON.stringify(r.pm.state())) as AcpiPmState;
    expect(r.sci).toEqual([]);
    expect(saved.sci).toBe(false);
    expect(saved.pm1Status & PM1_TMR).toBe(PM1_TMR);
    const other = new Rig();
    other.pm.restore(saved);
    expect(other.sci).toEqual([false]);
    other.pm.poll();
    expect(other.sci).toEqual([false, true]);
  });

  it('refuses malformed state with a UsageError', () => {
    const r = new Rig();
    const good = r.pm.state();
    const bad: unknown[] = [
      null,
      { ...good, timer32: true }, // this machine's timer has 24 bits
      { ...good, timer: 1 << 24 },
      { ...good, timer: -1 },
      { ...good, pm1Status: 1 << 3 },
      { ...good, pm1Control: PM1_CNT_SCI_EN | (1 << 13) }, // SLP_EN is a strobe, never kept
      { ...good, gpeEnable: 0x10000 },
      { ...good, pm1Enable: '1' },
      { ...good, sci: undefined },
    ];
    for (const state of bad) expect(() => r.pm.restore(state as AcpiPmState), JSON.stringify(state)).toThrow(UsageError);
    expect(r.pm.state()).toEqual(good);
  });
});
