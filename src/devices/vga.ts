/**
 * The VGA's I/O registers as a text-mode program sees them (IBM VGA Technical Reference): the
 * CRT controller at 0x3D4/0x3D5 (0x3B4/0x3B5 when the miscellaneous output register selects mono
 * addressing) with the cursor shape, cursor location and display start address; the sequencer
 * (0x3C4/0x3C5), graphics controller (0x3CE/0x3CF), attribute controller (0x3C0/0x3C1 with its
 * index/data flip-flop, reset by reading input status 1), the DAC (0x3C6-0x3C9), miscellaneous
 * output (0x3C2 write, 0x3CC read), input status 0/1 (0x3C2/0x3DA, the latter with the vertical
 * and horizontal retrace bits running at the VGA's 70 Hz / 31.5 kHz from the host clock) and the
 * CGA mode-control and colour-select registers (0x3D8/0x3D9) that old programs still write.
 *
 * The frame buffer itself (0xB8000 for colour text) is plain guest RAM: the guest writes it
 * directly. The registers live in one byte array (VGA_STATE_BYTES), so a screen renderer in
 * another thread can read the cursor and start address from a SharedArrayBuffer view of it.
 *
 * Registered at VGA_IO_BASE (0x3B0) with VGA_IO_COUNT (0x30) ports. Word writes to an index port
 * (`out dx, ax` with DX=0x3D4) set the index and then the data, as on the card.
 */
import type { PioDevice, PioSize, Snapshottable } from './device.js';

export const VGA_IO_BASE = 0x3b0;
export const VGA_IO_COUNT = 0x30;

// Port offsets from VGA_IO_BASE.
const MONO_CRTC_INDEX = 0x04; // 0x3B4
const MONO_CRTC_DATA = 0x05;
const MONO_INPUT_STATUS1 = 0x0a; // 0x3BA
const ATTR_INDEX_DATA = 0x10; // 0x3C0
const ATTR_DATA_READ = 0x11; // 0x3C1
const MISC_WRITE_STATUS0 = 0x12; // 0x3C2: misc output (write), input status 0 (read)
const SEQ_INDEX = 0x14; // 0x3C4
const SEQ_DATA = 0x15;
const DAC_MASK = 0x16; // 0x3C6
const DAC_READ_INDEX = 0x17; // 0x3C7 (write), DAC state (read)
const DAC_WRITE_INDEX = 0x18; // 0x3C8
const DAC_DATA = 0x19; // 0x3C9
const FEATURE_READ = 0x1a; // 0x3CA
const MISC_READ = 0x1c; // 0x3CC
const GC_INDEX = 0x1e; // 0x3CE
const GC_DATA = 0x1f;
const COLOR_CRTC_INDEX = 0x24; // 0x3D4
const COLOR_CRTC_DATA = 0x25;
const CGA_MODE_CONTROL = 0x28; // 0x3D8
const CGA_COLOR_SELECT = 0x29; // 0x3D9
const COLOR_INPUT_STATUS1 = 0x2a; // 0x3DA

// CRTC registers.
export const CRTC_CURSOR_START = 0x0a;
export const CRTC_CURSOR_END = 0x0b;
export const CRTC_START_ADDRESS_HIGH = 0x0c;
export const CRTC_START_ADDRESS_LOW = 0x0d;
export const CRTC_CURSOR_LOCATION_HIGH = 0x0e;
export const CRTC_CURSOR_LOCATION_LOW = 0x0f;
export const CRTC_MAX_SCAN_LINE = 0x09;
export const CRTC_OFFSET = 0x13;
export const CRTC_REGISTER_COUNT = 0x19;
export const CRTC_CURSOR_DISABLE = 0x20; // cursor start register bit 5
export const CRTC_CURSOR_LINE_MASK = 0x1f;
export const SEQ_REGISTER_COUNT = 5;
export const GC_REGISTER_COUNT = 9;
export const ATTR_REGISTER_COUNT = 0x15;
export const ATTR_INDEX_MASK = 0x1f;
export const ATTR_PAS = 0x20; // palette address source: set = the display runs
export const DAC_ENTRIES = 256;
export const DAC_COMPONENT_MASK = 0x3f;

/** Misc output: bit 0 selects colour I/O addresses (0x3Dx) over mono (0x3Bx). */
export const MISC_IO_COLOR = 0x01;
/** Input status 1 bits. */
export const STATUS1_DISPLAY_DISABLED = 0x01; // horizontal or vertical retrace
export const STATUS1_VRETRACE = 0x08;
/** DAC state (0x3C7 read): 0 = the DAC was last given a write index, 3 = a read index. */
export const DAC_STATE_WRITE = 0x00;
export const DAC_STATE_READ = 0x03;

