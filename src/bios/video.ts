/**
 * INT 10h, the video BIOS, for a VGA: text modes 0-3 and 7 drawn into video memory (0xB8000,
 * 0xB0000 for mono) with the BDA's cursor and page fields and the CRTC kept in step, the way
 * IBM's VGA BIOS and SeaVGABIOS do it. Graphics modes can be set (memory cleared, BDA filled,
 * mode 13h pixels written and read); text output in them moves the cursor and reaches the
 * console but draws no glyphs (there is no font ROM).
 *
 * Functions: 00h set mode, 01h cursor shape, 02h/03h set/get cursor, 04h light pen (none), 05h
 * active page, 06h/07h scroll, 08h read char/attr, 09h/0Ah write char(/attr), 0Bh palette, 0Ch/0Dh
 * pixels, 0Eh teletype (on the active page whatever BH says, as SeaBIOS: BEL ignored, BS stops at
 * column 0, CR, LF with scrolling), 0Fh get mode, 10h palette and DAC registers, 11h character
 * generator (row count: 8x8 font → 50 rows), 12h alternate select, 13h write string, 1Ah display
 * combination.
 */
import {
  ATTR_REGISTER_COUNT,
  CRTC_CURSOR_END,
  CRTC_CURSOR_START,
  VGA_ATTR,
  VGA_DAC,
  VGA_TEXT_MODE_40,
  VGA_TEXT_MODE_80,
  VGA_TEXT_MODE_MONO,
  type Vga,
} from '../devices/vga.js';
import type { TrapFrame } from './frame.js';
import {
  BDA_CHAR_HEIGHT,
  BDA_CRTC_ADDRESS,
  BDA_CURSOR_POS,
  BDA_CURSOR_TYPE,
  BDA_EQUIPMENT_WORD,
  BDA_VGA_FLAGS,
  BDA_VIDEO_COLUMNS,
  BDA_VIDEO_CTL,
  BDA_VIDEO_MODE,
  BDA_VIDEO_MSR,
  BDA_VIDEO_PAGE,
  BDA_VIDEO_PAGE_SIZE,
  BDA_VIDEO_PAGE_START,
  BDA_VIDEO_PALETTE,
  BDA_VIDEO_ROWS,
  BDA_VIDEO_SWITCHES,
  linear,
} from './layout.js';
import type { BiosMachine, CallResult } from './machine.js';
import type { GuestRam } from './memory.js';

export interface VideoMode {
  mode: number;
  text: boolean;
  columns: number;
  rows: number;
  /** Video memory segment. */
  segment: number;
  pageSize: number;
  charHeight: number;
  /** Pixels, for graphics modes. */
  width?: number;
  height?: number;
}

const text = (mode: number, columns: number, segment: number): VideoMode => ({
  mode,
  text: true,
  columns,
  rows: 25,
  segment,
  pageSize: columns * 25 * 2 <= 0x800 ? 0x800 : 0x1000,
  charHeight: 16,
});
const graphics = (
  mode: number,
  columns: number,
  rows: number,
  segment: number,
  pageSize: number,
  charHeight: number,
  width: number,
  height: number,
): VideoMode => ({
  mode,
  text: false,
  columns,
  rows,
  segment,
  pageSize,
  charHeight,
  width,
  height,
});

export const COLOR_TEXT_SEGMENT = 0xb800;
export const MONO_TEXT_SEGMENT = 0xb000;
export const GRAPHICS_SEGMENT = 0xa000;
export const COLOR_CRTC = 0x3d4;
export const MONO_CRTC = 0x3b4;
export const MODE_13H = 0x13;
export const DEFAULT_TEXT_MODE = 0x03;
export const MONO_TEXT_MODE = 0x07;

