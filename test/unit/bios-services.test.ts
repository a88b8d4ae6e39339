/**
 * The BIOS services' register contracts, each call made on a trap frame laid out as the ROM's
 * stub lays it out: registers and flags in, registers, flags and memory out.
 */
import { describe, expect, it } from 'vitest';
import { TrapFrame } from '../../src/bios/frame.js';
import { E820_SIGNATURE } from '../../src/bios/system.js';
import { BDA, BDA_KBD_FLAGS0, BDA_TICKS, FLAGS_IF, KBD_LSHIFT, linear } from '../../src/bios/layout.js';
import { keyStroke } from '../../src/bios/console-input.js';
import { SCAN_UP } from '../../src/bios/keymap.js';
import { CALLER_SP, MIB, makeBios, screenRow } from './bios-helpers.js';

const INT10 = 0x10;
const INT13 = 0x13;
const INT15 = 0x15;
const INT16 = 0x16;
const INT1A = 0x1a;

function teletype(bios: ReturnType<typeof makeBios>, text: string): void {
  for (const ch of text) bios.call(INT10, { eax: 0x0e00 | ch.charCodeAt(0) });
}

describe('INT 10h video', () => {
  it('teletype writes at the cursor, handles CR, LF and BS, and reports the text to the console', () => {
    const bios = makeBios();
    teletype(bios, 'Hi\r\nab\bc');
    expect(screenRow(bios.memory, 0)).toBe('Hi');
    expect(screenRow(bios.memory, 1)).toBe('ac');
    const f = bios.call(INT10, { eax: 0x0300 });
    expect(f.dh).toBe(1);
    expect(f.dl).toBe(2);
    expect(String.fromCharCode(...bios.console)).toBe('Hi\r\nab\bc');
    // The CRTC's cursor follows: row 1, column 2 of an 80-column screen.
    expect(bios.vga.cursor.location).toBe(82);
  });

  it('teletype writes on the active page whatever BH says (as SeaBIOS), and keeps the cell attribute', () => {
    const bios = makeBios();
    bios.memory[0xb8001] = 0x4e;
    bios.call(INT10, { eax: 0x0e41, ebx: 0x0300 });
    expect(bios.memory[0xb8000]).toBe(0x41);
    expect(bios.memory[0xb8001]).toBe(0x4e);
    expect(bios.memory[0xb8000 + 3 * 0x1000]).toBe(0x20);
  });

  it('scrolls the page up when a line feed passes the last row', () => {
    const bios = makeBios();
    for (let i = 0; i < 25; i++) teletype(bios, `line ${i}\r\n`);
    expect(screenRow(bios.memory, 0)).toBe('line 1');
    expect(screenRow(bios.memory, 23)).toBe('line 24');
    expect(screenRow(bios.memory, 24)).toBe('');
    expect(bios.call(INT10, { eax: 0x0300 }).dx).toBe(0x1800);
  });

  it('sets and gets the cursor per page, writes characters with 09h/0Ah without moving it, reads them with 08h', () => {
    const bios = makeBios();
    bios.call(INT10, { eax: 0x0200, edx: 0x0305 });
    bios.call(INT10, { eax: 0x0958, ebx: 0x004e, ecx: 3 });
    bios.call(INT10, { eax: 0x0a41, ebx: 0x0000, ecx: 1 });
    expect(screenRow(bios.memory, 3)).toBe('     AXX');
    const read = bios.call(INT10, { eax: 0x0800 });
    expect(read.ax).toBe(0x4e41); // 0Ah kept the attribute 09h wrote
    const pos = bios.call(INT10, { eax: 0x0300 });
    expect(pos.dx).toBe(0x0305);
    expect(pos.cx).toBe(0x0607);
    bios.call(INT10, { eax: 0x0200, ebx: 0x0200, edx: 0x0102 });
    expect(bios.call(INT10, { eax: 0x0300, ebx: 0x0200 }).dx).toBe(0x0102);
    expect(bios.call(INT10, { eax: 0x0300 }).dx).toBe(0x0305);
  });

  it('scrolls windows up and down with the fill attribute, and AL=0 clears', () => {
    const bios = makeBios();
    teletype(bios, 'a\r\nb\r\nc');
    bios.call(INT10, { eax: 0x0601, ebx: 0x1700, ecx: 0x0000, edx: 0x024f });
    expect([0, 1, 2].map((r) => screenRow(bios.memory, r))).toEqual(['b', 'c', '']);
    expect(bios.memory[0xb8000 + 2 * 160 + 1]).toBe(0x17);
    bios.call(INT10, { eax: 0x0701, ebx: 0x0700, ecx: 0x0000, edx: 0x024f });
    expect([0, 1, 2].map((r) => screenRow(bios.memory, r))).toEqual(['', 'b', 'c']);
    bios.call(INT10, { eax: 0x0600, ebx: 0x1f00, ecx: 0x0000, edx: 0x184f });
    expect(screenRow(bios.memory, 1)).toBe('');
    expect(bios.memory[0xb8000 + 24 * 160 + 79 * 2 + 1]).toBe(0x1f);
  });

  it('sets modes (00h), reports them (0Fh), and switches pages (05h) with the CRTC start address', () => {
    const bios = makeBios();
    teletype(bios, 'x');
    const set = bios.call(INT10, { eax: 0x0001 });
    expect(set.al).toBe(0x30);
    const mode = bios.call(INT10, { eax: 0x0f00 });
    expect(mode.al).toBe(1);
    expect(mode.ah).toBe(40);
    expect(bios.memory[0xb8000]).toBe(0x20); // cleared
    bios.call(INT10, { eax: 0x0003 });
    bios.call(INT10, { eax: 0x0502 });
    expect(bios.call(INT10, { eax: 0x0f00 }).bh).toBe(2);
    expect(bios.vga.startAddress).toBe(0x1000);
    teletype(bios, 'p2');
    expect(String.fromCharCode(bios.memory[0xb8000 + 2 * 0x1000]!)).toBe('p');
  });

  it('writes strings (13h) with one attribute or with attributes in the string, moving the cursor only if asked', () => {
    const bios = makeBios();
    bios.memory.set([0x48, 0x1f, 0x69, 0x2f], 0x600);
    bios.call(INT10, { eax: 0x1303, ebx: 0, ecx: 2, edx: 0x0500, es: 0, ebp: 0x600 });
    expect(screenRow(bios.memory, 5)).toBe('Hi');
    expect(bios.memory[0xb8000 + 5 * 160 + 1]).toBe(0x1f);
    expect(bios.memory[0xb8000 + 5 * 160 + 3]).toBe(0x2f);
    expect(bios.call(INT10, { eax: 0x0300 }).dx).toBe(0x0502);
    bios.memory.set(
      [...'ok'].map((c) => c.charCodeAt(0)),
      0x700,
    );
    bios.call(INT10, { eax: 0x1300, ebx: 0x0070, ecx: 2, edx: 0x0700, es: 0, ebp: 0x700 });
    expect(screenRow(bios.memory, 7)).toBe('ok');
    expect(bios.memory[0xb8000 + 7 * 160 + 1]).toBe(0x70);
    expect(bios.call(INT10, { eax: 0x0300 }).dx).toBe(0x0502);
  });

  it('hides the cursor through the CRTC (01h) and reports a VGA (1Ah, 12h BL=10h)', () => {
    const bios = makeBios();
    bios.call(INT10, { eax: 0x0100, ecx: 0x2000 });
    expect(bios.vga.cursor.disabled).toBe(true);
    const dcc = bios.call(INT10, { eax: 0x1a00 });
    expect(dcc.al).toBe(0x1a);
    expect(dcc.bl).toBe(0x08);
    expect(bios.call(INT10, { eax: 0x1200, ebx: 0x10 }).bh).toBe(0);
  });

  it('sets DAC colours and the blink bit (10h)', () => {
    const bios = makeBios();
    bios.call(INT10, { eax: 0x1010, ebx: 1, edx: 0x3f00, ecx: 0x0000 });
    const back = bios.call(INT10, { eax: 0x1015, ebx: 1 });
    expect([back.dh, back.ch, back.cl]).toEqual([0x3f, 0, 0]);
    bios.call(INT10, { eax: 0x1003, ebx: 0 });
    expect(bios.vga.regs[56 + 0x10]! & 0x08).toBe(0);
  });

  it('puts pixels in mode 13h (0Ch/0Dh)', () => {
    const bios = makeBios();
    bios.call(INT10, { eax: 0x0013 });
    bios.call(INT10, { eax: 0x0c2a, ecx: 10, edx: 3 });
    expect(bios.memory[0xa0000 + 3 * 320 + 10]).toBe(0x2a);
    expect(bios.call(INT10, { eax: 0x0d00, ecx: 10, edx: 3 }).al).toBe(0x2a);
  });
});

