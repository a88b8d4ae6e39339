/**
 * The keyboard BIOS: INT 09h (IRQ1) takes each scan code from the i8042, tracks Shift, Ctrl,
 * Alt and the lock keys in the BDA and stores the key word in the BDA's 16-entry ring buffer
 * (0040:001E, head and tail at 0040:001A/1C); INT 16h reads it: 00h/10h wait for a key, 01h/11h
 * look at the next (ZF set when none), 02h/12h shift flags, 03h typematic, 05h store a key,
 * 09h capabilities, 0Ah keyboard ID. The 00h/01h pair gives the XT view of the enhanced keys
 * (E0h in AL becomes 00h; F11/F12 and other enhanced-only keys are dropped), 10h/11h the whole.
 */
import { I8042_DATA_PORT } from '../devices/i8042.js';
import { KBD_ID, KBD_ID_TRANSLATED } from '../devices/i8042.js';
import { SCAN_BREAK, SCAN_CODE_MASK, SCAN_PREFIX_E0, SCAN_PREFIX_E1 } from '../devices/scancodes.js';
import type { TrapFrame } from './frame.js';
import {
  BDA_KBD_BUFFER,
  BDA_KBD_BUFFER_END,
  BDA_KBD_BUFFER_END_PTR,
  BDA_KBD_BUFFER_START_PTR,
  BDA_KBD_FLAGS0,
  BDA_KBD_FLAGS1,
  BDA_KBD_FLAGS2,
  BDA_KBD_HEAD,
  BDA_KBD_TAIL,
  BDA_RESET_FLAG,
  KBD2_LAST_E0,
  KBD2_RALT,
  KBD2_RCTRL,
  KBD_ALT,
  KBD_CAPS_LOCK,
  KBD_CTRL,
  KBD_INSERT,
  KBD_LALT_DOWN,
  KBD_LCTRL_DOWN,
  KBD_LSHIFT,
  KBD_NUM_LOCK,
  KBD_RSHIFT,
  KBD_SCROLL_LOCK,
} from './layout.js';
import {
  keyWord,
  KEY_EXTENDED_ASCII,
  NO_KEY,
  SCAN_ALT,
  SCAN_CAPS_LOCK,
  SCAN_CTRL,
  SCAN_DELETE,
  SCAN_INSERT,
  SCAN_LSHIFT,
  SCAN_NUM_LOCK,
  SCAN_RSHIFT,
  SCAN_SCROLL_LOCK,
} from './keymap.js';
import type { BiosCallState, BiosMachine, CallResult } from './machine.js';
import type { GuestRam } from './memory.js';

/** BDA 0x18: lock keys held down. */
const KBD1_SCROLL_DOWN = 0x10;
const KBD1_NUM_DOWN = 0x20;
const KBD1_CAPS_DOWN = 0x40;
const KBD1_INSERT_DOWN = 0x80;
/** The Pause key: E1 1D 45 E1 9D C5, five bytes after the first E1. */
const PAUSE_SEQUENCE_REST = 5;
/** The warm-boot flag Ctrl-Alt-Del leaves in the BDA. */
export const WARM_BOOT = 0x1234;
/** AH=09h: functions 0Ah and 10h-12h are there. */
const KBD_CAPABILITIES = 0x30;
/** Enhanced-only keys that the XT functions (00h/01h) drop: F11, F12 and their shifted forms. */
const FIRST_ENHANCED_ONLY_SCAN = 0x85;
const LAST_ENHANCED_ONLY_SCAN = 0x8c;
const GRAY_KEY_SCAN = 0xe0; // keypad Enter and / in the scan byte of their key words
const SCAN_KP_ENTER = 0x1c;
const SCAN_KP_SLASH = 0x35;

function bufferBounds(ram: GuestRam): { start: number; end: number } {
  const start = ram.bda16(BDA_KBD_BUFFER_START_PTR) || BDA_KBD_BUFFER;
  const end = ram.bda16(BDA_KBD_BUFFER_END_PTR) || BDA_KBD_BUFFER_END;
  return start < end ? { start, end } : { start: BDA_KBD_BUFFER, end: BDA_KBD_BUFFER_END };
}

/** Whether no key waits in the BDA buffer (the console types the next key only then). */
export function keyBufferEmpty(ram: GuestRam): boolean {
  return ram.bda16(BDA_KBD_HEAD) === ram.bda16(BDA_KBD_TAIL);
}

