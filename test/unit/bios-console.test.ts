/**
 * The console as a keyboard (ASCII and terminal escape sequences to scan codes, typed at the
 * guest's pace), the router that gives shared input to the keyboard or COM1, the disks'
 * geometry and kept writes, and the screen captured as text, ANSI and cells.
 */
import { describe, expect, it } from 'vitest';
import { ConsoleKeyboard, ConsoleRouter, ESC_TIMEOUT_MS, keyStroke, parseKey, peekableBytes } from '../../src/bios/console-input.js';
import { Disk, floppyFormat, hardDiskGeometry, MemoryDiskBackend } from '../../src/bios/disk.js';
import { asciiKey, keyWord, SCAN_F1, SCAN_LEFT, SCAN_UP } from '../../src/bios/keymap.js';
import { captureScreen, cp437ToUtf8, screenAnsi, screenText } from '../../src/bios/screen.js';
import { Vga } from '../../src/devices/vga.js';
import { makeBios } from './bios-helpers.js';

const bytes = (s: string): number[] => [...Buffer.from(s, 'latin1')];
const source = (s: string) => {
  const queue = bytes(s);
  return { shift: () => queue.shift() ?? -1, available: () => queue.length, push: (t: string) => queue.push(...bytes(t)) };
};

describe('parseKey', () => {
  it('maps ASCII to the US layout, with Shift and Ctrl', () => {
    expect(parseKey(bytes('a'), false)).toEqual({ key: { scan: 0x1e, shift: false, ctrl: false }, used: 1 });
    expect(parseKey(bytes('A'), false)).toEqual({ key: { scan: 0x1e, shift: true, ctrl: false }, used: 1 });
    expect(parseKey(bytes('*'), false)).toEqual({ key: { scan: 0x09, shift: true, ctrl: false }, used: 1 });
    expect(parseKey([0x03], false)).toEqual({ key: { scan: 0x2e, shift: false, ctrl: true }, used: 1 });
    expect(parseKey(bytes('\r\n'), false)).toEqual({ key: { scan: 0x1c, shift: false, ctrl: false }, used: 2 });
    expect(parseKey([0x7f], false)).toEqual({ key: { scan: 0x0e, shift: false, ctrl: false }, used: 1 });
  });

  it('maps terminal escape sequences to arrows, navigation and function keys, with modifiers', () => {
    expect(parseKey(bytes('\x1b[A'), false)).toEqual({ key: { scan: SCAN_UP, extended: true }, used: 3 });
    expect(parseKey(bytes('\x1bOD'), false)).toEqual({ key: { scan: SCAN_LEFT, extended: true }, used: 3 });
    expect(parseKey(bytes('\x1bOP'), false)).toEqual({ key: { scan: SCAN_F1 }, used: 3 });
    expect(parseKey(bytes('\x1b[15~'), false)).toEqual({ key: { scan: SCAN_F1 + 4 }, used: 5 });
    expect(parseKey(bytes('\x1b[24~'), false)).toEqual({ key: { scan: 0x58 }, used: 5 });
    expect(parseKey(bytes('\x1b[3~'), false)).toEqual({ key: { scan: 0x53, extended: true }, used: 4 });
    expect(parseKey(bytes('\x1b[1;5C'), false)).toEqual({
      key: { scan: 0x4d, extended: true, shift: false, alt: false, ctrl: true },
      used: 6,
    });
    expect(parseKey(bytes('\x1b[[A'), false)).toEqual({ key: { scan: SCAN_F1 }, used: 4 });
  });

  it('waits for the rest of an escape sequence, and a lone ESC is Esc once it times out', () => {
    expect(parseKey(bytes('\x1b'), false)).toBe('incomplete');
    expect(parseKey(bytes('\x1b['), false)).toBe('incomplete');
    expect(parseKey(bytes('\x1b'), true)).toEqual({ key: { scan: 0x01 }, used: 1 });
    expect(parseKey(bytes('\x1bq'), false)).toEqual({ key: { scan: 0x01 }, used: 1 });
  });
});

describe('ConsoleKeyboard', () => {
  it('types keystrokes (make, break, modifiers around) only when the guest is ready', () => {
    let ready = false;
    const input = source('A');
    const keyboard = new ConsoleKeyboard(input, () => ready);
    expect(keyboard.pending()).toBe(true);
    expect(keyboard.nextStroke()).toBeUndefined();
    ready = true;
    expect(keyboard.nextStroke()).toEqual([0x2a, 0x1e, 0x9e, 0xaa]);
    expect(keyboard.nextStroke()).toBeUndefined();
    expect(keyboard.pending()).toBe(false);
  });

  it('gives a lone ESC after ESC_TIMEOUT_MS, and swallows the LF of a CR LF split across reads', () => {
    let now = 0;
    const input = source('\x1b');
    const keyboard = new ConsoleKeyboard(
      input,
      () => true,
      () => now,
    );
    expect(keyboard.nextStroke()).toBeUndefined();
    now += ESC_TIMEOUT_MS;
    expect(keyboard.nextStroke()).toEqual(keyStroke({ scan: 0x01 }));
    input.push('\r');
    expect(keyboard.nextStroke()).toEqual(keyStroke({ scan: 0x1c }));
    input.push('\nx');
    expect(keyboard.nextStroke()).toEqual(keyStroke({ scan: 0x2d }));
  });

  it('gives E0-prefixed strokes for gray keys', () => {
    const keyboard = new ConsoleKeyboard(source('\x1b[B'));
    expect(keyboard.nextStroke()).toEqual([0xe0, 0x50, 0xe0, 0xd0]);
  });
});

