/**
 * The devices the BIOS drives and programs poke directly: the VGA's registers (CRTC, attribute
 * flip-flop, DAC, retrace), the CMOS real-time clock, and the keyboard behind the i8042.
 */
import { describe, expect, it } from 'vitest';
import {
  Mc146818Rtc,
  REG_A_UIP,
  REG_B_24H,
  REG_B_DM_BINARY,
  REG_B_SET,
  RTC_HOURS,
  RTC_MINUTES,
  RTC_SECONDS,
  RTC_REG_A,
  RTC_REG_B,
  RTC_YEAR,
  RTC_CENTURY,
  CMOS_EXTMEM_LOW,
  CMOS_EXTMEM_HIGH,
  CMOS_FLOPPY_TYPES,
  type RtcConfig,
} from '../../src/devices/rtc.js';
import {
  I8042,
  I8042_CCB_KBDINT,
  I8042_CCB_XLATE,
  I8042_STR_OBF,
  KBD_BYTE_GAP_MS,
  KBD_IRQ_RETRIGGER_MS,
  type KeyboardSource,
  KBD_REPLY_BUFFER,
} from '../../src/devices/i8042.js';
import { scanCodeSet1ToSet2 } from '../../src/devices/scancodes.js';
import { STATUS1_VRETRACE, Vga, VGA_DAC, VGA_ATTR } from '../../src/devices/vga.js';

describe('Vga', () => {
  const CRTC_INDEX = 0x24;
  const CRTC_DATA = 0x25;
  it('has the CRTC at 0x3D4/0x3D5 with cursor and start registers, also as one word write', () => {
    const vga = new Vga();
    vga.pioWrite(CRTC_INDEX, 1, 0x0e);
    vga.pioWrite(CRTC_DATA, 1, 0x01);
    vga.pioWrite(CRTC_INDEX, 2, 0x400f); // index 0Fh, data 40h
    expect(vga.cursor.location).toBe(0x0140);
    vga.pioWrite(CRTC_INDEX, 1, 0x0e);
    expect(vga.pioRead(CRTC_DATA, 1)).toBe(0x01);
    vga.pioWrite(CRTC_INDEX, 2, 0x100c);
    expect(vga.startAddress).toBe(0x1000);
    // Mono addressing moves the CRTC to 0x3B4: 0x3D4 then reads as nothing.
    vga.pioWrite(0x12, 1, 0x66);
    expect(vga.pioRead(CRTC_INDEX, 1)).toBe(0xff);
    vga.pioWrite(0x04, 1, 0x0f);
    expect(vga.pioRead(0x05, 1)).toBe(0x40);
  });

  it('resets the attribute flip-flop on an input status 1 read and alternates index and data', () => {
    const vga = new Vga();
    vga.pioRead(0x2a, 1);
    vga.pioWrite(0x10, 1, 0x01); // index 1
    vga.pioWrite(0x10, 1, 0x3f); // data
    expect(vga.regs[VGA_ATTR + 1]).toBe(0x3f);
    vga.pioWrite(0x10, 1, 0x02);
    vga.pioRead(0x2a, 1); // back to index
    vga.pioWrite(0x10, 1, 0x03);
    vga.pioWrite(0x10, 1, 0x11);
    expect(vga.regs[VGA_ATTR + 3]).toBe(0x11);
  });

  it('auto-increments the DAC through R, G, B and the next entry', () => {
    const vga = new Vga();
    vga.pioWrite(0x18, 1, 5);
    for (const c of [1, 2, 3, 4, 5, 6]) vga.pioWrite(0x19, 1, c);
    expect([...vga.regs.subarray(VGA_DAC + 15, VGA_DAC + 21)]).toEqual([1, 2, 3, 4, 5, 6]);
    vga.pioWrite(0x17, 1, 6);
    expect([vga.pioRead(0x19, 1), vga.pioRead(0x19, 1), vga.pioRead(0x19, 1)]).toEqual([4, 5, 6]);
    expect(vga.pioRead(0x17, 1)).toBe(3); // DAC state: reading
  });

  it('shows vertical retrace for a short part of each 70 Hz frame', () => {
    let now = 0;
    const vga = new Vga(undefined, () => now);
    let retrace = 0;
    const samples = 1000;
    for (let i = 0; i < samples; i++) {
      now = (i * 14.27) / samples;
      if (vga.pioRead(0x2a, 1) & STATUS1_VRETRACE) retrace++;
    }
    expect(retrace).toBeGreaterThan(0);
    expect(retrace).toBeLessThan(samples / 50);
  });

  it('gives the mode-3 text palette and restores its state', () => {
    const vga = new Vga();
    const palette = vga.textPalette();
    expect(palette[0]).toEqual([0, 0, 0]);
    expect(palette[1]).toEqual([0, 0, 170]);
    expect(palette[6]).toEqual([170, 85, 0]); // brown
    expect(palette[15]).toEqual([255, 255, 255]);
    const other = new Vga();
    vga.setCursorLocation(123);
    other.restore(vga.state());
    expect(other.cursor.location).toBe(123);
  });
});

