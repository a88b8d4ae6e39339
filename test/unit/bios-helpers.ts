/**
 * Shared by the BIOS unit tests: a machine with guest RAM after POST, the BIOS's devices on a
 * port bus, and `call()`, which lays out a trap frame exactly as the ROM's stub does (the
 * caller's registers under `push word VECTOR; pushad; push ds; push es`, on top of the INT's
 * IP, CS and FLAGS) and hands it to the trap device.
 */
import { pcE820Map } from '../../src/arch/x86/e820.js';
import { BiosTrap } from '../../src/bios/bios.js';
import { Disk, DiskSet, MemoryDiskBackend } from '../../src/bios/disk.js';
import { TrapFrame } from '../../src/bios/frame.js';
import { FLAGS_IF, FLAGS_RESERVED_1, FRAME_SIZE, FRAME_VECTOR } from '../../src/bios/layout.js';
import type { BiosMachine } from '../../src/bios/machine.js';
import { GuestRam } from '../../src/bios/memory.js';
import { biosRom, writePostMemory } from '../../src/bios/post.js';
import { Bus } from '../../src/devices/bus.js';
import { Mc146818Rtc } from '../../src/devices/rtc.js';
import { PIO_ALL_ONES, type PioDevice, type PioSize } from '../../src/devices/device.js';
import { I8042, I8042_DATA_PORT, I8042_PORT_COUNT, type KeyboardSource } from '../../src/devices/i8042.js';
import { Vga } from '../../src/devices/vga.js';

export const MIB = 1024 * 1024;
/** Where test frames sit: just under 0000:7000, as if the caller's SS:SP were 0000:7000. */
export const CALLER_SP = 0x7000;

export interface Regs {
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
  esi: number;
  edi: number;
  ebp: number;
  ds: number;
  es: number;
  flags: number;
  /** The caller's SP (default CALLER_SP), so frames of nested calls do not overlap. */
  sp: number;
}

export interface TestBios {
  memory: Uint8Array;
  ram: GuestRam;
  vga: Vga;
  rtc: Mc146818Rtc;
  disks: DiskSet;
  machine: BiosMachine;
  trap: BiosTrap;
  pio: Bus<PioDevice>;
  i8042: I8042;
  console: number[];
  traces: string[];
  counters: Int32Array;
  clock: { now: number };
  resets: () => number;
  /** Performs INT `vector` with these registers; returns the frame after the call. */
  call(vector: number, regs?: Partial<Regs>, frame?: TrapFrame): TrapFrame;
}

/** 2024-03-05 14:07:09 local time. */
export const FIXED_DATE = new Date(2024, 2, 5, 14, 7, 9).getTime();

export function makeBios(
  options: { disks?: { drive: number; bytes: Uint8Array; writeThrough?: boolean }[]; memorySize?: number; keyboard?: KeyboardSource } = {},
): TestBios {
  const memorySize = options.memorySize ?? 16 * MIB;
  const memory = new Uint8Array(2 * MIB);
  const ram = new GuestRam(memory);
  const vga = new Vga();
  const disks = new DiskSet(
    (options.disks ?? []).map((d) => new Disk(new MemoryDiskBackend(d.bytes), { drive: d.drive, writeThrough: d.writeThrough ?? false })),
  );
  const clock = { now: 1000 };
  const rtc = new Mc146818Rtc({ nowNs: () => 0n, wallClockMs: () => FIXED_DATE }, { base: 'localtime', memorySize });
  const pio = new Bus<PioDevice>(0x10000);
  let resets = 0;
  const i8042 = new I8042(() => resets++, { ...(options.keyboard ? { keyboard: options.keyboard } : {}), now: () => clock.now });
  pio.register(I8042_DATA_PORT, I8042_PORT_COUNT, i8042, 'i8042');
  const consoleBytes: number[] = [];
  const machine: BiosMachine = {
    ram,
    vga,
    disks,
    rtc,
    portIn: (port: number, size: PioSize) => {
      const slot = pio.find(port);
      return slot ? slot.device.pioRead(port - slot.base, size) : PIO_ALL_ONES[size];
    },
    portOut: (port: number, size: PioSize, value: number) => {
      const slot = pio.find(port);
      slot?.device.pioWrite(port - slot.base, size, value);
    },
    pollKeyboard: () => i8042.poll(),
    consoleWrite: (byte) => consoleBytes.push(byte),
    router: undefined,
    memorySize,
    e820: pcE820Map(memorySize),
    bootOrder: disks.disks.map((d) => d.drive),
    now: () => clock.now,
    sleep: (ms) => {
      clock.now += ms;
    },
    reset: () => resets++,
    haltOffset: biosRom().halt,
  };
  writePostMemory(memory, { memorySize, com: [0x3f8], disks, nowMs: FIXED_DATE }, vga);
  const traces: string[] = [];
  const counters = new Int32Array(12 * 256);
  const trap = new BiosTrap(machine, { trace: (line) => traces.push(line), counters });
  const call = (vector: number, regs: Partial<Regs> = {}, again?: TrapFrame): TrapFrame => {
    if (again) {
      trap.call(again);
      return again;
    }
    const f = new TrapFrame(memory, 0, (regs.sp ?? CALLER_SP) - FRAME_SIZE);
    f.eax = regs.eax ?? 0;
    f.ebx = regs.ebx ?? 0;
    f.ecx = regs.ecx ?? 0;
    f.edx = regs.edx ?? 0;
    f.esi = regs.esi ?? 0;
    f.edi = regs.edi ?? 0;
    f.ebp = regs.ebp ?? 0;
    f.ds = regs.ds ?? 0;
    f.es = regs.es ?? 0;
    f.setU16(FRAME_VECTOR, vector);
    f.ip = 0x7c42;
    f.cs = 0;
    f.flags = regs.flags ?? FLAGS_IF | FLAGS_RESERVED_1;
    trap.call(f);
    return f;
  };
  return {
    memory,
    ram,
    vga,
    rtc,
    disks,
    machine,
    trap,
    pio,
    i8042,
    console: consoleBytes,
    traces,
    counters,
    clock,
    resets: () => resets,
    call,
  };
}

/** The text of row `row` of the colour text screen (page 0), trailing blanks dropped. */
export function screenRow(memory: Uint8Array, row: number, columns = 80): string {
  let out = '';
  for (let c = 0; c < columns; c++) out += String.fromCharCode(memory[0xb8000 + (row * columns + c) * 2]!);
  return out.replace(/ +$/, '');
}
