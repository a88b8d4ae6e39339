/**
 * The BIOS's part of the PC board (no KVM): its devices on the port bus under their names, the
 * console's input shared between the keyboard and COM1 as the guest reads one or the other, and
 * every BIOS device's state as plain JSON (snapshots).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { pcE820Map } from '../../src/arch/x86/e820.js';
import { createPcBoard } from '../../src/board/pc-board.js';
import { TrapFrame } from '../../src/bios/frame.js';
import { loadBios } from '../../src/bios/lazy.js';
import { BIOS_TRAP_PORT, FRAME_SIZE, FRAME_VECTOR } from '../../src/bios/layout.js';
import { writePostMemory } from '../../src/bios/post.js';
import type { BiosBoardSpec } from '../../src/bios/spec.js';
import { DiskSet } from '../../src/bios/disk.js';
import { VGA_STATE_BYTES, Vga } from '../../src/devices/vga.js';
import type { Snapshottable } from '../../src/devices/device.js';
import { ByteRing } from '../../src/io/byte-ring.js';

const MIB = 1 << 20;

function makeBoard(input: string) {
  const memory = new Uint8Array(new SharedArrayBuffer(2 * MIB));
  const rx = ByteRing.allocate(1024);
  rx.write(Buffer.from(input));
  const tx: number[] = [];
  const spec: BiosBoardSpec = {
    disks: [{ drive: 0x80, image: { buffer: new SharedArrayBuffer(1024) }, writeThrough: false }],
    bootOrder: [0x80],
    memorySize: 16 * MIB,
    e820: pcE820Map(16 * MIB),
    console: ByteRing.allocate(4096).buffer,
    keys: null,
    vga: new SharedArrayBuffer(VGA_STATE_BYTES),
    counters: new SharedArrayBuffer(12 * 256 * 4),
    attention: new SharedArrayBuffer(16),
    trace: null,
  };
  writePostMemory(
    memory,
    { memorySize: 16 * MIB, com: [0x3f8], disks: new DiskSet([]), nowMs: Date.now() },
    new Vga(new Uint8Array(spec.vga)),
  );
  const board = createPcBoard({
    memory,
    serial: [{ transmit: (b) => tx.push(b), txBacklog: () => 0, receive: () => rx.shift() }],
    bios: spec,
  });
  const out = (port: number, value: number): void => {
    const slot = board.pio.find(port)!;
    slot.device.pioWrite(port - slot.base, 1, value);
  };
  const read = (port: number): number => {
    const slot = board.pio.find(port)!;
    return slot.device.pioRead(port - slot.base, 1);
  };
  const int = (vector: number, ax: number): TrapFrame => {
    const f = new TrapFrame(memory, 0, 0x7000 - FRAME_SIZE);
    f.eax = ax;
    f.setU16(FRAME_VECTOR, vector);
    board.pio.find(BIOS_TRAP_PORT)!.device.pioWrite(0, 4, 0x7000 - FRAME_SIZE);
    return f;
  };
  return { board, memory, out, read, int, tx };
}

describe('the BIOS on the PC board', () => {
  beforeAll(async () => {
    await loadBios();
  });

  it('registers the VGA, the CMOS clock and the trap port', () => {
    const { board } = makeBoard('');
    const names = board.pio.entries().map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(['vga', 'cmos-rtc', 'bios', 'i8042']));
  });

  it('gives the console input to COM1 once the guest reads RBR, and holds it back before', () => {
    const { out, read } = makeBoard('xy');
    expect(read(0x3fd) & 0x01).toBe(0); // LSR: no data while nobody has claimed the input
    expect(read(0x3f8)).toBe(0x78); // reading RBR claims it for COM1, and gets it
    expect(read(0x3fd) & 0x01).toBe(1);
    out(0x3fb, 0x80); // DLAB: offset 0 is the divisor latch now
    expect(read(0x3f8)).toBe(12);
    out(0x3fb, 0x03);
    expect(read(0x3f8)).toBe(0x79);
  });

  it('gives the console input to COM1 once the guest polls LSR for data (two reads showing THRE, no THR write between)', () => {
    const { read } = makeBoard('z');
    expect(read(0x3fd) & 0x01).toBe(0); // one LSR read: could be a transmitter checking THRE
    expect(read(0x3fd) & 0x01).toBe(1); // a second with no THR write: a poll for data, which claims the input
    expect(read(0x3f8)).toBe(0x7a);
  });

  it('a guest transmitting by polling THRE does not claim the input, nor do INT 14h sends', () => {
    const { board, out, read, int, tx } = makeBoard('k');
    for (const byte of [0x61, 0x62, 0x63]) {
      expect(read(0x3fd) & 0x20).toBe(0x20);
      out(0x3f8, byte);
    }
    int(0x14, 0x0100 | 0x64); // AH=01h send 'd'
    int(0x14, 0x0100 | 0x65);
    expect(tx).toEqual([0x61, 0x62, 0x63, 0x64, 0x65]);
    int(0x16, 0x0100); // the keyboard still gets the input
    for (const poll of board.inputPolls) poll();
    expect(read(0x60)).toBe(0x25);
  });

  it('keeps a BIOS wait as the time left, not a host clock reading, and whether the screen was used', () => {
    const { board, int } = makeBoard('');
    const f = int(0x15, 0x8600); // INT 15h AH=86h: wait CX:DX microseconds (0: done at once)
    f.eax = 0x8600; // again, for 5 s
    f.cx = 0x4c;
    f.dx = 0x4b40;
    board.pio.find(BIOS_TRAP_PORT)!.device.pioWrite(0, 4, 0x7000 - FRAME_SIZE);
    const bios = board.pio.entries().find((s) => s.name === 'bios')!.device as unknown as Snapshottable<{
      trap: { calls: { deadlines: Record<string, number> } };
    }>;
    const left = Object.values(bios.state().trap.calls.deadlines);
    expect(left).toHaveLength(1);
    expect(left[0]).toBeGreaterThan(4000);
    expect(left[0]).toBeLessThanOrEqual(5000);
    const vga = board.pio.entries().find((s) => s.name === 'vga')!.device as unknown as Snapshottable<{
      vga: { regs: number[] };
      screenUsed: boolean;
    }>;
    expect(vga.state().screenUsed).toBe(false);
    int(0x10, 0x0003); // a mode set: the guest drives the screen
    expect(vga.state().screenUsed).toBe(true);
    vga.restore({ ...vga.state(), screenUsed: false });
    expect(vga.state().screenUsed).toBe(false);
    expect(() => vga.restore({ vga: { regs: vga.state().vga.regs.slice(1) }, screenUsed: true })).toThrow(/not \d+ register bytes/);
  });

  it('types the console input on the keyboard once the guest calls INT 16h', () => {
    const { board, int, read } = makeBoard('k');
    const first = int(0x16, 0x0100);
    expect(first.zero).toBe(true); // nothing yet: the key is only now being typed
    for (const poll of board.inputPolls) poll();
    expect(read(0x64) & 0x01).toBe(1); // a scan code waits in the controller
    expect(read(0x60)).toBe(0x25); // 'k' make code
  });

  it('saves every BIOS device as JSON and restores it', () => {
    const { board, int } = makeBoard('');
    int(0x10, 0x0e41);
    for (const name of ['vga', 'cmos-rtc', 'bios', 'i8042']) {
      const device = board.pio.entries().find((s) => s.name === name)!.device as unknown as Snapshottable<unknown>;
      const saved = JSON.parse(JSON.stringify(device.state())) as unknown;
      expect(() => device.restore(saved)).not.toThrow();
      // The RTC's clock runs on between the calls (rtc.test.ts checks its time fields on a fake clock).
      const timeless = (s: unknown): unknown => (name === 'cmos-rtc' ? { ...(s as object), phaseNs: 0, clockSeconds: 0, flags: 0 } : s);
      expect(timeless(device.state())).toEqual(timeless(saved));
    }
  });
});