describe('ConsoleRouter', () => {
  it('holds input until the guest reads a device, then gives it there; reading COM1 wins', () => {
    const input = source('ab');
    const router = new ConsoleRouter(peekableBytes(() => input.shift()));
    const serial = router.serialHost({ transmit: () => {}, txBacklog: () => 0, receive: () => input.shift() });
    expect(serial.receive()).toBe(-1);
    expect(router.keyboardBytes.shift()).toBe(-1);
    router.keyboardUsed();
    expect(router.keyboardBytes.shift()).toBe(0x61);
    router.serialUsed();
    expect(router.keyboardBytes.available()).toBe(0);
    expect(serial.receive()).toBe(0x62);
    router.keyboardUsed();
    expect(router.target).toBe('serial');
  });
});

describe('keymap', () => {
  it('gives the IBM key words', () => {
    const plain = { shift: false, ctrl: false, alt: false, capsLock: false, numLock: false };
    expect(keyWord(0x1e, false, plain)).toBe(0x1e61);
    expect(keyWord(0x1e, false, { ...plain, alt: true })).toBe(0x1e00);
    expect(keyWord(0x1e, false, { ...plain, capsLock: true, shift: true })).toBe(0x1e61);
    expect(keyWord(0x3b, false, plain)).toBe(0x3b00);
    expect(keyWord(0x3b, false, { ...plain, shift: true })).toBe(0x5400);
    expect(keyWord(0x48, true, plain)).toBe(0x48e0);
    expect(keyWord(0x48, false, { ...plain, numLock: true })).toBe(0x4838);
    expect(keyWord(0x1c, true, plain)).toBe(0xe00d);
    expect(asciiKey(0x0a)?.scan).toBe(0x1c);
  });
});

describe('Disk', () => {
  it('knows the standard floppy formats and gives hard disks 16 x 63 cylinders', () => {
    expect(floppyFormat(1474560)?.geometry).toEqual({ cylinders: 80, heads: 2, sectors: 18 });
    expect(floppyFormat(368640)?.geometry).toEqual({ cylinders: 40, heads: 2, sectors: 9 });
    expect(floppyFormat(1536)).toBeUndefined();
    expect(hardDiskGeometry(3)).toEqual({ cylinders: 1, heads: 16, sectors: 63 });
    expect(hardDiskGeometry(1024 * 16 * 63 + 1).heads).toBe(255);
  });

  it('reads past the image as zeros within the last cylinder, and refuses past the disk', () => {
    const image = new Uint8Array(600).fill(7);
    const disk = new Disk(new MemoryDiskBackend(image), { drive: 0x80, writeThrough: false });
    expect(disk.totalSectors).toBe(16 * 63);
    const buf = new Uint8Array(1024);
    expect(disk.read(0, 2, buf)).toBe(true);
    expect(buf[599]).toBe(7);
    expect(buf[600]).toBe(0);
    expect(disk.read(16 * 63, 1, buf)).toBe(false);
    expect(disk.chsToLba(0, 1, 1)).toBe(63);
    expect(disk.chsToLba(0, 0, 0)).toBeUndefined();
  });

  it('saves and restores the sectors it kept from the image', () => {
    const disk = new Disk(new MemoryDiskBackend(new Uint8Array(1024)), { drive: 0x80, writeThrough: false });
    disk.write(1, 1, new Uint8Array(512).fill(9));
    const copy = new Disk(new MemoryDiskBackend(new Uint8Array(1024)), { drive: 0x80, writeThrough: false });
    copy.restore(JSON.parse(JSON.stringify(disk.state())) as ReturnType<Disk['state']>);
    const buf = new Uint8Array(512);
    copy.read(1, 1, buf);
    expect(buf[0]).toBe(9);
  });

  it('refuses a floppy drive number for an image of no floppy size', () => {
    expect(() => new Disk(new MemoryDiskBackend(new Uint8Array(1000)), { drive: 0, writeThrough: false })).toThrow(
      /no standard floppy size/,
    );
  });
});

describe('screen capture', () => {
  it('reads the displayed page as cells and text, with the cursor from the CRTC', () => {
    const bios = makeBios();
    for (const ch of 'Hé\u00b0') bios.call(0x10, { eax: 0x0e00 | (ch === 'é' ? 0x82 : ch === '\u00b0' ? 0xf8 : ch.charCodeAt(0)) });
    const screen = captureScreen(bios.memory, bios.vga.regs);
    expect(screen.columns).toBe(80);
    expect(screen.rows).toBe(25);
    expect(screen.cells[0]![0]).toEqual({ char: 0x48, attribute: 0x07 });
    expect(screen.cursor).toEqual({ row: 0, column: 3, visible: true });
    const text = screenText(screen);
    expect(text.split('\n')[0]).toBe('Hé°');
    expect(text.split('\n').length).toBe(26);
    expect(screenAnsi(screen).startsWith('\x1b[38;2;170;170;170;48;2;0;0;0mHé°')).toBe(true);
  });

  it('follows the CRTC start address (page flips) and knows graphics modes have no text', () => {
    const bios = makeBios();
    bios.call(0x10, { eax: 0x0501 });
    bios.call(0x10, { eax: 0x0e5a });
    expect(screenText(captureScreen(bios.memory, bios.vga.regs)).startsWith('Z\n')).toBe(true);
    bios.call(0x10, { eax: 0x0013 });
    expect(screenText(captureScreen(bios.memory, bios.vga.regs))).toMatch(/graphics mode 13h/);
    expect(captureScreen(bios.memory, new Vga().regs).text).toBe(false);
  });

  it('turns teletype bytes into UTF-8, keeping CR and LF', () => {
    expect(cp437ToUtf8(Uint8Array.from([0x48, 0x0d, 0x0a, 0xdb, 0x00]))).toBe('H\r\n█');
  });
});