// Timing of the 640x400 70 Hz text mode: 449 lines of 31.78 µs, vertical retrace 2 lines after 412.
const FRAME_MS = 1000 / 70.086;
const LINE_MS = FRAME_MS / 449;
const VRETRACE_START_LINE = 412;
const VRETRACE_LINES = 2;
const VBLANK_START_LINE = 407;
const VBLANK_END_LINE = 442;
const HBLANK_FRACTION = 0.2;

// Layout of the state bytes.
export const VGA_CRTC = 0;
export const VGA_SEQ = VGA_CRTC + 32;
export const VGA_GC = VGA_SEQ + 8;
export const VGA_ATTR = VGA_GC + 16;
export const VGA_MISC = VGA_ATTR + 32;
export const VGA_CRTC_INDEX = VGA_MISC + 1;
export const VGA_SEQ_INDEX = VGA_MISC + 2;
export const VGA_GC_INDEX = VGA_MISC + 3;
export const VGA_ATTR_INDEX = VGA_MISC + 4;
export const VGA_ATTR_FLIPFLOP = VGA_MISC + 5; // 0: next 0x3C0 write is an index, 1: data
export const VGA_DAC_MASK = VGA_MISC + 6;
export const VGA_DAC_WRITE_INDEX = VGA_MISC + 7;
export const VGA_DAC_READ_INDEX = VGA_MISC + 8;
export const VGA_DAC_COMPONENT = VGA_MISC + 9; // 0-2: which of R, G, B comes next
export const VGA_DAC_STATE = VGA_MISC + 10;
export const VGA_CGA_MODE = VGA_MISC + 11;
export const VGA_CGA_COLOR = VGA_MISC + 12;
export const VGA_FEATURE = VGA_MISC + 13;
/** Set to 1 whenever the guest itself (not the BIOS) writes a VGA register: it drives the screen. */
export const VGA_GUEST_WROTE = VGA_MISC + 14;
export const VGA_DAC = 128;
export const VGA_STATE_BYTES = VGA_DAC + DAC_ENTRIES * 3;

/** Mode 3 (80x25 colour text), IBM's register values. */
export const MODE3_CRTC = [
  0x5f, 0x4f, 0x50, 0x82, 0x55, 0x81, 0xbf, 0x1f, 0x00, 0x4f, 0x0d, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x9c, 0x8e, 0x8f, 0x28, 0x1f, 0x96, 0xb9,
  0xa3, 0xff,
];
/** Modes 0/1 (40x25): the CRTC halves the horizontal timing and the offset. */
export const MODE1_CRTC = [
  0x2d, 0x27, 0x28, 0x90, 0x2b, 0xa0, 0xbf, 0x1f, 0x00, 0x4f, 0x0d, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x9c, 0x8e, 0x8f, 0x14, 0x1f, 0x96, 0xb9,
  0xa3, 0xff,
];
export const MODE3_SEQ = [0x03, 0x00, 0x03, 0x00, 0x02];
export const MODE1_SEQ = [0x03, 0x08, 0x03, 0x00, 0x02];
export const MODE3_GC = [0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0e, 0x00, 0xff];
export const MODE7_GC = [0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0a, 0x00, 0xff];
export const MODE3_ATTR = [
  0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x0c, 0x00, 0x0f, 0x08, 0x00,
];
export const MODE7_ATTR = [
  0x00, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x10, 0x18, 0x18, 0x18, 0x18, 0x18, 0x18, 0x18, 0x0e, 0x00, 0x0f, 0x08, 0x00,
];
export const MODE3_MISC = 0x67;
export const MODE7_MISC = 0x66;
/** The 16 text colours mode 3 shows (6-bit DAC components), for reference. */
export const TEXT_PALETTE_RGB6: readonly (readonly [number, number, number])[] = [
  [0, 0, 0],
  [0, 0, 42],
  [0, 42, 0],
  [0, 42, 42],
  [42, 0, 0],
  [42, 0, 42],
  [42, 21, 0],
  [42, 42, 42],
  [21, 21, 21],
  [21, 21, 63],
  [21, 63, 21],
  [21, 63, 63],
  [63, 21, 21],
  [63, 21, 63],
  [63, 63, 21],
  [63, 63, 63],
];

/** A text mode's register set. */
export interface VgaTextModeRegisters {
  crtc: readonly number[];
  seq: readonly number[];
  gc: readonly number[];
  attr: readonly number[];
  misc: number;
}

