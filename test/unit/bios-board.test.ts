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
      expect(device.state()).toEqual(saved);
    }
  });
});