describe('unsupported functions', () => {
  it('return CF=1, AH=86h, and are traced once', () => {
    const bios = makeBios();
    const f = bios.call(INT10, { eax: 0x4f00 });
    expect(f.carry).toBe(true);
    expect(f.ah).toBe(0x86);
    bios.call(INT10, { eax: 0x4f00 });
    expect(bios.traces.filter((l) => l.includes('unsupported')).length).toBe(1);
  });

  it('trace each call with its inputs, and count calls per service', () => {
    const bios = makeBios();
    teletype(bios, 'H');
    expect(bios.traces.at(-1)).toMatch(/^int10 ah=0e al='H' {2}caller=0000:7c42$/);
    teletype(bios, 'i');
    expect(bios.counters[1 * 256 + 0x0e]).toBe(2); // INT 10h is the second trapped vector
  });
});

describe('INT 13h disk', () => {
  const floppy = (): Uint8Array => {
    const image = new Uint8Array(1474560);
    for (let lba = 0; lba < 2880; lba++) image[lba * 512] = lba & 0xff;
    return image;
  };

  it('reads CHS sectors into ES:BX and returns AL = sectors read', () => {
    const bios = makeBios({ disks: [{ drive: 0, bytes: floppy() }] });
    // Cylinder 1, head 1, sector 3 of an 18-sector, 2-head floppy: LBA (1*2+1)*18+2 = 56.
    const f = bios.call(INT13, { eax: 0x0202, ecx: 0x0103, edx: 0x0100, es: 0x0800, ebx: 0x0010 });
    expect(f.carry).toBe(false);
    expect(f.ah).toBe(0);
    expect(f.al).toBe(2);
    expect(bios.memory[0x8010]).toBe(56);
    expect(bios.memory[0x8010 + 512]).toBe(57);
  });

  it('reports the floppy geometry and parameter table (08h), and the drive type (15h)', () => {
    const bios = makeBios({ disks: [{ drive: 0, bytes: floppy() }] });
    const f = bios.call(INT13, { eax: 0x0800, edx: 0x0000 });
    expect(f.carry).toBe(false);
    expect(f.ch).toBe(79);
    expect(f.cl).toBe(18);
    expect(f.dh).toBe(1);
    expect(f.dl).toBe(1);
    expect(f.bl).toBe(4);
    expect(linear(f.es, f.di)).toBe(0xfefc7);
    expect(bios.memory[0xfefc7 + 4]).toBe(18);
    expect(bios.call(INT13, { eax: 0x1500, edx: 0x0000 }).ah).toBe(0x01);
    expect(bios.call(INT13, { eax: 0x1500, edx: 0x0001 }).ah).toBe(0x00);
  });

  it('fails out-of-range and bad requests with the BIOS status in AH and the BDA', () => {
    const bios = makeBios({ disks: [{ drive: 0, bytes: floppy() }] });
    const f = bios.call(INT13, { eax: 0x0201, ecx: 0x0013, edx: 0x0000, ebx: 0x8000 });
    expect(f.carry).toBe(true);
    expect(f.ah).toBe(0x04);
    expect(f.al).toBe(0);
    expect(bios.memory[BDA + 0x41]).toBe(0x04);
    expect(bios.call(INT13, { eax: 0x0100, edx: 0 }).al).toBe(0x04); // last status
    expect(bios.call(INT13, { eax: 0x0200, ecx: 0x0001, edx: 0 }).ah).toBe(0x01); // zero sectors
    const absent = bios.call(INT13, { eax: 0x0201, ecx: 0x0001, edx: 0x0080, ebx: 0x8000 });
    expect(absent.carry).toBe(true);
    expect(absent.ah).toBe(0x01);
  });

  it('keeps writes in memory unless the disk writes through', () => {
    const image = new Uint8Array(4 * 512);
    const bios = makeBios({ disks: [{ drive: 0x80, bytes: image }] });
    bios.memory.fill(0x5a, 0x9000, 0x9200);
    const w = bios.call(INT13, { eax: 0x0301, ecx: 0x0002, edx: 0x0080, ebx: 0x9000 });
    expect(w.carry).toBe(false);
    expect(image[512]).toBe(0);
    bios.call(INT13, { eax: 0x0201, ecx: 0x0002, edx: 0x0080, ebx: 0xa000 });
    expect(bios.memory[0xa000]).toBe(0x5a);
    expect(bios.disks.get(0x80)!.keptSectors).toBe(1);
    const through = new Uint8Array(4 * 512);
    const other = makeBios({ disks: [{ drive: 0x80, bytes: through, writeThrough: true }] });
    other.memory.fill(0x33, 0x9000, 0x9200);
    other.call(INT13, { eax: 0x0301, ecx: 0x0001, edx: 0x0080, ebx: 0x9000 });
    expect(through[0]).toBe(0x33);
  });

  it('has the EDD extensions for hard disks: 41h, 42h/43h with a disk address packet, 48h', () => {
    const image = new Uint8Array(100 * 512);
    image[7 * 512] = 0x77;
    const bios = makeBios({
      disks: [
        { drive: 0x80, bytes: image },
        { drive: 0, bytes: floppy() },
      ],
    });
    const check = bios.call(INT13, { eax: 0x4100, ebx: 0x55aa, edx: 0x80 });
    expect(check.carry).toBe(false);
    expect(check.bx).toBe(0xaa55);
    expect(check.ah).toBe(0x30);
    expect(check.cx & 1).toBe(1);
    expect(bios.call(INT13, { eax: 0x4100, ebx: 0x55aa, edx: 0x00 }).carry).toBe(true);
    // DAP at 0x500: 16 bytes, 1 sector, to 0000:8000, LBA 7.
    bios.memory.set([0x10, 0, 1, 0, 0x00, 0x80, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0], 0x500);
    const read = bios.call(INT13, { eax: 0x4200, edx: 0x80, ds: 0, esi: 0x500 });
    expect(read.carry).toBe(false);
    expect(bios.memory[0x8000]).toBe(0x77);
    bios.memory.set([0x1a, 0], 0x600);
    const params = bios.call(INT13, { eax: 0x4800, edx: 0x80, ds: 0, esi: 0x600 });
    expect(params.carry).toBe(false);
    const view = new DataView(bios.memory.buffer);
    expect(view.getUint32(0x600 + 8, true)).toBe(16); // heads
    expect(view.getUint32(0x600 + 12, true)).toBe(63); // sectors per track
    expect(view.getUint32(0x600 + 16, true)).toBe(16 * 63); // one cylinder
    expect(view.getUint16(0x600 + 24, true)).toBe(512);
    // A read past the end fails and reports 0 sectors moved.
    bios.memory.set([0x10, 0, 1, 0, 0x00, 0x80, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0], 0x500);
    const bad = bios.call(INT13, { eax: 0x4200, edx: 0x80, ds: 0, esi: 0x500 });
    expect(bad.carry).toBe(true);
    expect(view.getUint16(0x502, true)).toBe(0);
  });
});