/** Appends a key word; false when the buffer is full (a real BIOS beeps). */
export function pushKey(ram: GuestRam, word: number): boolean {
  const { start, end } = bufferBounds(ram);
  const tail = ram.bda16(BDA_KBD_TAIL);
  let next = tail + 2;
  if (next >= end) next = start;
  if (next === ram.bda16(BDA_KBD_HEAD)) return false;
  ram.setBda16(tail, word);
  ram.setBda16(BDA_KBD_TAIL, next);
  return true;
}

function peekKey(ram: GuestRam): number | undefined {
  const head = ram.bda16(BDA_KBD_HEAD);
  return head === ram.bda16(BDA_KBD_TAIL) ? undefined : ram.bda16(head);
}

function dropKey(ram: GuestRam): void {
  const { start, end } = bufferBounds(ram);
  let next = ram.bda16(BDA_KBD_HEAD) + 2;
  if (next >= end) next = start;
  ram.setBda16(BDA_KBD_HEAD, next);
}

function enhancedOnly(word: number): boolean {
  const scan = word >>> 8;
  return scan >= FIRST_ENHANCED_ONLY_SCAN && scan <= LAST_ENHANCED_ONLY_SCAN;
}

/** A key word as the XT functions report it: E0h codes become their XT equivalents. */
function xtKey(word: number): number {
  const scan = word >>> 8;
  const ascii = word & 0xff;
  if (scan === GRAY_KEY_SCAN) return ((ascii === 0x2f ? SCAN_KP_SLASH : SCAN_KP_ENTER) << 8) | ascii;
  if (ascii === KEY_EXTENDED_ASCII && scan !== 0) return scan << 8;
  return word;
}

/** The next key for 00h/01h (XT) or 10h/11h (enhanced), dropping what the XT view does not have. */
function nextKey(ram: GuestRam, enhanced: boolean): number | undefined {
  for (;;) {
    const word = peekKey(ram);
    if (word === undefined) return undefined;
    if (enhanced) return word;
    if (!enhancedOnly(word)) return xtKey(word);
    dropKey(ram);
  }
}

export function int16(m: BiosMachine, f: TrapFrame): CallResult {
  const { ram } = m;
  m.router?.keyboardUsed();
  const result = ((): CallResult => {
    switch (f.ah) {
      case 0x00:
      case 0x10: {
        const word = nextKey(ram, f.ah === 0x10);
        if (word === undefined) return 'wait';
        dropKey(ram);
        f.ax = word;
        return 'done';
      }
      case 0x01:
      case 0x11: {
        const word = nextKey(ram, f.ah === 0x11);
        f.zero = word === undefined;
        if (word !== undefined) f.ax = word;
        return 'done';
      }
      case 0x02:
        f.al = ram.bda8(BDA_KBD_FLAGS0);
        return 'done';
      case 0x12: {
        const flags1 = ram.bda8(BDA_KBD_FLAGS1);
        const flags2 = ram.bda8(BDA_KBD_FLAGS2);
        f.al = ram.bda8(BDA_KBD_FLAGS0);
        f.ah =
          (flags1 & KBD_LCTRL_DOWN ? 0x01 : 0) |
          (flags1 & KBD_LALT_DOWN ? 0x02 : 0) |
          (flags2 & KBD2_RCTRL ? 0x04 : 0) |
          (flags2 & KBD2_RALT ? 0x08 : 0) |
          (flags1 & (KBD1_SCROLL_DOWN | KBD1_NUM_DOWN | KBD1_CAPS_DOWN));
        return 'done';
      }
      case 0x03:
        return 'done'; // typematic rate: keys here repeat at the pace they arrive
      case 0x05:
        f.al = pushKey(ram, f.cx) ? 0 : 1;
        return 'done';
      case 0x09:
        f.al = KBD_CAPABILITIES;
        return 'done';
      case 0x0a:
        f.bx = (KBD_ID_TRANSLATED << 8) | KBD_ID[0];
        return 'done';
      default:
        return 'unsupported';
    }
  })();
  m.pollKeyboard();
  return result;
}

