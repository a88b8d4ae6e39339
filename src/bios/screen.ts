/**
 * The text screen as the VGA shows it: the cells (character, attribute) of the displayed page,
 * read from video memory at the CRTC's start address in the mode the BDA records, the cursor
 * from the CRTC, and the 16 text colours from the DAC. Rendered as plain text (code page 437 to
 * Unicode, one line per row) for tests and `--screenshot`, or with ANSI colours.
 */
import { VGA_ATTR, vgaCursor, vgaStartAddress, vgaTextPalette } from '../devices/vga.js';
import { BDA, BDA_VIDEO_COLUMNS, BDA_VIDEO_MODE, BDA_VIDEO_ROWS, linear } from './layout.js';
import { VIDEO_MODES, DEFAULT_TEXT_MODE, MONO_TEXT_MODE } from './video.js';

export interface ScreenCell {
  char: number;
  attribute: number;
}

export interface ScreenCapture {
  mode: number;
  /** False in graphics modes: `cells` is then empty. */
  text: boolean;
  columns: number;
  rows: number;
  /** rows × columns. */
  cells: ScreenCell[][];
  cursor: { row: number; column: number; visible: boolean };
  /** The 16 attribute colours as 8-bit RGB. */
  palette: [number, number, number][];
  /** Attribute bit 7 blinks (else it selects a bright background). */
  blink: boolean;
}

const ATTR_MODE_CONTROL = 0x10;
const ATTR_BLINK = 0x08;
const MODE_MASK = 0x7f;
const MAX_COLUMNS = 132;
const MAX_ROWS = 60;

/** Code page 437, the PC's character set, as Unicode (0x00 is shown as a space). */
export const CP437: readonly string[] = [
  ...' ☺☻♥♦♣♠•◘○◙♂♀♪♫☼►◄↕‼¶§▬↨↑↓→←∟↔▲▼',
  ...' !"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~⌂',
  ...'ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»',
  ...'░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀',
  ...'αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0',
];

/** The displayed text screen; `vgaRegs` is the VGA's register file (Vga.regs or a shared view of it). */
export function captureScreen(memory: Uint8Array, vgaRegs: Uint8Array): ScreenCapture {
  const number = (memory[BDA + BDA_VIDEO_MODE] ?? DEFAULT_TEXT_MODE) & MODE_MASK;
  const mode = VIDEO_MODES.get(number) ?? VIDEO_MODES.get(DEFAULT_TEXT_MODE)!;
  const columns = Math.min(
    Math.max(1, (memory[BDA + BDA_VIDEO_COLUMNS] ?? 80) | ((memory[BDA + BDA_VIDEO_COLUMNS + 1] ?? 0) << 8)),
    MAX_COLUMNS,
  );
  const rows = mode.text ? Math.min((memory[BDA + BDA_VIDEO_ROWS] ?? 24) + 1, MAX_ROWS) : mode.rows;
  const cursor = vgaCursor(vgaRegs);
  const start = vgaStartAddress(vgaRegs);
  const palette = vgaTextPalette(vgaRegs);
  const blink = ((vgaRegs[VGA_ATTR + ATTR_MODE_CONTROL] ?? 0) & ATTR_BLINK) !== 0;
  const cells: ScreenCell[][] = [];
  if (mode.text) {
    // The CRTC addresses words; mono text lives at B000, colour at B800, both 32 KiB.
    const base = linear(number === MONO_TEXT_MODE ? 0xb000 : 0xb800, 0);
    for (let r = 0; r < rows; r++) {
      const row: ScreenCell[] = [];
      for (let c = 0; c < columns; c++) {
        const at = base + (((start + r * columns + c) * 2) & 0x7fff);
        row.push({ char: memory[at] ?? 0, attribute: memory[at + 1] ?? 0 });
      }
      cells.push(row);
    }
  }
  const offset = cursor.location - start;
  return {
    mode: number,
    text: mode.text,
    columns,
    rows,
    cells,
    cursor: {
      row: Math.floor(offset / columns),
      column: offset % columns,
      visible: !cursor.disabled && offset >= 0 && offset < rows * columns,
    },
    palette,
    blink,
  };
}

/** One row as text: CP437 to Unicode, trailing blanks dropped. */
export function rowText(row: readonly ScreenCell[]): string {
  return row
    .map((cell) => CP437[cell.char] ?? ' ')
    .join('')
    .replace(/[ \u00a0]+$/, '');
}

/** The screen as lines of text (one per row, trailing blanks dropped), each ending in a newline. */
export function screenText(screen: ScreenCapture): string {
  if (!screen.text) return `(graphics mode ${screen.mode.toString(16).padStart(2, '0')}h: no text to capture)\n`;
  return screen.cells.map((row) => `${rowText(row)}\n`).join('');
}

/** SGR parameters for an attribute: 24-bit colours from the palette. */
export function attributeSgr(attribute: number, screen: Pick<ScreenCapture, 'palette' | 'blink'>): string {
  const fg = screen.palette[attribute & 0x0f] ?? [170, 170, 170];
  const bgIndex = screen.blink ? (attribute >> 4) & 0x07 : (attribute >> 4) & 0x0f;
  const bg = screen.palette[bgIndex] ?? [0, 0, 0];
  const blink = screen.blink && attribute & 0x80 ? ';5' : '';
  return `38;2;${fg[0]};${fg[1]};${fg[2]};48;2;${bg[0]};${bg[1]};${bg[2]}${blink}`;
}

/** The screen with ANSI colours: each row's attribute runs as SGR sequences, reset at each line end. */
export function screenAnsi(screen: ScreenCapture): string {
  if (!screen.text) return screenText(screen);
  let out = '';
  for (const row of screen.cells) {
    let current = -1;
    for (const cell of row) {
      if (cell.attribute !== current) {
        current = cell.attribute;
        out += `\x1b[${attributeSgr(current, screen)}m`;
      }
      out += CP437[cell.char] ?? ' ';
    }
    out += '\x1b[0m\n';
  }
  return out;
}

/** CP437 bytes (teletype output) as UTF-8 text: control characters a terminal uses pass through. */
export function cp437ToUtf8(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) {
    if (b === 0x07 || b === 0x08 || b === 0x09 || b === 0x0a || b === 0x0d || b === 0x1b) out += String.fromCharCode(b);
    else if (b === 0) continue;
    else out += CP437[b] ?? '?';
  }
  return out;
}