describe('INT 09h and INT 16h keyboard', () => {
  const typeScanCodes = (bios: ReturnType<typeof makeBios>, codes: number[]): void => {
    for (const code of codes) {
      bios.i8042.pioWrite(4, 1, 0xd2); // write the byte into the output buffer as if the keyboard sent it
      bios.i8042.pioWrite(0, 1, code);
      bios.call(0x09, { sp: 0x6000 }); // an interrupt's frame, below any call in progress
    }
  };

  it('turns scan codes into key words with the shift state, and INT 16h 00h reads them in order', () => {
    const bios = makeBios();
    typeScanCodes(bios, keyStroke({ scan: 0x1e }));
    typeScanCodes(bios, keyStroke({ scan: 0x1e, shift: true }));
    typeScanCodes(bios, [0x2a]); // shift held
    expect(bios.call(INT16, { eax: 0x0200 }).al & KBD_LSHIFT).toBe(KBD_LSHIFT);
    typeScanCodes(bios, [0xaa]);
    expect(bios.memory[BDA + BDA_KBD_FLAGS0]! & KBD_LSHIFT).toBe(0);
    expect(bios.call(INT16, { eax: 0x0000 }).ax).toBe(0x1e61);
    expect(bios.call(INT16, { eax: 0x0000 }).ax).toBe(0x1e41);
  });

  it('01h leaves the key and clears ZF; an empty buffer sets ZF', () => {
    const bios = makeBios();
    expect(bios.call(INT16, { eax: 0x0100 }).zero).toBe(true);
    typeScanCodes(bios, keyStroke({ scan: 0x1c }));
    const peek = bios.call(INT16, { eax: 0x0100 });
    expect(peek.zero).toBe(false);
    expect(peek.ax).toBe(0x1c0d);
    expect(bios.call(INT16, { eax: 0x0100 }).ax).toBe(0x1c0d);
  });

  it('gives gray keys E0h in AL to 10h and 00h in AL to 00h', () => {
    const bios = makeBios();
    typeScanCodes(bios, keyStroke({ scan: SCAN_UP, extended: true }));
    typeScanCodes(bios, keyStroke({ scan: SCAN_UP, extended: true }));
    expect(bios.call(INT16, { eax: 0x1000 }).ax).toBe(0x48e0);
    expect(bios.call(INT16, { eax: 0x0000 }).ax).toBe(0x4800);
  });

  it('00h waits (the stub sleeps and calls again) until a key arrives', () => {
    const bios = makeBios();
    const f = bios.call(INT16, { eax: 0x0000 });
    expect(f.waiting).toBe(true);
    typeScanCodes(bios, keyStroke({ scan: 0x10 }));
    bios.call(INT16, {}, f);
    expect(f.waiting).toBe(false);
    expect(f.ax).toBe(0x1071);
  });

  it('Ctrl and Caps Lock change the key word; Ctrl-Alt-Del resets', () => {
    const bios = makeBios();
    typeScanCodes(bios, keyStroke({ scan: 0x2e, ctrl: true }));
    expect(bios.call(INT16, { eax: 0x0000 }).ax).toBe(0x2e03);
    typeScanCodes(bios, [0x3a, 0xba, ...keyStroke({ scan: 0x10 })]);
    expect(bios.call(INT16, { eax: 0x0000 }).ax).toBe(0x1051);
    typeScanCodes(bios, [0x1d, 0x38, 0x53]);
    expect(bios.resets()).toBe(1);
  });
});