export const VGA_TEXT_MODE_80 = { crtc: MODE3_CRTC, seq: MODE3_SEQ, gc: MODE3_GC, attr: MODE3_ATTR, misc: MODE3_MISC } as const;
export const VGA_TEXT_MODE_40 = { crtc: MODE1_CRTC, seq: MODE1_SEQ, gc: MODE3_GC, attr: MODE3_ATTR, misc: MODE3_MISC } as const;
export const VGA_TEXT_MODE_MONO = { crtc: MODE3_CRTC, seq: MODE3_SEQ, gc: MODE7_GC, attr: MODE7_ATTR, misc: MODE7_MISC } as const;

export interface VgaCursor {
  /** Character offset from the start of video memory (CRTC 0Eh/0Fh). */
  location: number;
  start: number;
  end: number;
  disabled: boolean;
}

export interface VgaState {
  regs: number[];
}

const BYTE = 0xff;

/** The cursor the CRTC shows, from a register file (Vga.regs or a shared view of it in another thread). */
export function vgaCursor(regs: Uint8Array): VgaCursor {
  const start = regs[VGA_CRTC + CRTC_CURSOR_START] ?? 0;
  return {
    location: ((regs[VGA_CRTC + CRTC_CURSOR_LOCATION_HIGH] ?? 0) << 8) | (regs[VGA_CRTC + CRTC_CURSOR_LOCATION_LOW] ?? 0),
    start: start & CRTC_CURSOR_LINE_MASK,
    end: (regs[VGA_CRTC + CRTC_CURSOR_END] ?? 0) & CRTC_CURSOR_LINE_MASK,
    disabled: (start & CRTC_CURSOR_DISABLE) !== 0,
  };
}

/** The CRTC's display start address (in characters), from a register file. */
export function vgaStartAddress(regs: Uint8Array): number {
  return ((regs[VGA_CRTC + CRTC_START_ADDRESS_HIGH] ?? 0) << 8) | (regs[VGA_CRTC + CRTC_START_ADDRESS_LOW] ?? 0);
}

/** The 16 text colours (attribute registers through the DAC) as 8-bit RGB, from a register file. */
export function vgaTextPalette(regs: Uint8Array): [number, number, number][] {
  return Array.from({ length: 16 }, (_, i) => {
    const dac = ((regs[VGA_ATTR + i] ?? 0) & 0x3f) * 3 + VGA_DAC;
    return [0, 1, 2].map((k) => Math.round((((regs[dac + k] ?? 0) & DAC_COMPONENT_MASK) * 255) / DAC_COMPONENT_MASK)) as [
      number,
      number,
      number,
    ];
  });
}

export class Vga implements PioDevice, Snapshottable<VgaState> {
  /** The register file; pass a SharedArrayBuffer-backed array to let another thread read it. */
  readonly regs: Uint8Array;

  constructor(
    regs: Uint8Array = new Uint8Array(VGA_STATE_BYTES),
    private readonly now: () => number = () => performance.now(),
  ) {
    if (regs.length < VGA_STATE_BYTES) throw new RangeError(`VGA state needs ${VGA_STATE_BYTES} bytes, not ${regs.length}`);
    this.regs = regs;
    this.loadTextMode(VGA_TEXT_MODE_80);
    this.regs[VGA_GUEST_WROTE] = 0;
  }

  /** Loads a text mode's registers (what INT 10h AH=00h does), the text palette included. */
  loadTextMode(mode: VgaTextModeRegisters): void {
    const r = this.regs;
    r.set(mode.crtc, VGA_CRTC);
    r.set(mode.seq, VGA_SEQ);
    r.set(mode.gc, VGA_GC);
    r.set(mode.attr, VGA_ATTR);
    r[VGA_MISC] = mode.misc;
    r[VGA_DAC_MASK] = BYTE;
    r[VGA_ATTR_FLIPFLOP] = 0;
    r[VGA_ATTR_INDEX] = ATTR_PAS;
    for (let i = 0; i < DAC_ENTRIES; i++) {
      // The 64 EGA colours (bits 2-0 primary RGB at 2/3, bits 5-3 secondary at 1/3), repeated.
      const ega = i & 0x3f;
      const c = [(ega >> 2) & 1, (ega >> 1) & 1, ega & 1].map((bit, k) => bit * 42 + ((ega >> (5 - k)) & 1) * 21);
      r[VGA_DAC + i * 3] = c[0]!;
      r[VGA_DAC + i * 3 + 1] = c[1]!;
      r[VGA_DAC + i * 3 + 2] = c[2]!;
    }
  }

  crtc(index: number): number {
    return this.regs[VGA_CRTC + index] ?? 0;
  }

