/**
 * The small BIOS services: INT 11h (equipment word), INT 12h (base memory), INT 15h (system:
 * A20 24h, keyboard intercept 4Fh, wait 86h, block move 87h, extended memory 88h and E801h, the
 * E820h memory map, the configuration table C0h, the EBDA C1h, device busy/post 90h/91h),
 * INT 17h (no printers), INT 18h (nothing to boot: say so and halt) and INT 19h (bootstrap: the
 * first sector of the first bootable drive to 0000:7C00, then a jump there with DL = drive).
 */
import { EBDA_SEGMENT } from '../arch/x86/pc-tables.js';
import type { TrapFrame } from './frame.js';
import {
  BDA_EQUIPMENT_WORD,
  BDA_MEMORY_KIB,
  BIOS_SEGMENT,
  BOOT_SECTOR_ADDRESS,
  BOOT_SIGNATURE,
  BOOT_SIGNATURE_OFFSET,
  FLAGS_IF,
  FLAGS_RESERVED_1,
  linear,
  ROM_CONFIG_TABLE,
  SECTOR_SIZE,
  TICK_MS,
} from './layout.js';
import type { BiosCallState, BiosMachine, CallResult } from './machine.js';
import { teletype } from './video.js';

/** 'SMAP', the E820h signature in EAX/EDX. */
export const E820_SIGNATURE = 0x534d4150;
export const E820_ENTRY_SIZE = 20;
/** E820h past the last entry or with a bad signature: CF set, AH=86h. */
const E820_FAIL = 0x86;
const KIB = 1024;
const MIB = 1024 * KIB;
const UNIT_64K = 64 * KIB;
/** 88h and E801h report at most 15 MiB below 16 MiB (the ISA hole's view), in KiB. */
const MAX_KIB_BELOW_16M = 15 * KIB;
const MAX_88H_KIB = 0xfc00;
const A20_SUPPORT_KBC_AND_PORT92 = 0x0003;
const MICROSECONDS_PER_MS = 1000;
/** INT 15h 87h: the GDT the caller passes; source at entry 2, destination at entry 3. */
const MOVE_SOURCE_DESCRIPTOR = 0x10;
const MOVE_DEST_DESCRIPTOR = 0x18;
const DESCRIPTOR_BASE_LOW = 2; // 24 bits
const DESCRIPTOR_BASE_HIGH = 7;
/** INT 17h: no printer: time-out and I/O error. */
const PRINTER_ABSENT = 0x01 | 0x08;

export function int11(m: BiosMachine, f: TrapFrame): CallResult {
  f.ax = m.ram.bda16(BDA_EQUIPMENT_WORD);
  return 'done';
}

export function int12(m: BiosMachine, f: TrapFrame): CallResult {
  f.ax = m.ram.bda16(BDA_MEMORY_KIB);
  return 'done';
}

export function int17(_m: BiosMachine, f: TrapFrame): CallResult {
  f.ah = PRINTER_ABSENT;
  return 'done';
}

/** A wait of `ms` from the first call on this frame: done once it has passed. */
export function timedWait(m: BiosMachine, f: TrapFrame, state: BiosCallState, ms: number): 'done' | 'wait' {
  const key = String(f.address(0));
  const now = m.now();
  const deadline = (state.deadlines[key] ??= now + ms);
  const left = deadline - now;
  if (left > 0 && left < TICK_MS) m.sleep(left); // shorter than a timer tick: the hlt would overshoot
  if (left <= 0 || left < TICK_MS) {
    delete state.deadlines[key];
    return 'done';
  }
  return 'wait';
}

/** Whether a wait started on this frame has run out (for waits with another way to end). */
export function deadlinePassed(m: BiosMachine, f: TrapFrame, state: BiosCallState, ms: number): boolean {
  const key = String(f.address(0));
  const deadline = (state.deadlines[key] ??= m.now() + ms);
  if (m.now() < deadline) return false;
  delete state.deadlines[key];
  return true;
}

export function endWait(f: TrapFrame, state: BiosCallState): void {
  delete state.deadlines[String(f.address(0))];
}

function e820(m: BiosMachine, f: TrapFrame): CallResult {
  const index = f.ebx;
  const entry = m.e820[index];
  if (f.edx !== E820_SIGNATURE || f.ecx < E820_ENTRY_SIZE || !entry) {
    f.fail(E820_FAIL);
    return 'done';
  }
  const at = linear(f.es, f.di);
  m.ram.setU32(at, entry.base % 2 ** 32);
  m.ram.setU32(at + 4, Math.floor(entry.base / 2 ** 32));
  m.ram.setU32(at + 8, entry.length % 2 ** 32);
  m.ram.setU32(at + 12, Math.floor(entry.length / 2 ** 32));
  m.ram.setU32(at + 16, entry.type);
  f.eax = E820_SIGNATURE;
  f.ecx = E820_ENTRY_SIZE;
  f.ebx = index + 1 < m.e820.length ? index + 1 : 0;
  f.carry = false;
  return 'done';
}