describe('INT 1Ah time', () => {
  it('reads and sets the tick count, reporting the midnight flag once', () => {
    const bios = makeBios();
    new DataView(bios.memory.buffer).setUint32(BDA + BDA_TICKS, 0x00123456, true);
    bios.memory[BDA + 0x70] = 1;
    const f = bios.call(INT1A, { eax: 0 });
    expect(f.cx).toBe(0x0012);
    expect(f.dx).toBe(0x3456);
    expect(f.al).toBe(1);
    expect(bios.call(INT1A, { eax: 0 }).al).toBe(0);
    bios.call(INT1A, { eax: 0x0100, ecx: 0, edx: 5 });
    expect(bios.call(INT1A, { eax: 0 }).dx).toBe(5);
  });

  it('reads the RTC time and date in BCD', () => {
    const bios = makeBios();
    const t = bios.call(INT1A, { eax: 0x0200 });
    expect([t.ch, t.cl, t.dh]).toEqual([0x14, 0x07, 0x09]);
    const d = bios.call(INT1A, { eax: 0x0400 });
    expect([d.ch, d.cl, d.dh, d.dl]).toEqual([0x20, 0x24, 0x03, 0x05]);
  });
});

describe('INT 11h, 12h, 15h', () => {
  it('report the equipment word and base memory', () => {
    const bios = makeBios({ disks: [{ drive: 0, bytes: new Uint8Array(1474560) }] });
    const eq = bios.call(0x11);
    expect(eq.ax & 1).toBe(1);
    expect((eq.ax >> 4) & 3).toBe(2); // 80x25 colour
    expect((eq.ax >> 9) & 7).toBe(1); // one serial port
    expect(bios.call(0x12).ax).toBe(639);
  });

  it('walk the E820 map with EBX continuation values', () => {
    const bios = makeBios({ memorySize: 16 * MIB });
    const entries: number[][] = [];
    let ebx = 0;
    do {
      const f = bios.call(INT15, { eax: 0xe820, ebx, ecx: 24, edx: E820_SIGNATURE, es: 0, edi: 0x500 });
      expect(f.carry).toBe(false);
      expect(f.eax).toBe(E820_SIGNATURE);
      expect(f.ecx).toBe(20);
      const v = new DataView(bios.memory.buffer, 0x500);
      entries.push([v.getUint32(0, true), v.getUint32(8, true), v.getUint32(16, true)]);
      ebx = f.ebx;
    } while (ebx !== 0);
    expect(entries).toEqual([
      [0, 0x9fc00, 1],
      [0x9fc00, 0x400, 2],
      [0xf0000, 0x10000, 2],
      [0x100000, 15 * MIB, 1],
    ]);
    expect(bios.call(INT15, { eax: 0xe820, ebx: 9, ecx: 24, edx: E820_SIGNATURE }).carry).toBe(true);
  });

  it('report extended memory (88h, E801h) and the configuration table (C0h)', () => {
    const bios = makeBios({ memorySize: 64 * MIB });
    expect(bios.call(INT15, { eax: 0x8800 }).ax).toBe(0xfc00);
    const e801 = bios.call(INT15, { eax: 0xe801 });
    expect(e801.ax).toBe(15 * 1024);
    expect(e801.bx).toBe(48 * 16);
    const c0 = bios.call(INT15, { eax: 0xc000 });
    expect(linear(c0.es, c0.bx)).toBe(0xfe6f5);
    expect(bios.memory[0xfe6f5 + 2]).toBe(0xfc);
  });

  it('86h waits: short waits sleep, long ones make the stub hlt until the time has passed', () => {
    const bios = makeBios();
    const short = bios.call(INT15, { eax: 0x8600, ecx: 0, edx: 10000 });
    expect(short.waiting).toBe(false);
    expect(short.carry).toBe(false);
    expect(bios.clock.now).toBeCloseTo(1010);
    const long = bios.call(INT15, { eax: 0x8600, ecx: 0x0003, edx: 0x0d40 }); // 200 ms
    expect(long.waiting).toBe(true);
    bios.clock.now += 100;
    bios.call(INT15, {}, long);
    expect(long.waiting).toBe(true);
    bios.clock.now += 100;
    bios.call(INT15, {}, long);
    expect(long.waiting).toBe(false);
  });
});