describe('the CMOS clock the BIOS uses (MC146818, local time)', () => {
  const time = new Date(2025, 11, 31, 23, 59, 58, 500).getTime();
  const NS_PER_MS = 1_000_000;
  /** An RTC whose host clock starts at `time` and moves by `clock.ms`. */
  const cmos = (config: RtcConfig, clock = { ms: 0 }): Mc146818Rtc =>
    new Mc146818Rtc({ nowNs: () => BigInt(Math.round(clock.ms * NS_PER_MS)), wallClockMs: () => time }, { base: 'localtime', ...config });
  const read = (rtc: Mc146818Rtc, index: number): number => {
    rtc.pioWrite(0, 1, index);
    return rtc.pioRead(1, 1);
  };
  const write = (rtc: Mc146818Rtc, index: number, value: number): void => {
    rtc.pioWrite(0, 1, index);
    rtc.pioWrite(1, 1, value);
  };

  it('reads the host time in BCD, 24-hour, with the century', () => {
    const rtc = cmos({ memorySize: 16 << 20 });
    expect([read(rtc, RTC_HOURS), read(rtc, RTC_MINUTES), read(rtc, RTC_SECONDS)]).toEqual([0x23, 0x59, 0x58]);
    expect([read(rtc, RTC_CENTURY), read(rtc, RTC_YEAR)]).toEqual([0x20, 0x25]);
  });

  it('reads binary and 12-hour forms as status B asks', () => {
    const rtc = cmos({ memorySize: 16 << 20 });
    write(rtc, RTC_REG_B, REG_B_DM_BINARY);
    expect(read(rtc, RTC_HOURS)).toBe(0x80 | 11); // 11 PM
    write(rtc, RTC_REG_B, REG_B_DM_BINARY | REG_B_24H);
    expect(read(rtc, RTC_MINUTES)).toBe(59);
  });

  it('keeps a time the guest sets as an offset from the host clock', () => {
    const clock = { ms: 0 };
    const rtc = cmos({ memorySize: 16 << 20 }, clock);
    write(rtc, RTC_REG_B, REG_B_SET | REG_B_24H);
    write(rtc, RTC_HOURS, 0x08);
    write(rtc, RTC_MINUTES, 0x30);
    write(rtc, RTC_REG_B, REG_B_24H);
    clock.ms += 60_000;
    expect([read(rtc, RTC_HOURS), read(rtc, RTC_MINUTES)]).toEqual([0x08, 0x31]);
  });

  it('sets UIP just before the second changes, and reports memory and floppies', () => {
    const clock = { ms: 0 };
    const rtc = cmos({ memorySize: 32 << 20, floppies: [4, 0] }, clock);
    expect(read(rtc, RTC_REG_A) & REG_A_UIP).toBe(0);
    clock.ms = 499.9; // 999.9 ms into the second
    expect(read(rtc, RTC_REG_A) & REG_A_UIP).toBe(REG_A_UIP);
    clock.ms = 500; // the update: the next second
    expect(read(rtc, RTC_REG_A) & REG_A_UIP).toBe(0);
    expect(read(rtc, RTC_SECONDS)).toBe(0x59);
    expect(read(rtc, CMOS_EXTMEM_LOW) | (read(rtc, CMOS_EXTMEM_HIGH) << 8)).toBe(31 * 1024);
    expect(read(rtc, CMOS_FLOPPY_TYPES)).toBe(0x40);
  });
});

