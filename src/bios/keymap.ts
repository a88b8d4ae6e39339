/**
 * The US keyboard as the PC BIOS sees it: for each set 1 scan code, the INT 16h key word (scan
 * code in the high byte, ASCII in the low) it produces plain, with Shift, with Ctrl and with
 * Alt — the IBM tables every BIOS implements — and the reverse map from an ASCII byte to the key
 * (and Shift/Ctrl) that types it, which the console input uses.
 */

export const SCAN_ESC = 0x01;
export const SCAN_BACKSPACE = 0x0e;
export const SCAN_TAB = 0x0f;
export const SCAN_ENTER = 0x1c;
export const SCAN_CTRL = 0x1d;
export const SCAN_LSHIFT = 0x2a;
export const SCAN_RSHIFT = 0x36;
export const SCAN_ALT = 0x38;
export const SCAN_SPACE = 0x39;
export const SCAN_CAPS_LOCK = 0x3a;
export const SCAN_F1 = 0x3b;
export const SCAN_F10 = 0x44;
export const SCAN_NUM_LOCK = 0x45;
export const SCAN_SCROLL_LOCK = 0x46;
export const SCAN_HOME = 0x47;
export const SCAN_UP = 0x48;
export const SCAN_PAGE_UP = 0x49;
export const SCAN_LEFT = 0x4b;
export const SCAN_RIGHT = 0x4d;
export const SCAN_END = 0x4f;
export const SCAN_DOWN = 0x50;
export const SCAN_PAGE_DOWN = 0x51;
export const SCAN_INSERT = 0x52;
export const SCAN_DELETE = 0x53;
export const SCAN_F11 = 0x57;
export const SCAN_F12 = 0x58;
export const SCAN_KP_SLASH = 0x35;

/** The low byte an enhanced (E0-prefixed) key puts in its INT 16h AH=10h key word. */
export const KEY_EXTENDED_ASCII = 0xe0;
/** No key word: the combination types nothing. */
export const NO_KEY = 0;

/** [plain, shift, ctrl, alt] key words. */
type KeyWords = readonly [number, number, number, number];

const letter = (scan: number, ch: string): KeyWords => {
  const lower = ch.charCodeAt(0);
  const upper = lower - 0x20;
  return [(scan << 8) | lower, (scan << 8) | upper, (scan << 8) | (upper - 0x40), scan << 8];
};
const key = (scan: number, plain: number, shift: number, ctrl: number, alt: number): KeyWords => [
  plain === NO_KEY ? NO_KEY : (scan << 8) | plain,
  shift === NO_KEY ? NO_KEY : (scan << 8) | shift,
  ctrl,
  alt,
];
const ch = (c: string): number => c.charCodeAt(0);