export const VIDEO_MODES: ReadonlyMap<number, VideoMode> = new Map(
  [
    text(0x00, 40, COLOR_TEXT_SEGMENT),
    text(0x01, 40, COLOR_TEXT_SEGMENT),
    text(0x02, 80, COLOR_TEXT_SEGMENT),
    text(0x03, 80, COLOR_TEXT_SEGMENT),
    text(0x07, 80, MONO_TEXT_SEGMENT),
    graphics(0x04, 40, 25, COLOR_TEXT_SEGMENT, 0x4000, 8, 320, 200),
    graphics(0x05, 40, 25, COLOR_TEXT_SEGMENT, 0x4000, 8, 320, 200),
    graphics(0x06, 80, 25, COLOR_TEXT_SEGMENT, 0x4000, 8, 640, 200),
    graphics(0x0d, 40, 25, GRAPHICS_SEGMENT, 0x2000, 8, 320, 200),
    graphics(0x0e, 80, 25, GRAPHICS_SEGMENT, 0x4000, 8, 640, 200),
    graphics(0x0f, 80, 25, GRAPHICS_SEGMENT, 0x8000, 14, 640, 350),
    graphics(0x10, 80, 25, GRAPHICS_SEGMENT, 0x8000, 14, 640, 350),
    graphics(0x11, 80, 30, GRAPHICS_SEGMENT, 0xa000, 16, 640, 480),
    graphics(0x12, 80, 30, GRAPHICS_SEGMENT, 0xa000, 16, 640, 480),
    graphics(MODE_13H, 40, 25, GRAPHICS_SEGMENT, 0x0000, 8, 320, 200),
  ].map((m) => [m.mode, m]),
);

/** AL bit 7 of AH=00h: keep video memory (BDA 0x87 bit 7 remembers it). */
const MODE_NO_CLEAR = 0x80;
const MODE_MASK = 0x7f;
const VIDEO_CTL_DEFAULT = 0x60; // 256 KiB of video memory
const VIDEO_SWITCHES_DEFAULT = 0xf9;
const VGA_FLAGS_DEFAULT = 0x51; // 400 lines, palette loading on, VGA active
/** Equipment word bits 4-5: initial video mode (10 = 80x25 colour, 11 = 80x25 mono). */
const EQUIP_VIDEO_MASK = 0x30;
const EQUIP_VIDEO_COLOR80 = 0x20;
const EQUIP_VIDEO_MONO = 0x30;
export const DEFAULT_CURSOR_TYPE = 0x0607; // start line 6, end line 7 (CGA scan lines)
export const BLANK_ATTRIBUTE = 0x07;
export const SPACE = 0x20;
const PAGES = 8;
const CURSOR_HIDDEN = 0x20;
const BEL = 0x07;
const BS = 0x08;
const LF = 0x0a;
const CR = 0x0d;
const CHAR_HEIGHT_8 = 8;
/** Attribute mode control register (index 10h): bit 3 selects blink over bright backgrounds. */
const ATTR_MODE_CONTROL = 0x10;
const ATTR_BLINK = 0x08;
const ATTR_OVERSCAN = 0x11;
/** 12h BL=10h: EGA/VGA information: colour, 256 KiB. */
const EGA_INFO_MEMORY_256K = 0x03;
const EGA_INFO_SWITCHES = 0x09;
/** 1Ah: display combination code 08h, VGA with analog colour display. */
const DCC_VGA_COLOR = 0x08;
const FUNCTION_SUPPORTED_12H = 0x12;
const FUNCTION_SUPPORTED_1AH = 0x1a;
const DAC_COMPONENT_MASK = 0x3f;

/** The current mode, as the BDA says. */
export function currentMode(ram: GuestRam): VideoMode {
  const mode = VIDEO_MODES.get(ram.bda8(BDA_VIDEO_MODE) & MODE_MASK) ?? VIDEO_MODES.get(DEFAULT_TEXT_MODE)!;
  const rows = ram.bda8(BDA_VIDEO_ROWS) + 1;
  if (!mode.text || rows === mode.rows) return mode;
  // INT 10h AH=11h changed the font: more rows, bigger pages.
  const pageSize = mode.columns * rows * 2;
  return { ...mode, rows, pageSize: Math.ceil(pageSize / 0x800) * 0x800 };
}

