/**
 * The console's input as a PC keyboard: bytes from stdin (or a file) become keystrokes in scan
 * code set 1, typed at the pace the guest consumes them. ASCII maps to the US layout's keys
 * (Shift and Ctrl pressed around them as needed; CR, LF and CR LF are Enter, DEL and BS are
 * Backspace); a terminal's escape sequences become the keys they stand for: ESC [ A-D and ESC O
 * A-D arrows, ESC [ H/F and ESC [ 1~/4~ Home/End, ESC [ 2~/3~/5~/6~ Insert/Delete/PgUp/PgDn (the
 * gray, E0-prefixed keys), ESC O P-S and ESC [ 11~-24~ F1-F12, ESC [ [ A-E the Linux console's
 * F1-F5, with xterm's `;2` (Shift), `;3` (Alt), `;5` (Ctrl) modifiers. A lone ESC is the Esc key
 * once ESC_TIMEOUT_MS pass with nothing after it (or at once if the next byte starts no sequence).
 *
 * ConsoleRouter decides where a shared input stream (COM1's) goes: to the keyboard, or to the
 * UART when the guest reads its serial port instead, as the issue's console contract says.
 */
import type { SerialHost } from '../devices/serial16550.js';
import type { KeyboardSource } from '../devices/i8042.js';
import { SCAN_BREAK, SCAN_PREFIX_E0 } from '../devices/scancodes.js';
import {
  asciiKey,
  SCAN_ALT,
  SCAN_CTRL,
  SCAN_DELETE,
  SCAN_DOWN,
  SCAN_END,
  SCAN_ESC,
  SCAN_F1,
  SCAN_F11,
  SCAN_F12,
  SCAN_HOME,
  SCAN_INSERT,
  SCAN_LEFT,
  SCAN_LSHIFT,
  SCAN_PAGE_DOWN,
  SCAN_PAGE_UP,
  SCAN_RIGHT,
  SCAN_UP,
} from './keymap.js';

/** How long a lone ESC waits for the rest of an escape sequence. */
export const ESC_TIMEOUT_MS = 50;
const ESC = 0x1b;
const CR = 0x0d;
const LF = 0x0a;
const CSI = 0x5b; // '['
const SS3 = 0x4f; // 'O'
const TILDE = 0x7e;
const SEMICOLON = 0x3b;
/** Longest escape sequence worth waiting for (ESC [ 2 4 ; 5 ~). */
const MAX_SEQUENCE = 8;

/** A byte stream to take keys from. */
export interface ConsoleBytes {
  /** The next byte, or -1 when none is waiting. */
  shift(): number;
  /** Bytes waiting. */
  available(): number;
}

/** One key as typed: its make code, the E0 prefix (gray keys), and the modifiers held with it. */
export interface KeyPress {
  scan: number;
  extended?: boolean;
  shift?: boolean;
  ctrl?: boolean;
  alt?: boolean;
}

/** The set 1 bytes of a key press and release, modifiers around it. */
export function keyStroke(key: KeyPress): number[] {
  const mods: number[] = [];
  if (key.ctrl) mods.push(SCAN_CTRL);
  if (key.alt) mods.push(SCAN_ALT);
  if (key.shift) mods.push(SCAN_LSHIFT);
  const prefix = key.extended ? [SCAN_PREFIX_E0] : [];
  return [...mods, ...prefix, key.scan, ...prefix, key.scan | SCAN_BREAK, ...mods.reverse().map((m) => m | SCAN_BREAK)];
}

/** ESC [ <n> ~ (VT220 and xterm). */
const TILDE_KEYS: Readonly<Record<number, KeyPress>> = {
  1: { scan: SCAN_HOME, extended: true },
  2: { scan: SCAN_INSERT, extended: true },
  3: { scan: SCAN_DELETE, extended: true },
  4: { scan: SCAN_END, extended: true },
  5: { scan: SCAN_PAGE_UP, extended: true },
  6: { scan: SCAN_PAGE_DOWN, extended: true },
  7: { scan: SCAN_HOME, extended: true },
  8: { scan: SCAN_END, extended: true },
  11: { scan: SCAN_F1 },
  12: { scan: SCAN_F1 + 1 },
  13: { scan: SCAN_F1 + 2 },
  14: { scan: SCAN_F1 + 3 },
  15: { scan: SCAN_F1 + 4 },
  17: { scan: SCAN_F1 + 5 },
  18: { scan: SCAN_F1 + 6 },
  19: { scan: SCAN_F1 + 7 },
  20: { scan: SCAN_F1 + 8 },
  21: { scan: SCAN_F1 + 9 },
  23: { scan: SCAN_F11 },
  24: { scan: SCAN_F12 },
};