/** 87h: copy CX words between the descriptors of the caller's GDT at ES:SI. */
function blockMove(m: BiosMachine, f: TrapFrame): CallResult {
  const gdt = linear(f.es, f.si);
  const base = (descriptor: number): number =>
    (m.ram.u16(gdt + descriptor + DESCRIPTOR_BASE_LOW) |
      (m.ram.u8(gdt + descriptor + DESCRIPTOR_BASE_LOW + 2) << 16) |
      (m.ram.u8(gdt + descriptor + DESCRIPTOR_BASE_HIGH) << 24)) >>>
    0;
  const bytes = f.cx * 2;
  m.ram.write(base(MOVE_DEST_DESCRIPTOR), m.ram.read(base(MOVE_SOURCE_DESCRIPTOR), bytes));
  f.ok();
  return 'done';
}

export function int15(m: BiosMachine, f: TrapFrame, state: BiosCallState): CallResult {
  const extendedKib = Math.max(0, m.memorySize - MIB) / KIB;
  switch (f.ah) {
    case 0x24:
      switch (f.al) {
        case 0x00:
        case 0x01:
          f.ok(); // A20 is always on under KVM; enabling succeeds, disabling is not refused
          return 'done';
        case 0x02:
          f.al = 1;
          f.ok();
          return 'done';
        case 0x03:
          f.bx = A20_SUPPORT_KBC_AND_PORT92;
          f.ok();
          return 'done';
        default:
          return 'unsupported';
      }
    case 0x4f:
      f.carry = true; // keyboard intercept: process the scan code as it is
      return 'done';
    case 0x85:
    case 0x90:
    case 0x91:
      f.ok();
      return 'done';
    case 0x86: {
      const us = ((f.cx << 16) | f.dx) >>> 0;
      const result = timedWait(m, f, state, us / MICROSECONDS_PER_MS);
      if (result === 'done') f.ok();
      return result;
    }
    case 0x87:
      return blockMove(m, f);
    case 0x88:
      f.ax = Math.min(extendedKib, MAX_88H_KIB);
      f.carry = false;
      return 'done';
    case 0xc0:
      f.es = BIOS_SEGMENT;
      f.bx = ROM_CONFIG_TABLE;
      f.ok();
      return 'done';
    case 0xc1:
      f.es = EBDA_SEGMENT;
      f.carry = false;
      return 'done';
    case 0xe8:
      if (f.al === 0x20) return e820(m, f);
      if (f.al === 0x01) {
        const below16 = Math.min(extendedKib, MAX_KIB_BELOW_16M);
        const above16 = Math.min(Math.max(0, m.memorySize - 16 * MIB) / UNIT_64K, 0xffff);
        f.ax = below16;
        f.cx = below16;
        f.bx = above16;
        f.dx = above16;
        f.carry = false;
        return 'done';
      }
      return 'unsupported';
    default:
      return 'unsupported';
  }
}

/** Teletype a message on the screen (and the console). */
export function biosMessage(m: BiosMachine, text: string): void {
  for (const ch of text) teletype(m, ch.charCodeAt(0) & 0xff);
}

export function int18(m: BiosMachine, f: TrapFrame): CallResult {
  biosMessage(m, 'No bootable device.\r\n');
  f.cs = BIOS_SEGMENT;
  f.ip = m.haltOffset;
  f.flags = FLAGS_RESERVED_1;
  return 'done';
}

/** The boot drive's first sector, as INT 19h loads it; undefined when it cannot boot. */
function loadBootSector(m: BiosMachine, drive: number): string | undefined {
  const disk = m.disks.get(drive);
  if (!disk) return 'no such drive';
  const sector = new Uint8Array(SECTOR_SIZE);
  if (!disk.read(0, 1, sector)) return 'could not read the boot disk';
  // As SeaBIOS: a hard disk must carry the 0x55AA signature; a floppy's boot sector need not.
  const signature = sector[BOOT_SIGNATURE_OFFSET]! | (sector[BOOT_SIGNATURE_OFFSET + 1]! << 8);
  if (disk.kind === 'hard' && signature !== BOOT_SIGNATURE) return 'not a bootable disk';
  m.ram.write(BOOT_SECTOR_ADDRESS, sector);
  return undefined;
}

export function int19(m: BiosMachine, f: TrapFrame): CallResult {
  for (const drive of m.bootOrder) {
    const failure = loadBootSector(m, drive);
    if (failure !== undefined) {
      biosMessage(m, `Boot failed: ${failure} (drive ${drive.toString(16).padStart(2, '0')}h)\r\n`);
      continue;
    }
    // Enter the boot sector as a BIOS does: 0000:7C00, DL = boot drive, interrupts on.
    f.eax = 0;
    f.ebx = 0;
    f.ecx = 0;
    f.edx = drive;
    f.esi = 0;
    f.edi = 0;
    f.ebp = 0;
    f.ds = 0;
    f.es = 0;
    f.cs = 0;
    f.ip = BOOT_SECTOR_ADDRESS;
    f.flags = FLAGS_IF | FLAGS_RESERVED_1;
    return 'done';
  }
  return 'done'; // back to POST, which calls INT 18h
}