describe('INT 19h and INT 18h', () => {
  it('loads the boot sector to 0000:7C00 and returns into it with DL = the drive and interrupts on', () => {
    const image = new Uint8Array(4 * 512);
    image[0] = 0xeb;
    image[510] = 0x55;
    image[511] = 0xaa;
    const bios = makeBios({ disks: [{ drive: 0x80, bytes: image }] });
    const f = bios.call(0x19, { edx: 0x1234, eax: 0xffff });
    expect(bios.memory[0x7c00]).toBe(0xeb);
    expect(f.cs).toBe(0);
    expect(f.ip).toBe(0x7c00);
    expect(f.dl).toBe(0x80);
    expect(f.ax).toBe(0);
    expect(f.flags & FLAGS_IF).toBe(FLAGS_IF);
  });

  it('refuses a hard disk without the 0x55AA signature, then INT 18h says so and halts', () => {
    const bios = makeBios({ disks: [{ drive: 0x80, bytes: new Uint8Array(512) }] });
    const f = bios.call(0x19);
    expect(f.ip).toBe(0x7c42); // back to the caller: nothing booted
    expect(screenRow(bios.memory, 0)).toMatch(/^Boot failed: not a bootable disk/);
    const halt = bios.call(0x18);
    expect(screenRow(bios.memory, 1)).toBe('No bootable device.');
    expect(halt.cs).toBe(0xf000);
    expect(bios.memory[0xf0000 + halt.ip]).toBe(0xfa); // cli; hlt
  });
});

describe('the frame', () => {
  it('is read at SS:SP with 16-bit wrap-around, as the CPU forms stack addresses', () => {
    const bios = makeBios();
    expect(CALLER_SP).toBeGreaterThan(44);
    const f = new TrapFrame(bios.memory, 0x1000, 0xfff0);
    f.eax = 0x11223344; // bytes at SS:FFF0+32 wrap to SS:0010
    expect(bios.memory[0x10000 + 0x10]).toBe(0x44);
  });
});