describe('I8042 keyboard', () => {
  const source = (strokes: number[][], ready = (): boolean => true): KeyboardSource => ({
    nextStroke: () => (ready() ? strokes.shift() : undefined),
    pending: () => strokes.length > 0,
  });
  const setup = (strokes: number[][], ready?: () => boolean) => {
    let now = 100;
    const levels: boolean[] = [];
    const kbc = new I8042(() => {}, { keyboard: source(strokes, ready), irq: (l) => levels.push(l), now: () => now });
    kbc.pioWrite(4, 1, 0x60);
    kbc.pioWrite(0, 1, I8042_CCB_KBDINT | I8042_CCB_XLATE | 0x04);
    return { kbc, levels, advance: (ms: number) => (now += ms) };
  };

  it('keeps at most KBD_REPLY_BUFFER unread command replies (a guest that never reads cannot grow it)', () => {
    const { kbc } = setup([]);
    for (let i = 0; i < 100_000; i++) kbc.pioWrite(0, 1, 0xee); // ECHO: each answers 0xEE
    const state = kbc.state() as { keyboard?: { replies: number[] } };
    expect(state.keyboard?.replies.length ?? 0).toBeLessThanOrEqual(KBD_REPLY_BUFFER);
  });

  it('delivers a keystroke byte by byte, raising IRQ1 for each, a byte-time apart', () => {
    const { kbc, levels, advance } = setup([[0x1e, 0x9e]]);
    kbc.poll();
    expect(kbc.pioRead(4, 1) & I8042_STR_OBF).toBe(I8042_STR_OBF);
    expect(levels).toEqual([true]);
    expect(kbc.pioRead(0, 1)).toBe(0x1e);
    expect(levels).toEqual([true, false]);
    kbc.poll(); // too soon: the keyboard is still sending
    expect(kbc.pioRead(4, 1) & I8042_STR_OBF).toBe(0);
    advance(KBD_BYTE_GAP_MS);
    kbc.poll();
    expect(kbc.pioRead(0, 1)).toBe(0x9e);
    expect(kbc.wantsPoll).toBe(false);
  });

  it('types the next keystroke only when the source is ready (the guest took the last key)', () => {
    let ready = false;
    const { kbc } = setup([[0x1e, 0x9e]], () => ready);
    kbc.poll();
    expect(kbc.pioRead(4, 1) & I8042_STR_OBF).toBe(0);
    expect(kbc.wantsPoll).toBe(true);
    ready = true;
    kbc.poll();
    expect(kbc.pioRead(0, 1)).toBe(0x1e);
  });

  it('sends scan code set 2 when translation is off', () => {
    let ready = false;
    const { kbc, advance } = setup([[0xe0, 0x48, 0xe0, 0xc8]], () => ready);
    kbc.pioWrite(4, 1, 0x60);
    kbc.pioWrite(0, 1, I8042_CCB_KBDINT);
    ready = true;
    const bytes: number[] = [];
    for (let i = 0; i < 5; i++) {
      advance(KBD_BYTE_GAP_MS);
      kbc.poll();
      bytes.push(kbc.pioRead(0, 1));
    }
    expect(bytes).toEqual([0xe0, 0x75, 0xe0, 0xf0, 0x75]);
  });

  it('answers keyboard commands: ACK, identify, echo, reset', () => {
    const { kbc, advance } = setup([]);
    const reply = (): number[] => {
      const out: number[] = [];
      for (;;) {
        advance(KBD_BYTE_GAP_MS);
        kbc.poll();
        if (!(kbc.pioRead(4, 1) & I8042_STR_OBF)) return out;
        out.push(kbc.pioRead(0, 1));
      }
    };
    kbc.pioWrite(0, 1, 0xf2);
    expect(reply()).toEqual([0xfa, 0xab, 0x41]); // translated ID
    kbc.pioWrite(0, 1, 0xee);
    expect(reply()).toEqual([0xee]);
    kbc.pioWrite(0, 1, 0xed);
    kbc.pioWrite(0, 1, 0x02);
    expect(reply()).toEqual([0xfa, 0xfa]);
    expect(kbc.keyboardLeds).toBe(0x02);
    kbc.pioWrite(0, 1, 0xff);
    expect(reply()).toEqual([0xfa, 0xaa]);
    kbc.pioWrite(0, 1, 0x12);
    expect(reply()).toEqual([0xfe]);
  });

  it('pulses IRQ1 again when a keyboard byte waits unread, so a lost edge cannot stall the keyboard', () => {
    const { kbc, levels, advance } = setup([[0x1e, 0x9e]]);
    kbc.poll();
    expect(levels).toEqual([true]);
    advance(KBD_IRQ_RETRIGGER_MS - 1);
    kbc.poll();
    expect(levels).toEqual([true]);
    advance(1);
    kbc.poll();
    expect(levels).toEqual([true, false, true]);
    expect(kbc.pioRead(0, 1)).toBe(0x1e);
  });

  it('converts set 1 to set 2 with F0-prefixed breaks', () => {
    expect(scanCodeSet1ToSet2([0x1e, 0x9e, 0x01])).toEqual([0x1c, 0xf0, 0x1c, 0x76]);
  });
});
