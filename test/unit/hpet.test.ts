/**
 * The HPET as a guest drives it: capabilities, the 100 MHz main counter (against an injected
 * clock, and against the host's real clock without any assumption about how fast things run),
 * one-shot and periodic comparators, level and edge interrupts, legacy replacement routing.
 */
import { describe, expect, it } from 'vitest';
import {
  Hpet,
  HPET_CFG_ENABLE,
  HPET_CFG_LEGACY,
  HPET_GCAP_ID,
  HPET_GEN_CONF,
  HPET_GINTR_STA,
  HPET_MAIN_COUNTER,
  HPET_TN_INT_ENB,
  HPET_TN_INT_ROUTE_SHIFT,
  HPET_TN_INT_TYPE_LEVEL,
  HPET_TN_32MODE,
  HPET_TN_TYPE_PERIODIC,
  HPET_TN_VAL_SET,
  type HpetState,
  type HpetTimerState,
} from '../../src/devices/hpet.js';
import { registerPcChipset } from '../../src/board/chipset.js';
import { Bus, PIO_ADDRESS_SPACE_SIZE } from '../../src/devices/bus.js';
import type { MmioDevice, PioDevice } from '../../src/devices/device.js';
import { REG_B_24H, REG_B_UIE, RTC_REG_B } from '../../src/devices/rtc.js';
import { UsageError } from '../../src/errors.js';

const timer = (n: number, reg: number): number => 0x100 + 0x20 * n + reg;
const CONF = 0;
const CMP = 8;

class Rig {
  ns = 1_000_000_000n;
  edges: [number, boolean][] = [];
  legacy: boolean[] = [];
  readonly hpet = new Hpet({
    setIrq: (pin, level) => this.edges.push([pin, level]),
    nowNs: () => this.ns,
    legacyChanged: (on) => this.legacy.push(on),
  });

  read64(offset: number): bigint {
    const data = new Uint8Array(8);
    this.hpet.mmioRead(offset, data);
    return new DataView(data.buffer).getBigUint64(0, true);
  }
  read32(offset: number): number {
    const data = new Uint8Array(4);
    this.hpet.mmioRead(offset, data);
    return new DataView(data.buffer).getUint32(0, true);
  }
  write64(offset: number, value: bigint): void {
    const data = new Uint8Array(8);
    new DataView(data.buffer).setBigUint64(0, value, true);
    this.hpet.mmioWrite(offset, data);
  }
  write32(offset: number, value: number): void {
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, value >>> 0, true);
    this.hpet.mmioWrite(offset, data);
  }
  advanceNs(ns: bigint): void {
    this.ns += ns;
    this.hpet.poll();
  }
}