/** Sets a video mode as AH=00h does (the BDA, the VGA registers, cleared memory). */
export function setVideoMode(m: Pick<BiosMachine, 'ram' | 'vga'>, requested: number): boolean {
  const number = requested & MODE_MASK;
  const mode = VIDEO_MODES.get(number);
  if (!mode) return false;
  const { ram, vga } = m;
  const mono = number === MONO_TEXT_MODE;
  ram.setBda8(BDA_VIDEO_MODE, number);
  ram.setBda16(BDA_VIDEO_COLUMNS, mode.columns);
  ram.setBda16(BDA_VIDEO_PAGE_SIZE, mode.pageSize);
  ram.setBda16(BDA_VIDEO_PAGE_START, 0);
  for (let page = 0; page < PAGES; page++) ram.setBda16(BDA_CURSOR_POS + 2 * page, 0);
  ram.setBda16(BDA_CURSOR_TYPE, DEFAULT_CURSOR_TYPE);
  ram.setBda8(BDA_VIDEO_PAGE, 0);
  ram.setBda16(BDA_CRTC_ADDRESS, mono ? MONO_CRTC : COLOR_CRTC);
  ram.setBda8(BDA_VIDEO_ROWS, mode.rows - 1);
  ram.setBda16(BDA_CHAR_HEIGHT, mode.charHeight);
  ram.setBda8(BDA_VIDEO_CTL, VIDEO_CTL_DEFAULT | (requested & MODE_NO_CLEAR));
  ram.setBda8(BDA_VIDEO_SWITCHES, VIDEO_SWITCHES_DEFAULT);
  ram.setBda8(BDA_VGA_FLAGS, VGA_FLAGS_DEFAULT);
  ram.setBda8(BDA_VIDEO_MSR, 0);
  ram.setBda8(BDA_VIDEO_PALETTE, 0);
  const equipment = ram.bda16(BDA_EQUIPMENT_WORD) & ~EQUIP_VIDEO_MASK;
  ram.setBda16(BDA_EQUIPMENT_WORD, equipment | (mono ? EQUIP_VIDEO_MONO : EQUIP_VIDEO_COLOR80));
  if (mode.text) vga.loadTextMode(mono ? VGA_TEXT_MODE_MONO : mode.columns === 40 ? VGA_TEXT_MODE_40 : VGA_TEXT_MODE_80);
  if (!(requested & MODE_NO_CLEAR)) {
    const base = linear(mode.segment, 0);
    if (mode.text) {
      for (let i = 0; i < 0x8000; i += 2) ram.setU16(base + i, (BLANK_ATTRIBUTE << 8) | SPACE);
    } else {
      ram.write(base, new Uint8Array(mode.segment === GRAPHICS_SEGMENT ? 0x10000 : 0x8000));
    }
  }
  vga.setStartAddress(0);
  vga.setCrtc(CRTC_CURSOR_START, DEFAULT_CURSOR_TYPE >>> 8);
  vga.setCrtc(CRTC_CURSOR_END, DEFAULT_CURSOR_TYPE & 0xff);
  vga.setCursorLocation(0);
  return true;
}

export interface CursorPosition {
  row: number;
  column: number;
}

export function cursorPosition(ram: GuestRam, page: number): CursorPosition {
  const word = ram.bda16(BDA_CURSOR_POS + 2 * (page & (PAGES - 1)));
  return { row: word >>> 8, column: word & 0xff };
}

/** AH=02h: the BDA's cursor for `page`, and the CRTC's if it is the active page. */
export function setCursorPosition(ram: GuestRam, vga: Vga, page: number, pos: CursorPosition): void {
  const p = page & (PAGES - 1);
  ram.setBda16(BDA_CURSOR_POS + 2 * p, ((pos.row & 0xff) << 8) | (pos.column & 0xff));
  if (p !== ram.bda8(BDA_VIDEO_PAGE)) return;
  const mode = currentMode(ram);
  vga.setCursorLocation(ram.bda16(BDA_VIDEO_PAGE_START) / 2 + pos.row * mode.columns + pos.column);
}