  setCrtc(index: number, value: number): void {
    if (index < CRTC_REGISTER_COUNT) this.regs[VGA_CRTC + index] = value & BYTE;
  }

  get cursor(): VgaCursor {
    return vgaCursor(this.regs);
  }

  setCursorLocation(location: number): void {
    this.setCrtc(CRTC_CURSOR_LOCATION_HIGH, location >>> 8);
    this.setCrtc(CRTC_CURSOR_LOCATION_LOW, location);
  }

  /** Display start, in characters from the start of video memory (CRTC 0Ch/0Dh). */
  get startAddress(): number {
    return vgaStartAddress(this.regs);
  }

  setStartAddress(address: number): void {
    this.setCrtc(CRTC_START_ADDRESS_HIGH, address >>> 8);
    this.setCrtc(CRTC_START_ADDRESS_LOW, address);
  }

  /** The 16 attribute-controller colours as 8-bit RGB, through the DAC. */
  textPalette(): [number, number, number][] {
    return vgaTextPalette(this.regs);
  }

  private get colorIo(): boolean {
    return (this.regs[VGA_MISC]! & MISC_IO_COLOR) !== 0;
  }

  pioRead(offset: number, size: PioSize): number {
    let value = 0;
    for (let i = 0; i < size; i++) value |= this.readByte(offset + i) << (8 * i);
    return value >>> 0;
  }

  pioWrite(offset: number, size: PioSize, value: number): void {
    this.regs[VGA_GUEST_WROTE] = 1;
    for (let i = 0; i < size; i++) this.writeByte(offset + i, (value >>> (8 * i)) & BYTE);
  }

  private readByte(offset: number): number {
    const r = this.regs;
    switch (offset) {
      case MONO_CRTC_INDEX:
      case COLOR_CRTC_INDEX:
        return this.crtcPort(offset) ? r[VGA_CRTC_INDEX]! : BYTE;
      case MONO_CRTC_DATA:
      case COLOR_CRTC_DATA:
        return this.crtcPort(offset) ? this.crtc(r[VGA_CRTC_INDEX]!) : BYTE;
      case MONO_INPUT_STATUS1:
      case COLOR_INPUT_STATUS1:
        if (!this.crtcPort(offset)) return BYTE;
        r[VGA_ATTR_FLIPFLOP] = 0;
        return this.inputStatus1();
      case ATTR_INDEX_DATA:
        return r[VGA_ATTR_INDEX]!;
      case ATTR_DATA_READ:
        return r[VGA_ATTR + (r[VGA_ATTR_INDEX]! & ATTR_INDEX_MASK)] ?? 0;
      case MISC_WRITE_STATUS0:
        return 0; // input status 0: no switch sense, no CRT interrupt
      case SEQ_INDEX:
        return r[VGA_SEQ_INDEX]!;
      case SEQ_DATA:
        return r[VGA_SEQ_INDEX]! < SEQ_REGISTER_COUNT ? r[VGA_SEQ + r[VGA_SEQ_INDEX]!]! : BYTE;
      case GC_INDEX:
        return r[VGA_GC_INDEX]!;
      case GC_DATA:
        return r[VGA_GC_INDEX]! < GC_REGISTER_COUNT ? r[VGA_GC + r[VGA_GC_INDEX]!]! : BYTE;
      case DAC_MASK:
        return r[VGA_DAC_MASK]!;
      case DAC_READ_INDEX:
        return r[VGA_DAC_STATE]!;
      case DAC_WRITE_INDEX:
        return r[VGA_DAC_WRITE_INDEX]!;
      case DAC_DATA: {
        const at = VGA_DAC + r[VGA_DAC_READ_INDEX]! * 3 + r[VGA_DAC_COMPONENT]!;
        this.nextComponent(VGA_DAC_READ_INDEX);
        return r[at]! & DAC_COMPONENT_MASK;
      }
      case FEATURE_READ:
        return r[VGA_FEATURE]!;
      case MISC_READ:
        return r[VGA_MISC]!;
      case CGA_MODE_CONTROL:
        return r[VGA_CGA_MODE]!;
      case CGA_COLOR_SELECT:
        return r[VGA_CGA_COLOR]!;
      default:
        return BYTE;
    }
  }