describe('HPET registers', () => {
  it('reports a 10 ns period, Intel, legacy routing, a 64-bit counter and three timers', () => {
    const r = new Rig();
    const cap = r.read64(HPET_GCAP_ID);
    expect(cap >> 32n).toBe(10_000_000n); // femtoseconds
    expect(Number(cap & 0xffffffffn)).toBe(0x8086a201);
    expect(r.read32(HPET_GCAP_ID + 4)).toBe(10_000_000); // the high half alone
    expect(Hpet.eventTimerBlockId).toBe(0x8086a201);
    // Timer 0: periodic-capable, 64-bit, routes 2, 8, 16-23; timers 1-2: one-shot.
    expect(r.read64(timer(0, CONF)) & 0x30n).toBe(0x30n);
    expect(r.read64(timer(1, CONF)) & 0x30n).toBe(0x20n);
    expect(r.read64(timer(0, CONF)) >> 32n).toBe(0x00ff0104n);
  });

  it('holds the counter until ENABLE_CNF, then counts at 100 MHz, and keeps its value when halted', () => {
    const r = new Rig();
    r.advanceNs(5000n);
    expect(r.read64(HPET_MAIN_COUNTER)).toBe(0n);
    r.write64(HPET_GEN_CONF, HPET_CFG_ENABLE);
    r.advanceNs(1_000_000n); // 1 ms
    expect(r.read64(HPET_MAIN_COUNTER)).toBe(100_000n);
    r.write64(HPET_GEN_CONF, 0n);
    r.advanceNs(1_000_000n);
    expect(r.read64(HPET_MAIN_COUNTER)).toBe(100_000n);
    // Writable while halted, and it counts on from there.
    r.write64(HPET_MAIN_COUNTER, 0xffff_fff0n);
    r.write64(HPET_GEN_CONF, HPET_CFG_ENABLE);
    r.advanceNs(200n);
    expect(r.read64(HPET_MAIN_COUNTER)).toBe(0x1_0000_0004n);
    expect(r.read32(HPET_MAIN_COUNTER)).toBe(4);
    expect(r.read32(HPET_MAIN_COUNTER + 4)).toBe(1);
    // Not writable while running.
    r.write64(HPET_MAIN_COUNTER, 0n);
    expect(r.read64(HPET_MAIN_COUNTER)).toBe(0x1_0000_0004n);
  });

  it('counts at the documented rate against the host monotonic clock', async () => {
    const hpet = new Hpet({ setIrq: () => {} });
    const data = new Uint8Array(8);
    const counter = (): bigint => {
      hpet.mmioRead(HPET_MAIN_COUNTER, data);
      return new DataView(data.buffer).getBigUint64(0, true);
    };
    const enable = new Uint8Array(8);
    enable[0] = 1;
    hpet.mmioWrite(HPET_GEN_CONF, enable);
    // Bracket each counter read by clock reads: the counter's ns must lie between them.
    const t0 = process.hrtime.bigint();
    const c0 = counter();
    const t1 = process.hrtime.bigint();
    await new Promise((resolve) => setTimeout(resolve, 30));
    const t2 = process.hrtime.bigint();
    const c1 = counter();
    const t3 = process.hrtime.bigint();
    const elapsedNs = (c1 - c0) * 10n;
    expect(elapsedNs).toBeGreaterThanOrEqual(t2 - t1 - 10n);
    expect(elapsedNs).toBeLessThanOrEqual(t3 - t0 + 10n);
    expect(c1).toBeGreaterThan(c0);
  });

  it('fires a 64-bit one-shot once, in level mode, until its status is cleared', () => {
    const r = new Rig();
    r.write64(timer(2, CONF), HPET_TN_INT_ENB | HPET_TN_INT_TYPE_LEVEL | (20n << HPET_TN_INT_ROUTE_SHIFT));
    r.write64(timer(2, CMP), 1000n); // 10 µs after enabling
    r.write64(HPET_GEN_CONF, HPET_CFG_ENABLE);
    expect(r.hpet.nextDeadlineNs()).toBe(r.ns + 10_000n);
    r.advanceNs(9_990n);
    expect(r.edges).toEqual([]);
    r.advanceNs(10n);
    expect(r.edges).toEqual([[20, true]]);
    expect(r.read64(HPET_GINTR_STA)).toBe(4n);
    r.advanceNs(1_000_000n);
    expect(r.edges).toEqual([[20, true]]); // once
    r.write64(HPET_GINTR_STA, 4n);
    expect(r.edges).toEqual([
      [20, true],
      [20, false],
    ]);
    expect(r.read64(HPET_GINTR_STA)).toBe(0n);
    expect(r.hpet.nextDeadlineNs()).toBeUndefined();
  });

  it('runs a periodic timer 0 in legacy mode on IRQ0 (pin 2), pulsing each period and skipping missed ones', () => {
    const r = new Rig();
    r.write64(HPET_GEN_CONF, HPET_CFG_LEGACY);
    expect(r.legacy).toEqual([true]);
    r.write64(timer(0, CONF), HPET_TN_INT_ENB | HPET_TN_TYPE_PERIODIC | HPET_TN_VAL_SET);
    r.write64(timer(0, CMP), 100n); // first match (VAL_SET)
    r.write64(timer(0, CMP), 100n); // the period
    r.write64(HPET_GEN_CONF, HPET_CFG_ENABLE | HPET_CFG_LEGACY);
    r.advanceNs(1000n); // counter 100
    expect(r.edges).toEqual([
      [2, true],
      [2, false],
    ]);
    expect(r.read64(timer(0, CMP))).toBe(200n);
    r.advanceNs(3500n); // counter 450: 200, 300, 400 passed: one (late) interrupt, next at 500
    expect(r.edges.length).toBe(4);
    expect(r.read64(timer(0, CMP))).toBe(500n);
    expect(r.hpet.nextDeadlineNs()).toBe(r.ns + 500n);
    expect(r.read64(HPET_GINTR_STA)).toBe(0n); // edge mode keeps no status
  });

  it('routes timer 1 to IRQ8 in legacy mode and back to its own route without it', () => {
    const r = new Rig();
    r.write64(timer(1, CONF), HPET_TN_INT_ENB | HPET_TN_INT_TYPE_LEVEL | (17n << HPET_TN_INT_ROUTE_SHIFT));
    r.write64(timer(1, CMP), 10n);
    r.write64(HPET_GEN_CONF, HPET_CFG_ENABLE | HPET_CFG_LEGACY);
    r.advanceNs(100n);
    expect(r.edges).toEqual([[8, true]]);
    // Leaving legacy mode moves the asserted line to the timer's route.
    r.write64(HPET_GEN_CONF, HPET_CFG_ENABLE);
    expect(r.edges).toEqual([
      [8, true],
      [8, false],
      [17, true],
    ]);
    expect(r.legacy).toEqual([true, false]);
  });

  it('ignores a route outside the capability and keeps 32-bit timers to 32 bits', () => {
    const r = new Rig();
    r.write64(timer(2, CONF), HPET_TN_INT_ENB | (5n << HPET_TN_INT_ROUTE_SHIFT)); // 5 is not in 0x00ff0104
    expect((r.read64(timer(2, CONF)) >> HPET_TN_INT_ROUTE_SHIFT) & 0x1fn).toBe(0n);
    r.write64(timer(2, CONF), HPET_TN_INT_ENB | HPET_TN_32MODE | (16n << HPET_TN_INT_ROUTE_SHIFT));
    r.write64(timer(2, CMP), 0x1_0000_0010n);
    expect(r.read64(timer(2, CMP))).toBe(0x10n);
    // A 32-bit one-shot matches the low half: counter 0x10, then at the 32-bit wrap, then 0x10 again.
    r.write64(HPET_GEN_CONF, HPET_CFG_ENABLE);
    r.advanceNs(160n);
    expect(r.edges).toEqual([
      [16, true],
      [16, false],
    ]);
    expect(r.hpet.nextDeadlineNs()).toBe(r.ns + (2n ** 32n - 0x10n) * 10n);
    r.advanceNs((2n ** 32n - 0x10n) * 10n);
    expect(r.read64(HPET_MAIN_COUNTER)).toBe(2n ** 32n);
    expect(r.edges.length).toBe(4);
    expect(r.hpet.nextDeadlineNs()).toBe(r.ns + 0x10n * 10n);
  });

  it('does nothing with writes to read-only registers', () => {
    const r = new Rig();
    r.write64(HPET_GCAP_ID, 0n);
    expect(r.read64(HPET_GCAP_ID)).toBe(Hpet.capabilities);
    r.write64(0x3f8, 0xffn); // reserved
    expect(r.read64(0x3f8)).toBe(0n);
  });
});