/** INT 09h: one byte from the keyboard controller into the shift state or the key buffer. */
export function int09(m: BiosMachine, _f: TrapFrame, state: BiosCallState): CallResult {
  const { ram } = m;
  const code = m.portIn(I8042_DATA_PORT, 1) & 0xff;
  if (state.skipScanBytes > 0) {
    state.skipScanBytes--;
    return 'done';
  }
  if (code === SCAN_PREFIX_E1) {
    state.skipScanBytes = PAUSE_SEQUENCE_REST;
    return 'done';
  }
  let flags2 = ram.bda8(BDA_KBD_FLAGS2);
  if (code === SCAN_PREFIX_E0) {
    ram.setBda8(BDA_KBD_FLAGS2, flags2 | KBD2_LAST_E0);
    return 'done';
  }
  const extended = (flags2 & KBD2_LAST_E0) !== 0;
  flags2 &= ~KBD2_LAST_E0;
  const scan = code & SCAN_CODE_MASK;
  const released = (code & SCAN_BREAK) !== 0;
  let flags0 = ram.bda8(BDA_KBD_FLAGS0);
  let flags1 = ram.bda8(BDA_KBD_FLAGS1);
  const hold = (bits: number, on: boolean, value: number): number => (on ? value | bits : value & ~bits);
  let typed = false;
  switch (scan) {
    case SCAN_LSHIFT:
    case SCAN_RSHIFT:
      // E0 2A / E0 36 are the fake shifts around gray keys: no shift state of their own.
      if (!extended) flags0 = hold(scan === SCAN_LSHIFT ? KBD_LSHIFT : KBD_RSHIFT, !released, flags0);
      break;
    case SCAN_CTRL:
      if (extended) flags2 = hold(KBD2_RCTRL, !released, flags2);
      else flags1 = hold(KBD_LCTRL_DOWN, !released, flags1);
      flags0 = hold(KBD_CTRL, (flags1 & KBD_LCTRL_DOWN) !== 0 || (flags2 & KBD2_RCTRL) !== 0, flags0);
      break;
    case SCAN_ALT:
      if (extended) flags2 = hold(KBD2_RALT, !released, flags2);
      else flags1 = hold(KBD_LALT_DOWN, !released, flags1);
      flags0 = hold(KBD_ALT, (flags1 & KBD_LALT_DOWN) !== 0 || (flags2 & KBD2_RALT) !== 0, flags0);
      break;
    case SCAN_CAPS_LOCK:
    case SCAN_NUM_LOCK:
    case SCAN_SCROLL_LOCK: {
      const [lock, down] =
        scan === SCAN_CAPS_LOCK
          ? [KBD_CAPS_LOCK, KBD1_CAPS_DOWN]
          : scan === SCAN_NUM_LOCK
            ? [KBD_NUM_LOCK, KBD1_NUM_DOWN]
            : [KBD_SCROLL_LOCK, KBD1_SCROLL_DOWN];
      if (!released && !(flags1 & down)) flags0 ^= lock; // toggles on the press, not on its repeats
      flags1 = hold(down, !released, flags1);
      break;
    }
    default:
      typed = !released;
  }
  if (typed) {
    const mods = {
      shift: (flags0 & (KBD_LSHIFT | KBD_RSHIFT)) !== 0,
      ctrl: (flags0 & KBD_CTRL) !== 0,
      alt: (flags0 & KBD_ALT) !== 0,
      capsLock: (flags0 & KBD_CAPS_LOCK) !== 0,
      numLock: (flags0 & KBD_NUM_LOCK) !== 0,
    };
    if (scan === SCAN_DELETE && mods.ctrl && mods.alt) {
      ram.setBda16(BDA_RESET_FLAG, WARM_BOOT);
      m.reset();
    }
    if (scan === SCAN_INSERT && !(flags1 & KBD1_INSERT_DOWN) && (extended || !mods.numLock || mods.shift)) flags0 ^= KBD_INSERT;
    const word = keyWord(scan, extended, mods);
    if (word !== NO_KEY) pushKey(ram, word);
  }
  if (scan === SCAN_INSERT) flags1 = hold(KBD1_INSERT_DOWN, !released, flags1);
  ram.setBda8(BDA_KBD_FLAGS0, flags0);
  ram.setBda8(BDA_KBD_FLAGS1, flags1);
  ram.setBda8(BDA_KBD_FLAGS2, flags2);
  return 'done';
}