/** The final letter of ESC [ x or ESC O x. */
const LETTER_KEYS: Readonly<Record<string, KeyPress>> = {
  A: { scan: SCAN_UP, extended: true },
  B: { scan: SCAN_DOWN, extended: true },
  C: { scan: SCAN_RIGHT, extended: true },
  D: { scan: SCAN_LEFT, extended: true },
  H: { scan: SCAN_HOME, extended: true },
  F: { scan: SCAN_END, extended: true },
  P: { scan: SCAN_F1 },
  Q: { scan: SCAN_F1 + 1 },
  R: { scan: SCAN_F1 + 2 },
  S: { scan: SCAN_F1 + 3 },
};

/** xterm's modifier parameter: 1 + (1 shift, 2 alt, 4 ctrl). */
function withModifier(key: KeyPress, param: number | undefined): KeyPress {
  if (param === undefined || param < 2) return key;
  const bits = param - 1;
  return { ...key, shift: (bits & 1) !== 0, alt: (bits & 2) !== 0, ctrl: (bits & 4) !== 0 };
}

type Parsed = { key: KeyPress | undefined; used: number } | 'incomplete';

/** Parses one key from the start of `bytes`: a key (or undefined for a byte no key types) and the bytes it used. */
export function parseKey(bytes: readonly number[], final: boolean): Parsed {
  const first = bytes[0];
  if (first === undefined) return 'incomplete';
  if (first !== ESC) {
    const k = asciiKey(first);
    // CR LF is one Enter: the LF after a CR is swallowed with it.
    const used = first === CR && bytes[1] === LF ? 2 : 1;
    return { key: k && { scan: k.scan, shift: k.shift, ctrl: k.ctrl }, used };
  }
  const escKey = { key: { scan: SCAN_ESC }, used: 1 };
  const second = bytes[1];
  if (second === undefined) return final ? escKey : 'incomplete';
  if (second !== CSI && second !== SS3) return escKey;
  const third = bytes[2];
  if (third === undefined) return final ? escKey : 'incomplete';
  if (second === SS3) {
    const key = LETTER_KEYS[String.fromCharCode(third)];
    return key ? { key, used: 3 } : escKey;
  }
  if (third === CSI) {
    // ESC [ [ A-E: the Linux console's F1-F5.
    const fourth = bytes[3];
    if (fourth === undefined) return final ? escKey : 'incomplete';
    const n = fourth - 0x41;
    return n >= 0 && n < 5 ? { key: { scan: SCAN_F1 + n }, used: 4 } : escKey;
  }
  // ESC [ params final: params are digits and ';'.
  let i = 2;
  while (i < bytes.length && ((bytes[i]! >= 0x30 && bytes[i]! <= 0x39) || bytes[i] === SEMICOLON)) i++;
  if (i >= bytes.length) return final || i >= MAX_SEQUENCE ? escKey : 'incomplete';
  const params = String.fromCharCode(...bytes.slice(2, i))
    .split(';')
    .map((p) => (p === '' ? undefined : Number(p)));
  const end = bytes[i]!;
  const used = i + 1;
  if (end === TILDE) {
    const key = TILDE_KEYS[params[0] ?? 0];
    return { key: key && withModifier(key, params[1]), used };
  }
  const key = LETTER_KEYS[String.fromCharCode(end)];
  return { key: key && withModifier(key, params[1]), used };
}

/**
 * The keyboard side of the console: a KeyboardSource for the i8042. `ready()` says whether the
 * guest can take another key now (with the BIOS: its keyboard buffer is empty), so a script is
 * typed no faster than the guest reads it.
 */