describe('HPET: rate, 32-bit periodic, deadlines', () => {
  it('advances the main counter one tick per COUNTER_CLK_PERIOD of GCAP_ID against a fake clock', () => {
    const r = new Rig();
    const periodFs = r.read64(HPET_GCAP_ID) >> 32n;
    r.write64(HPET_GEN_CONF, HPET_CFG_ENABLE);
    for (const ns of [1n, 999n, 123_456_789n, 10n ** 12n]) {
      const before = r.read64(HPET_MAIN_COUNTER);
      const start = r.ns;
      r.advanceNs(ns);
      const elapsedFs = (r.ns - start) * 1_000_000n;
      // The counter moved by the whole periods that passed (one tick's rounding at most).
      const ticks = r.read64(HPET_MAIN_COUNTER) - before;
      expect(ticks * periodFs).toBeLessThanOrEqual(elapsedFs + periodFs);
      expect(ticks * periodFs).toBeGreaterThan(elapsedFs - periodFs);
    }
  });

  it('runs a 32-bit periodic timer through the 32-bit wrap, with VAL_SET setting the first match', () => {
    const r = new Rig();
    r.write64(HPET_MAIN_COUNTER, 0xffff_ff00n);
    r.write64(
      timer(0, CONF),
      HPET_TN_INT_ENB | HPET_TN_TYPE_PERIODIC | HPET_TN_VAL_SET | HPET_TN_32MODE | (20n << HPET_TN_INT_ROUTE_SHIFT),
    );
    r.write32(timer(0, CMP), 0xffff_ff80); // first match, 128 ticks away
    r.write32(timer(0, CMP), 0x100); // period (VAL_SET was cleared by the first write)
    expect(r.read64(timer(0, CONF)) & HPET_TN_VAL_SET).toBe(0n);
    r.write64(HPET_GEN_CONF, HPET_CFG_ENABLE);
    expect(r.hpet.nextDeadlineNs()).toBe(r.ns + 128n * 10n);
    r.advanceNs(1280n);
    expect(r.edges).toEqual([
      [20, true],
      [20, false],
    ]);
    expect(r.read64(timer(0, CMP))).toBe(0x80n); // 0xFFFFFF80 + 0x100, in 32 bits
    expect(r.hpet.nextDeadlineNs()).toBe(r.ns + 0x100n * 10n);
  });

  it('lowers level-mode lines while ENABLE_CNF is clear (all timer interrupts disabled), and raises them again with it', () => {
    const r = new Rig();
    r.write64(timer(2, CONF), HPET_TN_INT_ENB | HPET_TN_INT_TYPE_LEVEL | (20n << HPET_TN_INT_ROUTE_SHIFT));
    r.write64(timer(2, CMP), 10n);
    r.write64(HPET_GEN_CONF, HPET_CFG_ENABLE);
    r.advanceNs(100n);
    expect(r.edges).toEqual([[20, true]]);
    r.write64(HPET_GEN_CONF, 0n);
    expect(r.edges).toEqual([
      [20, true],
      [20, false],
    ]);
    expect(r.read64(HPET_GINTR_STA)).toBe(4n); // the status stays
    r.write64(HPET_GEN_CONF, HPET_CFG_ENABLE);
    expect(r.edges.at(-1)).toEqual([20, true]);
  });

  it('gives no deadline for a timer whose interrupt is off, or while the counter is halted', () => {
    const r = new Rig();
    r.write64(timer(1, CONF), 0n);
    r.write64(timer(1, CMP), 50n);
    r.write64(HPET_GEN_CONF, HPET_CFG_ENABLE);
    expect(r.hpet.nextDeadlineNs()).toBeUndefined();
    r.write64(timer(1, CONF), HPET_TN_INT_ENB | (17n << HPET_TN_INT_ROUTE_SHIFT));
    expect(r.hpet.nextDeadlineNs()).toBe(r.ns + 500n);
    r.write64(HPET_GEN_CONF, 0n);
    expect(r.hpet.nextDeadlineNs()).toBeUndefined();
  });
});