/** Scan code → key words; modifiers and lock keys are absent (they type nothing). */
export const KEY_WORDS: ReadonlyMap<number, KeyWords> = new Map<number, KeyWords>([
  [0x01, [0x011b, 0x011b, 0x011b, 0x0100]],
  [0x02, key(0x02, ch('1'), ch('!'), NO_KEY, 0x7800)],
  [0x03, key(0x03, ch('2'), ch('@'), 0x0300, 0x7900)],
  [0x04, key(0x04, ch('3'), ch('#'), NO_KEY, 0x7a00)],
  [0x05, key(0x05, ch('4'), ch('$'), NO_KEY, 0x7b00)],
  [0x06, key(0x06, ch('5'), ch('%'), NO_KEY, 0x7c00)],
  [0x07, key(0x07, ch('6'), ch('^'), 0x071e, 0x7d00)],
  [0x08, key(0x08, ch('7'), ch('&'), NO_KEY, 0x7e00)],
  [0x09, key(0x09, ch('8'), ch('*'), NO_KEY, 0x7f00)],
  [0x0a, key(0x0a, ch('9'), ch('('), NO_KEY, 0x8000)],
  [0x0b, key(0x0b, ch('0'), ch(')'), NO_KEY, 0x8100)],
  [0x0c, key(0x0c, ch('-'), ch('_'), 0x0c1f, 0x8200)],
  [0x0d, key(0x0d, ch('='), ch('+'), NO_KEY, 0x8300)],
  [0x0e, [0x0e08, 0x0e08, 0x0e7f, 0x0e00]],
  [0x0f, [0x0f09, 0x0f00, 0x9400, 0xa500]],
  ...[...'qwertyuiop'].map((c, i): [number, KeyWords] => [0x10 + i, letter(0x10 + i, c)]),
  [0x1a, key(0x1a, ch('['), ch('{'), 0x1a1b, 0x1a00)],
  [0x1b, key(0x1b, ch(']'), ch('}'), 0x1b1d, 0x1b00)],
  [0x1c, [0x1c0d, 0x1c0d, 0x1c0a, 0x1c00]],
  ...[...'asdfghjkl'].map((c, i): [number, KeyWords] => [0x1e + i, letter(0x1e + i, c)]),
  [0x27, key(0x27, ch(';'), ch(':'), NO_KEY, 0x2700)],
  [0x28, key(0x28, ch("'"), ch('"'), NO_KEY, 0x2800)],
  [0x29, key(0x29, ch('`'), ch('~'), NO_KEY, 0x2900)],
  [0x2b, key(0x2b, ch('\\'), ch('|'), 0x2b1c, 0x2b00)],
  ...[...'zxcvbnm'].map((c, i): [number, KeyWords] => [0x2c + i, letter(0x2c + i, c)]),
  [0x33, key(0x33, ch(','), ch('<'), NO_KEY, 0x3300)],
  [0x34, key(0x34, ch('.'), ch('>'), NO_KEY, 0x3400)],
  [0x35, key(0x35, ch('/'), ch('?'), NO_KEY, 0x3500)],
  [0x37, [0x372a, 0x372a, 0x9600, 0x3700]],
  [0x39, [0x3920, 0x3920, 0x3920, 0x3920]],
  ...Array.from({ length: 10 }, (_, i): [number, KeyWords] => [
    SCAN_F1 + i,
    [(0x3b + i) << 8, (0x54 + i) << 8, (0x5e + i) << 8, (0x68 + i) << 8],
  ]),
  // The keypad: navigation plain, digits with Shift (Num Lock swaps them).
  [0x47, [0x4700, 0x4737, 0x7700, NO_KEY]],
  [0x48, [0x4800, 0x4838, 0x8d00, NO_KEY]],
  [0x49, [0x4900, 0x4939, 0x8400, NO_KEY]],
  [0x4a, [0x4a2d, 0x4a2d, 0x8e00, 0x4a00]],
  [0x4b, [0x4b00, 0x4b34, 0x7300, NO_KEY]],
  [0x4c, [0x4c00, 0x4c35, 0x8f00, NO_KEY]],
  [0x4d, [0x4d00, 0x4d36, 0x7400, NO_KEY]],
  [0x4e, [0x4e2b, 0x4e2b, 0x9000, 0x4e00]],
  [0x4f, [0x4f00, 0x4f31, 0x7500, NO_KEY]],
  [0x50, [0x5000, 0x5032, 0x9100, NO_KEY]],
  [0x51, [0x5100, 0x5133, 0x7600, NO_KEY]],
  [0x52, [0x5200, 0x5230, 0x9200, NO_KEY]],
  [0x53, [0x5300, 0x532e, 0x9300, NO_KEY]],
  [0x56, key(0x56, ch('\\'), ch('|'), NO_KEY, NO_KEY)],
  [SCAN_F11, [0x8500, 0x8700, 0x8900, 0x8b00]],
  [SCAN_F12, [0x8600, 0x8800, 0x8a00, 0x8c00]],
]);

/** Alt with the gray (E0-prefixed) navigation keys: Alt-Home 9700h ... Alt-Del A300h. */
const GRAY_ALT: Readonly<Record<number, number>> = {
  0x47: 0x9700,
  0x48: 0x9800,
  0x49: 0x9900,
  0x4b: 0x9b00,
  0x4d: 0x9d00,
  0x4f: 0x9f00,
  0x50: 0xa000,
  0x51: 0xa100,
  0x52: 0xa200,
  0x53: 0xa300,
};

/** Keypad keys that Num Lock turns into digits. */
const KEYPAD_DIGITS = new Set([0x47, 0x48, 0x49, 0x4b, 0x4c, 0x4d, 0x4f, 0x50, 0x51, 0x52, 0x53]);
const LETTER_SCANS = new Set(
  [...KEY_WORDS.keys()].filter((s) => (KEY_WORDS.get(s)![0] & 0xff) >= 0x61 && (KEY_WORDS.get(s)![0] & 0xff) <= 0x7a),
);