  private writeByte(offset: number, byte: number): void {
    const r = this.regs;
    switch (offset) {
      case MONO_CRTC_INDEX:
      case COLOR_CRTC_INDEX:
        if (this.crtcPort(offset)) r[VGA_CRTC_INDEX] = byte;
        return;
      case MONO_CRTC_DATA:
      case COLOR_CRTC_DATA:
        if (this.crtcPort(offset)) this.setCrtc(r[VGA_CRTC_INDEX]!, byte);
        return;
      case MONO_INPUT_STATUS1:
      case COLOR_INPUT_STATUS1:
        if (this.crtcPort(offset)) r[VGA_FEATURE] = byte; // feature control write
        return;
      case ATTR_INDEX_DATA:
        if (r[VGA_ATTR_FLIPFLOP] === 0) r[VGA_ATTR_INDEX] = byte & (ATTR_INDEX_MASK | ATTR_PAS);
        else if ((r[VGA_ATTR_INDEX]! & ATTR_INDEX_MASK) < ATTR_REGISTER_COUNT) r[VGA_ATTR + (r[VGA_ATTR_INDEX]! & ATTR_INDEX_MASK)] = byte;
        r[VGA_ATTR_FLIPFLOP] = r[VGA_ATTR_FLIPFLOP] === 0 ? 1 : 0;
        return;
      case MISC_WRITE_STATUS0:
        r[VGA_MISC] = byte;
        return;
      case SEQ_INDEX:
        r[VGA_SEQ_INDEX] = byte;
        return;
      case SEQ_DATA:
        if (r[VGA_SEQ_INDEX]! < SEQ_REGISTER_COUNT) r[VGA_SEQ + r[VGA_SEQ_INDEX]!] = byte;
        return;
      case GC_INDEX:
        r[VGA_GC_INDEX] = byte;
        return;
      case GC_DATA:
        if (r[VGA_GC_INDEX]! < GC_REGISTER_COUNT) r[VGA_GC + r[VGA_GC_INDEX]!] = byte;
        return;
      case DAC_MASK:
        r[VGA_DAC_MASK] = byte;
        return;
      case DAC_READ_INDEX:
        r[VGA_DAC_READ_INDEX] = byte;
        r[VGA_DAC_COMPONENT] = 0;
        r[VGA_DAC_STATE] = DAC_STATE_READ;
        return;
      case DAC_WRITE_INDEX:
        r[VGA_DAC_WRITE_INDEX] = byte;
        r[VGA_DAC_COMPONENT] = 0;
        r[VGA_DAC_STATE] = DAC_STATE_WRITE;
        return;
      case DAC_DATA:
        r[VGA_DAC + r[VGA_DAC_WRITE_INDEX]! * 3 + r[VGA_DAC_COMPONENT]!] = byte & DAC_COMPONENT_MASK;
        this.nextComponent(VGA_DAC_WRITE_INDEX);
        return;
      case CGA_MODE_CONTROL:
        r[VGA_CGA_MODE] = byte;
        return;
      case CGA_COLOR_SELECT:
        r[VGA_CGA_COLOR] = byte;
        return;
      default:
        return;
    }
  }

  /** After the third component the DAC index moves to the next entry. */
  private nextComponent(indexAt: number): void {
    const r = this.regs;
    if (r[VGA_DAC_COMPONENT]! < 2) {
      r[VGA_DAC_COMPONENT] = r[VGA_DAC_COMPONENT]! + 1;
      return;
    }
    r[VGA_DAC_COMPONENT] = 0;
    r[indexAt] = (r[indexAt]! + 1) & BYTE;
  }

  /** The CRTC answers at 0x3Dx in colour addressing and at 0x3Bx in mono addressing. */
  private crtcPort(offset: number): boolean {
    return offset >= COLOR_CRTC_INDEX ? this.colorIo : !this.colorIo;
  }

  /** Retrace bits from the host clock, at the VGA's text-mode timing. */
  private inputStatus1(): number {
    const t = this.now() % FRAME_MS;
    const line = Math.floor(t / LINE_MS);
    const inLine = (t % LINE_MS) / LINE_MS;
    const vretrace = line >= VRETRACE_START_LINE && line < VRETRACE_START_LINE + VRETRACE_LINES;
    const blank = (line >= VBLANK_START_LINE && line < VBLANK_END_LINE) || inLine >= 1 - HBLANK_FRACTION;
    return (vretrace ? STATUS1_VRETRACE : 0) | (blank ? STATUS1_DISPLAY_DISABLED : 0);
  }

  state(): VgaState {
    return { regs: Array.from(this.regs.subarray(0, VGA_STATE_BYTES)) };
  }

  restore(state: VgaState): void {
    const regs: unknown = (state as Partial<VgaState> | null)?.regs;
    if (!Array.isArray(regs) || regs.length !== VGA_STATE_BYTES || !regs.every((b) => Number.isInteger(b) && b >= 0 && b <= BYTE))
      throw new RangeError(`the VGA state is not ${VGA_STATE_BYTES} register bytes`);
    this.regs.set(regs as number[]);
  }
}