/** Address of the character cell (row, column) of `page`. */
function cellAddress(mode: VideoMode, page: number, row: number, column: number): number {
  return linear(mode.segment, 0) + (page & (PAGES - 1)) * mode.pageSize + (row * mode.columns + column) * 2;
}

/** Scrolls a window of the active page up (or down) by `lines`, filling with `attribute` blanks; 0 clears it. */
export function scrollWindow(
  ram: GuestRam,
  up: boolean,
  lines: number,
  attribute: number,
  top: number,
  left: number,
  bottom: number,
  right: number,
): void {
  const mode = currentMode(ram);
  if (!mode.text) return;
  const page = ram.bda8(BDA_VIDEO_PAGE);
  const b = Math.min(bottom, mode.rows - 1);
  const r = Math.min(right, mode.columns - 1);
  if (top > b || left > r) return;
  const height = b - top + 1;
  const n = lines === 0 || lines > height ? height : lines;
  const blank = ((attribute & 0xff) << 8) | SPACE;
  const copyRow = (to: number, from: number): void => {
    for (let c = left; c <= r; c++) ram.setU16(cellAddress(mode, page, to, c), ram.u16(cellAddress(mode, page, from, c)));
  };
  const clearRow = (row: number): void => {
    for (let c = left; c <= r; c++) ram.setU16(cellAddress(mode, page, row, c), blank);
  };
  if (up) {
    for (let row = top; row <= b - n; row++) copyRow(row, row + n);
    for (let row = b - n + 1; row <= b; row++) clearRow(row);
  } else {
    for (let row = b; row >= top + n; row--) copyRow(row, row - n);
    for (let row = top; row < top + n; row++) clearRow(row);
  }
}

/** Writes `count` copies of a character (and the attribute unless undefined) from the cursor on, without moving it. */
function writeChars(ram: GuestRam, page: number, char: number, attribute: number | undefined, count: number): void {
  const mode = currentMode(ram);
  const pos = cursorPosition(ram, page);
  if (!mode.text) return;
  let at = pos.row * mode.columns + pos.column;
  const end = Math.min(at + count, mode.columns * mode.rows);
  for (; at < end; at++) {
    const address = cellAddress(mode, page, 0, 0) + at * 2;
    ram.setU8(address, char);
    if (attribute !== undefined) ram.setU8(address + 1, attribute);
  }
}

/**
 * One character of teletype output on the active page: control characters move the cursor,
 * others are written (keeping the cell's attribute unless `attribute` is given) and advance it;
 * past the last row the page scrolls up a line.
 */
export function teletype(m: BiosMachine, char: number, attribute?: number): void {
  const { ram, vga } = m;
  const page = ram.bda8(BDA_VIDEO_PAGE);
  const mode = currentMode(ram);
  let { row, column } = cursorPosition(ram, page);
  m.consoleWrite(char);
  switch (char) {
    case BEL:
      break;
    case BS:
      if (column > 0) column--;
      break;
    case CR:
      column = 0;
      break;
    case LF:
      row++;
      break;
    default: {
      // Graphics modes: no font to draw with, so the text only moves the cursor.
      if (mode.text) {
        const address = cellAddress(mode, page, row, column);
        ram.setU8(address, char);
        if (attribute !== undefined) ram.setU8(address + 1, attribute);
      }
      column++;
    }
  }
  if (column >= mode.columns) {
    column = 0;
    row++;
  }
  if (row >= mode.rows) {
    row = mode.rows - 1;
    // The new line takes the attribute of the character at the cursor, as the IBM BIOS does.
    const fill = mode.text ? ram.u8(cellAddress(mode, page, row, column) + 1) : 0;
    scrollWindow(ram, true, 1, fill, 0, 0, mode.rows - 1, mode.columns - 1);
  }
  setCursorPosition(ram, vga, page, { row, column });
}