export interface KeyModifiers {
  shift: boolean;
  ctrl: boolean;
  alt: boolean;
  capsLock: boolean;
  numLock: boolean;
}

/**
 * The key word for a make code (without its E0 prefix), or NO_KEY. `extended`: it came after
 * 0xE0 (gray navigation keys, keypad Enter and /), whose words carry E0h in the low byte.
 */
export function keyWord(scan: number, extended: boolean, m: KeyModifiers): number {
  if (extended) {
    if (scan === SCAN_ENTER) return m.alt ? 0xa600 : m.ctrl ? 0xe00a : 0xe00d;
    if (scan === SCAN_KP_SLASH) return m.alt ? 0xa400 : m.ctrl ? 0x9500 : 0xe02f;
    const words = KEY_WORDS.get(scan);
    if (!words || !KEYPAD_DIGITS.has(scan)) return NO_KEY;
    if (m.alt) return GRAY_ALT[scan] ?? NO_KEY;
    if (m.ctrl) return (words[2] & 0xff00) | KEY_EXTENDED_ASCII;
    return (scan << 8) | KEY_EXTENDED_ASCII;
  }
  const words = KEY_WORDS.get(scan);
  if (!words) return NO_KEY;
  if (m.alt) return words[3];
  if (m.ctrl) return words[2];
  let shifted = m.shift;
  if (LETTER_SCANS.has(scan) && m.capsLock) shifted = !shifted;
  if (KEYPAD_DIGITS.has(scan) && m.numLock) shifted = !shifted;
  return shifted ? words[1] : words[0];
}

/** How to type one ASCII byte: its key and the modifiers held. */
export interface AsciiKey {
  scan: number;
  shift: boolean;
  ctrl: boolean;
}

const ASCII_KEYS: ReadonlyMap<number, AsciiKey> = (() => {
  const map = new Map<number, AsciiKey>();
  for (const [scan, words] of KEY_WORDS) {
    if (KEYPAD_DIGITS.has(scan) || scan === 0x37 || scan === 0x4a || scan === 0x4e || scan === 0x56) continue; // main keys first
    const plain = words[0] & 0xff;
    const shifted = words[1] & 0xff;
    if (plain >= 0x20 && plain < 0x7f && !map.has(plain)) map.set(plain, { scan, shift: false, ctrl: false });
    if (shifted >= 0x20 && shifted < 0x7f && !map.has(shifted)) map.set(shifted, { scan, shift: true, ctrl: false });
  }
  map.set(0x0d, { scan: SCAN_ENTER, shift: false, ctrl: false });
  map.set(0x08, { scan: SCAN_BACKSPACE, shift: false, ctrl: false });
  map.set(0x7f, { scan: SCAN_BACKSPACE, shift: false, ctrl: false });
  map.set(0x09, { scan: SCAN_TAB, shift: false, ctrl: false });
  map.set(0x1b, { scan: SCAN_ESC, shift: false, ctrl: false });
  // Ctrl-A..Ctrl-Z and the other control characters, typed with Ctrl.
  for (let c = 0x01; c <= 0x1a; c++) {
    if (map.has(c)) continue;
    const target = map.get(c + 0x60);
    if (target) map.set(c, { scan: target.scan, shift: false, ctrl: true });
  }
  map.set(0x00, { scan: 0x03, shift: false, ctrl: true }); // Ctrl-@ (Ctrl-2)
  map.set(0x1c, { scan: 0x2b, shift: false, ctrl: true });
  map.set(0x1d, { scan: 0x1b, shift: false, ctrl: true });
  map.set(0x1e, { scan: 0x07, shift: false, ctrl: true });
  map.set(0x1f, { scan: 0x0c, shift: false, ctrl: true });
  return map;
})();

/** The key that types `byte` (LF counts as Enter, DEL as Backspace); undefined for bytes no key types. */
export function asciiKey(byte: number): AsciiKey | undefined {
  if (byte === 0x0a) return ASCII_KEYS.get(0x0d);
  return ASCII_KEYS.get(byte);
}