describe('HPET: state and restore', () => {
  it('round-trips through JSON into a new HPET whose host clock is elsewhere: the counter and comparators go on', () => {
    const r = new Rig();
    r.write64(HPET_GEN_CONF, HPET_CFG_LEGACY);
    r.write64(timer(0, CONF), HPET_TN_INT_ENB | HPET_TN_TYPE_PERIODIC | HPET_TN_VAL_SET);
    r.write64(timer(0, CMP), 1000n);
    r.write64(timer(0, CMP), 1000n);
    r.write64(timer(2, CONF), HPET_TN_INT_ENB | HPET_TN_INT_TYPE_LEVEL | (21n << HPET_TN_INT_ROUTE_SHIFT));
    r.write64(timer(2, CMP), 300n);
    r.write64(HPET_GEN_CONF, HPET_CFG_ENABLE | HPET_CFG_LEGACY);
    r.advanceNs(4000n); // counter 400: timer 2 fired (level, still asserted), timer 0 due at 1000
    const saved = JSON.parse(JSON.stringify(r.hpet.state())) as HpetState;
    expect(saved.counter).toBe('400');

    const other = new Rig();
    other.ns = 77n * 10n ** 12n;
    other.hpet.restore(saved);
    expect(other.legacy).toEqual([true]); // the board hears that the HPET owns IRQ0 again
    expect(other.edges).toEqual([[21, true]]); // the level-mode line comes back up
    expect(other.read64(HPET_MAIN_COUNTER)).toBe(400n);
    expect(other.read64(HPET_GINTR_STA)).toBe(4n);
    expect(other.hpet.nextDeadlineNs()).toBe(other.ns + 6000n);
    other.advanceNs(6000n);
    expect(other.edges.slice(1)).toEqual([
      [2, true],
      [2, false],
    ]);
    expect(other.read64(timer(0, CMP))).toBe(2000n);
    expect(other.hpet.state().timers[1]).toEqual(saved.timers[1]);
  });

  it('keeps a match that fell due since the last poll pending through a save, and delivers it after the restore', () => {
    const r = new Rig();
    r.write64(timer(1, CONF), HPET_TN_INT_ENB | (17n << HPET_TN_INT_ROUTE_SHIFT));
    r.write64(timer(1, CMP), 100n);
    r.write64(HPET_GEN_CONF, HPET_CFG_ENABLE);
    r.ns += 2000n; // counter 200: due, not polled
    const saved = JSON.parse(JSON.stringify(r.hpet.state())) as HpetState;
    expect(r.edges).toEqual([]);
    const other = new Rig();
    other.hpet.restore(saved);
    expect(other.edges).toEqual([]);
    other.hpet.poll();
    expect(other.edges).toEqual([
      [17, true],
      [17, false],
    ]);
  });

  it('refuses malformed state with a UsageError and keeps its own', () => {
    const r = new Rig();
    const good = r.hpet.state();
    const timersWith = (t: Partial<HpetTimerState>): HpetTimerState[] => [{ ...good.timers[0]!, ...t }, good.timers[1]!, good.timers[2]!];
    const bad: unknown[] = [
      undefined,
      42,
      { ...good, config: 1 },
      { ...good, config: '4' }, // not a GEN_CONF bit
      { ...good, counter: '-1' },
      { ...good, counter: (2n ** 64n).toString() },
      { ...good, isr: '8' },
      { ...good, timers: good.timers.slice(1) },
      { ...good, timers: timersWith({ config: '0' }) }, // lost its capability bits
      {
        ...good,
        timers: [
          good.timers[0]!,
          { ...good.timers[1]!, config: (BigInt(good.timers[1]!.config) | HPET_TN_TYPE_PERIODIC).toString() },
          good.timers[2]!,
        ],
      },
      { ...good, timers: timersWith({ nextFire: 'soon' }) },
      { ...good, timers: timersWith({ comparator: undefined as unknown as string }) },
    ];
    for (const state of bad) expect(() => r.hpet.restore(state as HpetState), JSON.stringify(state)).toThrow(UsageError);
    expect(r.hpet.state()).toEqual(good);
  });
});