function setActivePage(m: BiosMachine, page: number): void {
  const { ram, vga } = m;
  const mode = currentMode(ram);
  const p = page & (PAGES - 1);
  ram.setBda8(BDA_VIDEO_PAGE, p);
  ram.setBda16(BDA_VIDEO_PAGE_START, p * mode.pageSize);
  vga.setStartAddress((p * mode.pageSize) / 2);
  setCursorPosition(ram, vga, p, cursorPosition(ram, p));
}

function pixelAddress(mode: VideoMode, x: number, y: number): { address: number; shift: number; mask: number } | undefined {
  if (mode.width === undefined || mode.height === undefined || x >= mode.width || y >= mode.height) return undefined;
  if (mode.mode === MODE_13H) return { address: linear(GRAPHICS_SEGMENT, 0) + y * mode.width + x, shift: 0, mask: 0xff };
  if (mode.segment === COLOR_TEXT_SEGMENT) {
    // CGA: even lines in the first 8 KiB, odd lines in the second; 2 (or 1) bits a pixel.
    const bits = mode.mode === 0x06 ? 1 : 2;
    const perByte = 8 / bits;
    const address = linear(COLOR_TEXT_SEGMENT, 0) + (y & 1) * 0x2000 + (y >> 1) * (mode.width / perByte) + Math.floor(x / perByte);
    const shift = (perByte - 1 - (x % perByte)) * bits;
    return { address, shift, mask: (1 << bits) - 1 };
  }
  return undefined; // planar EGA/VGA modes: not modelled
}

function palette(m: BiosMachine, f: TrapFrame): CallResult {
  const { vga } = m;
  const regs = vga.regs;
  switch (f.al) {
    case 0x00:
      if (f.bl < ATTR_REGISTER_COUNT) regs[VGA_ATTR + f.bl] = f.bh;
      return 'done';
    case 0x01:
      regs[VGA_ATTR + ATTR_OVERSCAN] = f.bh;
      return 'done';
    case 0x02: {
      const table = m.ram.read(linear(f.es, f.dx), 17);
      for (let i = 0; i < 16; i++) regs[VGA_ATTR + i] = table[i]!;
      regs[VGA_ATTR + ATTR_OVERSCAN] = table[16]!;
      return 'done';
    }
    case 0x03: {
      const mc = regs[VGA_ATTR + ATTR_MODE_CONTROL]!;
      regs[VGA_ATTR + ATTR_MODE_CONTROL] = f.bl ? mc | ATTR_BLINK : mc & ~ATTR_BLINK;
      return 'done';
    }
    case 0x07:
      f.bh = f.bl < ATTR_REGISTER_COUNT ? regs[VGA_ATTR + f.bl]! : 0;
      return 'done';
    case 0x08:
      f.bh = regs[VGA_ATTR + ATTR_OVERSCAN]!;
      return 'done';
    case 0x09: {
      const table = new Uint8Array(17);
      for (let i = 0; i < 16; i++) table[i] = regs[VGA_ATTR + i]!;
      table[16] = regs[VGA_ATTR + ATTR_OVERSCAN]!;
      m.ram.write(linear(f.es, f.dx), table);
      return 'done';
    }
    case 0x10: {
      const at = VGA_DAC + (f.bx & 0xff) * 3;
      regs[at] = f.dh & DAC_COMPONENT_MASK;
      regs[at + 1] = f.ch & DAC_COMPONENT_MASK;
      regs[at + 2] = f.cl & DAC_COMPONENT_MASK;
      return 'done';
    }
    case 0x12: {
      const start = f.bx & 0xff;
      const count = Math.min(f.cx, 256 - start);
      const table = m.ram.read(linear(f.es, f.dx), count * 3);
      for (let i = 0; i < count * 3; i++) regs[VGA_DAC + start * 3 + i] = table[i]! & DAC_COMPONENT_MASK;
      return 'done';
    }
    case 0x15: {
      const at = VGA_DAC + (f.bx & 0xff) * 3;
      f.dh = regs[at]!;
      f.ch = regs[at + 1]!;
      f.cl = regs[at + 2]!;
      return 'done';
    }
    case 0x17: {
      const start = f.bx & 0xff;
      const count = Math.min(f.cx, 256 - start);
      m.ram.write(linear(f.es, f.dx), regs.slice(VGA_DAC + start * 3, VGA_DAC + (start + count) * 3));
      return 'done';
    }
    default:
      return 'unsupported';
  }
}

