/**
 * INT 1Ah, time of day: the BDA tick count the timer interrupt advances (00h read, 01h set) and
 * the CMOS real-time clock in BCD (02h/03h time, 04h/05h date). The alarm (06h/07h) is not
 * there: its calls fail with CF set, as on a machine whose RTC cannot interrupt.
 */
import {
  fromBcd,
  REG_B_DM_BINARY,
  RTC_CENTURY,
  RTC_DAY_OF_MONTH,
  RTC_HOURS,
  RTC_MINUTES,
  RTC_MONTH,
  RTC_REG_B,
  RTC_SECONDS,
  RTC_YEAR,
  toBcd,
  type Mc146818Rtc,
} from '../devices/rtc.js';
import type { TrapFrame } from './frame.js';
import { BDA_MIDNIGHT, BDA_TICKS, TICK_MS, TICKS_PER_DAY } from './layout.js';
import type { BiosMachine, CallResult } from './machine.js';

/** Reads a clock register as BCD, whatever format status B selects. */
function readBcd(rtc: Mc146818Rtc, index: number): number {
  const value = rtc.readRegister(index);
  return rtc.readRegister(RTC_REG_B) & REG_B_DM_BINARY ? toBcd(value) : value;
}

function writeBcd(rtc: Mc146818Rtc, index: number, bcd: number): void {
  rtc.writeRegister(index, rtc.readRegister(RTC_REG_B) & REG_B_DM_BINARY ? fromBcd(bcd) : bcd);
}

/** Ticks since midnight at host time `ms` (local time), as POST seeds the BDA. */
export function ticksSinceMidnight(ms: number): number {
  const d = new Date(ms);
  const sinceMidnight = ((d.getHours() * 60 + d.getMinutes()) * 60 + d.getSeconds()) * 1000 + d.getMilliseconds();
  return Math.min(Math.floor(sinceMidnight / TICK_MS), TICKS_PER_DAY - 1);
}

export function int1a(m: BiosMachine, f: TrapFrame): CallResult {
  const { ram, rtc } = m;
  switch (f.ah) {
    case 0x00: {
      const ticks = ram.bda32(BDA_TICKS);
      f.cx = ticks >>> 16;
      f.dx = ticks & 0xffff;
      f.al = ram.bda8(BDA_MIDNIGHT);
      ram.setBda8(BDA_MIDNIGHT, 0); // reading reports the rollover once
      f.carry = false;
      return 'done';
    }
    case 0x01:
      ram.setBda32(BDA_TICKS, ((f.cx << 16) | f.dx) >>> 0);
      ram.setBda8(BDA_MIDNIGHT, 0);
      f.ok();
      return 'done';
    case 0x02:
      f.ch = readBcd(rtc, RTC_HOURS);
      f.cl = readBcd(rtc, RTC_MINUTES);
      f.dh = readBcd(rtc, RTC_SECONDS);
      f.dl = 0; // no daylight saving
      f.ok();
      return 'done';
    case 0x03:
      writeBcd(rtc, RTC_HOURS, f.ch);
      writeBcd(rtc, RTC_MINUTES, f.cl);
      writeBcd(rtc, RTC_SECONDS, f.dh);
      f.ok();
      return 'done';
    case 0x04:
      f.ch = readBcd(rtc, RTC_CENTURY);
      f.cl = readBcd(rtc, RTC_YEAR);
      f.dh = readBcd(rtc, RTC_MONTH);
      f.dl = readBcd(rtc, RTC_DAY_OF_MONTH);
      f.ok();
      return 'done';
    case 0x05:
      writeBcd(rtc, RTC_CENTURY, f.ch);
      writeBcd(rtc, RTC_YEAR, f.cl);
      writeBcd(rtc, RTC_MONTH, f.dh);
      writeBcd(rtc, RTC_DAY_OF_MONTH, f.dl);
      f.ok();
      return 'done';
    default:
      return 'unsupported';
  }
}