describe('HPET legacy replacement on the PC chipset', () => {
  it("calls the board's hook (the PIT's IRQ0) and takes IRQ8 from the RTC while LEG_RT_CNF is set", () => {
    const pio = new Bus<PioDevice>(PIO_ADDRESS_SPACE_SIZE);
    const mmio = new Bus<MmioDevice>();
    const lines: [number, boolean][] = [];
    const legacy: boolean[] = [];
    const chipset = registerPcChipset(
      { pio, mmio },
      {
        connectIrq: (irq) => (level) => lines.push([irq, level]),
        memorySize: 64 << 20,
        cpus: 1,
        reset: () => {},
        sleep: () => {},
        hpetLegacy: (on) => legacy.push(on),
      },
    );
    const rtc = chipset.rtc!;
    rtc.writeRegister(RTC_REG_B, REG_B_24H | REG_B_UIE);
    const conf = new Uint8Array(8);
    conf[0] = Number(HPET_CFG_LEGACY);
    chipset.hpet.mmioWrite(HPET_GEN_CONF, conf);
    expect(legacy).toEqual([true]);
    // The RTC's update interrupt comes while the HPET owns IRQ8: IRQF sets, IRQ 8 stays low.
    expect(chipset.nextDeadlineNs()).toBe(rtc.nextDeadlineNs());
    // On the host's clock: a state 1 ns before the update makes it due at once.
    rtc.restore({ ...rtc.state(), phaseNs: 999_999_999 });
    while (!rtc.irq) chipset.poll();
    expect(lines.filter(([irq]) => irq === 8)).toEqual([]);
    conf[0] = 0;
    chipset.hpet.mmioWrite(HPET_GEN_CONF, conf);
    expect(legacy).toEqual([true, false]);
    expect(lines.filter(([irq]) => irq === 8)).toEqual([[8, true]]); // given back: the pending interrupt arrives
  });
});