/** AH=11h: only what changes the text layout (the 8x8 font gives 50 rows; 8x14/8x16 give 25) and the font query. */
function characterGenerator(m: BiosMachine, f: TrapFrame): CallResult {
  const { ram } = m;
  const setRows = (height: number): void => {
    const mode = currentMode(ram);
    if (!mode.text) return;
    const rows = Math.floor(400 / height);
    ram.setBda8(BDA_VIDEO_ROWS, rows - 1);
    ram.setBda16(BDA_CHAR_HEIGHT, height);
    ram.setBda16(BDA_VIDEO_PAGE_SIZE, currentMode(ram).pageSize);
  };
  switch (f.al) {
    case 0x01:
    case 0x11:
      setRows(14);
      return 'done';
    case 0x02:
    case 0x12:
      setRows(CHAR_HEIGHT_8);
      return 'done';
    case 0x04:
    case 0x14:
      setRows(16);
      return 'done';
    case 0x00:
    case 0x10:
    case 0x03:
      return 'done'; // user fonts and block selects: accepted, nothing to draw with
    case 0x30:
      // Font information: no font ROM, so a pointer to nothing; the text layout is right.
      f.cx = ram.bda16(BDA_CHAR_HEIGHT);
      f.dl = ram.bda8(BDA_VIDEO_ROWS);
      f.es = 0;
      f.bp = 0;
      return 'done';
    default:
      return 'unsupported';
  }
}