export class ConsoleKeyboard implements KeyboardSource {
  private readonly pendingBytes: number[] = [];
  private waitingSince: number | undefined;
  /** The last key was a CR at the end of the input so far: an LF right after it is part of it. */
  private swallowLf = false;

  constructor(
    private readonly input: ConsoleBytes,
    private readonly ready: () => boolean = () => true,
    private readonly now: () => number = () => performance.now(),
  ) {}

  pending(): boolean {
    return this.pendingBytes.length > 0 || this.input.available() > 0;
  }

  nextStroke(): readonly number[] | undefined {
    if (!this.ready()) return undefined;
    for (;;) {
      while (this.pendingBytes.length < MAX_SEQUENCE) {
        const byte = this.input.shift();
        if (byte < 0) break;
        this.pendingBytes.push(byte);
      }
      if (this.swallowLf && this.pendingBytes.length > 0) {
        this.swallowLf = false;
        if (this.pendingBytes[0] === LF) this.pendingBytes.shift();
      }
      if (this.pendingBytes.length === 0) return undefined;
      const t = this.now();
      const timedOut = this.waitingSince !== undefined && t - this.waitingSince >= ESC_TIMEOUT_MS;
      const parsed = parseKey(this.pendingBytes, timedOut);
      if (parsed === 'incomplete') {
        this.waitingSince ??= t;
        return undefined;
      }
      this.waitingSince = undefined;
      this.swallowLf = parsed.used === 1 && this.pendingBytes[0] === CR;
      this.pendingBytes.splice(0, parsed.used);
      if (parsed.key) return keyStroke(parsed.key);
      // A byte no key types (non-ASCII): dropped, try the next.
    }
  }

  state(): { pendingBytes: number[] } {
    return { pendingBytes: [...this.pendingBytes] };
  }

  restore(state: { pendingBytes: number[] }): void {
    this.pendingBytes.splice(0, this.pendingBytes.length, ...state.pendingBytes);
    this.waitingSince = undefined;
  }
}

/** A byte source with one byte of look-ahead, so `available()` can be answered from `receive()` alone. */
export function peekableBytes(receive: () => number): ConsoleBytes {
  let held = -1;
  return {
    shift: () => {
      if (held >= 0) {
        const byte = held;
        held = -1;
        return byte;
      }
      return receive();
    },
    available: () => {
      if (held < 0) held = receive();
      return held >= 0 ? 1 : 0;
    },
  };
}

/** Where the shared console input goes: undecided until the guest reads the keyboard or COM1. */
export type ConsoleTarget = 'undecided' | 'keyboard' | 'serial';

/**
 * Splits one input stream (COM1's RX bytes) between the keyboard and the UART. Until the guest
 * shows which it reads, input waits; the keyboard gets it once the guest calls INT 16h, reads the
 * i8042 or hooks INT 09h, the UART once it reads RBR, enables the receive interrupt or calls
 * INT 14h to receive. Reading the serial port wins over the keyboard later on too (a program that
 * polls its serial port expects its input there); the serial choice is final.
 */
export class ConsoleRouter {
  private current: ConsoleTarget = 'undecided';

  constructor(private readonly input: ConsoleBytes) {}

  get target(): ConsoleTarget {
    return this.current;
  }

  /** The guest reads the keyboard. */
  keyboardUsed(): void {
    if (this.current === 'undecided') this.current = 'keyboard';
  }

  /** The guest reads its serial port. */
  serialUsed(): void {
    this.current = 'serial';
  }

  /** The keyboard's view of the input: bytes only while it is the target. */
  readonly keyboardBytes: ConsoleBytes = {
    shift: () => (this.current === 'keyboard' ? this.input.shift() : -1),
    available: () => (this.current === 'serial' ? 0 : this.input.available()),
  };

  /** COM1's host side with its input gated: received bytes (from the shared input) only once the serial port is the target. */
  serialHost(inner: SerialHost): SerialHost {
    return {
      transmit: (byte) => inner.transmit(byte),
      txBacklog: () => inner.txBacklog(),
      receive: () => (this.current === 'serial' ? this.input.shift() : -1),
    };
  }

  state(): { target: ConsoleTarget } {
    return { target: this.current };
  }

  restore(state: { target: ConsoleTarget }): void {
    this.current = state.target;
  }
}