export function int10(m: BiosMachine, f: TrapFrame): CallResult {
  const { ram, vga } = m;
  switch (f.ah) {
    case 0x00: {
      if (!setVideoMode(m, f.al)) return 'unsupported';
      // AL on return: the CRT mode byte (SeaBIOS returns 30h for modes up to 7, 20h otherwise).
      const number = f.al & MODE_MASK;
      f.al = number > 7 ? 0x20 : number === 6 ? 0x3f : 0x30;
      return 'done';
    }
    case 0x01: {
      ram.setBda16(BDA_CURSOR_TYPE, f.cx);
      vga.setCrtc(CRTC_CURSOR_START, f.ch & (CURSOR_HIDDEN | 0x1f));
      vga.setCrtc(CRTC_CURSOR_END, f.cl & 0x1f);
      return 'done';
    }
    case 0x02:
      setCursorPosition(ram, vga, f.bh, { row: f.dh, column: f.dl });
      return 'done';
    case 0x03: {
      const pos = cursorPosition(ram, f.bh);
      f.dh = pos.row;
      f.dl = pos.column;
      f.cx = ram.bda16(BDA_CURSOR_TYPE);
      f.ax = 0;
      return 'done';
    }
    case 0x04:
      f.ah = 0; // no light pen
      return 'done';
    case 0x05:
      setActivePage(m, f.al);
      return 'done';
    case 0x06:
    case 0x07:
      scrollWindow(ram, f.ah === 0x06, f.al, f.bh, f.ch, f.cl, f.dh, f.dl);
      return 'done';
    case 0x08: {
      const mode = currentMode(ram);
      const pos = cursorPosition(ram, f.bh);
      if (!mode.text) {
        f.ax = 0;
        return 'done';
      }
      f.ax = ram.u16(cellAddress(mode, f.bh, pos.row, pos.column));
      return 'done';
    }
    case 0x09:
      writeChars(ram, f.bh, f.al, f.bl, f.cx);
      return 'done';
    case 0x0a:
      writeChars(ram, f.bh, f.al, undefined, f.cx);
      return 'done';
    case 0x0b:
      if (f.bh === 0) ram.setBda8(BDA_VIDEO_PALETTE, f.bl);
      return 'done';
    case 0x0c:
    case 0x0d: {
      const target = pixelAddress(currentMode(ram), f.cx, f.dx);
      if (!target) {
        if (f.ah === 0x0d) f.al = 0;
        return 'done';
      }
      const { address, shift, mask } = target;
      const old = ram.u8(address);
      if (f.ah === 0x0d) {
        f.al = (old >> shift) & mask;
      } else {
        const value = (f.al & mask) << shift;
        // Bit 7 of AL XORs the pixel in (not in mode 13h, where AL is the whole colour).
        const xor = mask !== 0xff && (f.al & 0x80) !== 0;
        ram.setU8(address, xor ? old ^ value : (old & ~(mask << shift)) | value);
      }
      return 'done';
    }
    case 0x0e:
      teletype(m, f.al);
      return 'done';
    case 0x0f:
      f.al = ram.bda8(BDA_VIDEO_MODE) | (ram.bda8(BDA_VIDEO_CTL) & MODE_NO_CLEAR);
      f.ah = ram.bda16(BDA_VIDEO_COLUMNS);
      f.bh = ram.bda8(BDA_VIDEO_PAGE);
      return 'done';
    case 0x10:
      return palette(m, f);
    case 0x11:
      return characterGenerator(m, f);
    case 0x12:
      if (f.bl === 0x10) {
        f.bh = 0; // colour
        f.bl = EGA_INFO_MEMORY_256K;
        f.ch = 0;
        f.cl = EGA_INFO_SWITCHES;
        return 'done';
      }
      f.al = FUNCTION_SUPPORTED_12H;
      return 'done';
    case 0x13:
      return writeString(m, f);
    case 0x1a:
      if (f.al !== 0x00) {
        f.al = FUNCTION_SUPPORTED_1AH; // set: accepted
        return 'done';
      }
      f.al = FUNCTION_SUPPORTED_1AH;
      f.bl = DCC_VGA_COLOR;
      f.bh = 0;
      return 'done';
    default:
      return 'unsupported';
  }
}

/**
 * AH=13h: write the string at ES:BP (CX characters) at DH,DL on page BH. AL bit 0: the cursor
 * follows; bit 1: the string alternates characters and attributes (else all take BL). Control
 * characters act as in teletype output.
 */
function writeString(m: BiosMachine, f: TrapFrame): CallResult {
  const { ram, vga } = m;
  const page = f.bh;
  const withAttributes = (f.al & 0x02) !== 0;
  const moveCursor = (f.al & 0x01) !== 0;
  const saved = cursorPosition(ram, page);
  const active = ram.bda8(BDA_VIDEO_PAGE);
  // Teletype works on the active page: point it at the target page while writing.
  ram.setBda8(BDA_VIDEO_PAGE, page & (PAGES - 1));
  setCursorPosition(ram, vga, page, { row: f.dh, column: f.dl });
  const start = linear(f.es, f.bp);
  for (let i = 0; i < f.cx; i++) {
    const char = ram.u8(start + (withAttributes ? 2 * i : i));
    const attribute = withAttributes ? ram.u8(start + 2 * i + 1) : f.bl;
    const control = char === BEL || char === BS || char === CR || char === LF;
    teletype(m, char, control ? undefined : attribute);
  }
  const end = cursorPosition(ram, page);
  ram.setBda8(BDA_VIDEO_PAGE, active);
  setCursorPosition(ram, vga, page, moveCursor ? end : saved);
  setCursorPosition(ram, vga, active, cursorPosition(ram, active)); // the CRTC follows the active page
  return 'done';
}
