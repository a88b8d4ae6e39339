/**
 * POST's memory side, done by the VMM before the vCPU starts: the ROM at F000:E000, the IVT,
 * the BDA and EBDA as a PC BIOS leaves them (COM ports, equipment, memory, video mode 3 with a
 * cleared screen, keyboard buffer, tick count since midnight, serial time-outs, disk counts),
 * and the fixed disk parameter tables. The ROM's own POST code then programs the PICs, the PIT
 * and the keyboard controller and calls INT 19h. Returns where the vCPU starts: F000:E05B.
 */
import { writeBiosDataArea } from '../arch/x86/pc-tables.js';
import type { RealModeEntry } from '../arch/x86/boot-state.js';
import { BIOS_AREA_END, VGA_HOLE_ADDRESS } from '../arch/x86/pc-layout.js';
import type { Vga } from '../devices/vga.js';
import type { DiskSet } from './disk.js';
import {
  BDA_COM_TIMEOUT,
  BDA_DISK_COUNT,
  BDA_EQUIPMENT_WORD,
  BDA_FLOPPY_MEDIA_STATE,
  BDA_KBD_BUFFER,
  BDA_KBD_BUFFER_END,
  BDA_KBD_BUFFER_END_PTR,
  BDA_KBD_BUFFER_START_PTR,
  BDA_KBD_FLAGS2,
  BDA_KBD_HEAD,
  BDA_KBD_TAIL,
  BDA_TICKS,
  BIOS_SEGMENT,
  KBD2_ENHANCED,
  ROM_ADDRESS,
  ROM_POST,
  linear,
} from './layout.js';
import { GuestRam } from './memory.js';
import { FDPT_SIZE, INT_DISKETTE_PARAMS, INT_FDPT0, INT_FDPT1, INT_VIDEO_PARAMS, buildBiosRom, type BiosRom } from './rom.js';
import { SERIAL_TIMEOUT_TICKS } from './serial-service.js';
import { ticksSinceMidnight } from './time.js';
import { setVideoMode, DEFAULT_TEXT_MODE } from './video.js';

const IVT_ENTRIES = 256;
/** Equipment word: bit 0 floppy drives present, bits 6-7 their count - 1. */
const EQUIP_FLOPPY = 0x0001;
const EQUIP_FLOPPY_COUNT_SHIFT = 6;
/** BDA 0x90: media state "1.44 MB established" for a present floppy drive. */
const FLOPPY_MEDIA_ESTABLISHED = 0x17;
// A fixed disk parameter table: cylinders (u16), heads (u8), ..., sectors per track at 14.
const FDPT_CYLINDERS = 0;
const FDPT_HEADS = 2;
const FDPT_LANDING_ZONE = 12;
const FDPT_SECTORS = 14;

let cachedRom: BiosRom | undefined;
/** The ROM, assembled once per thread. */
export function biosRom(): BiosRom {
  return (cachedRom ??= buildBiosRom());
}

export interface PostConfig {
  memorySize: number;
  /** I/O bases of the COM ports present. */
  com: readonly number[];
  disks: DiskSet;
  /** Host time (ms since the epoch) the tick count starts from. */
  nowMs: number;
}

/** The memory a BIOS's POST leaves (and the VGA in mode 3). */
export function writePostMemory(memory: Uint8Array, config: PostConfig, vga: Vga): RealModeEntry {
  if (memory.length < BIOS_AREA_END)
    throw new RangeError(`the BIOS needs at least 1 MiB of RAM, not ${memory.length} bytes: raise --memory`);
  const rom = biosRom();
  const ram = new GuestRam(memory);
  memory.set(rom.bytes, ROM_ADDRESS);
  // IVT: every vector to the lone iret, then the BIOS's own handlers and tables.
  for (let v = 0; v < IVT_ENTRIES; v++) setVector(ram, v, BIOS_SEGMENT, rom.iret);
  for (const [v, offset] of rom.vectors) setVector(ram, v, BIOS_SEGMENT, offset);
  setVector(ram, INT_VIDEO_PARAMS, BIOS_SEGMENT, rom.videoParams);
  setVector(ram, INT_DISKETTE_PARAMS, BIOS_SEGMENT, rom.disketteTable);
  setVector(ram, INT_FDPT0, BIOS_SEGMENT, rom.fdpt);
  setVector(ram, INT_FDPT1, BIOS_SEGMENT, rom.fdpt + FDPT_SIZE);

  if (config.memorySize >= VGA_HOLE_ADDRESS) writeBiosDataArea(memory, { memorySize: config.memorySize, com: config.com });
  const { disks } = config;
  const floppies = Math.min(disks.floppies, 2);
  let equipment = ram.bda16(BDA_EQUIPMENT_WORD);
  if (floppies > 0) equipment |= EQUIP_FLOPPY | ((floppies - 1) << EQUIP_FLOPPY_COUNT_SHIFT);
  ram.setBda16(BDA_EQUIPMENT_WORD, equipment);
  for (let i = 0; i < floppies; i++) ram.setBda8(BDA_FLOPPY_MEDIA_STATE + i, FLOPPY_MEDIA_ESTABLISHED);
  ram.setBda8(BDA_DISK_COUNT, disks.hardDisks);
  config.com.forEach((_, i) => ram.setBda8(BDA_COM_TIMEOUT + i, SERIAL_TIMEOUT_TICKS));
  ram.setBda16(BDA_KBD_HEAD, BDA_KBD_BUFFER);
  ram.setBda16(BDA_KBD_TAIL, BDA_KBD_BUFFER);
  ram.setBda16(BDA_KBD_BUFFER_START_PTR, BDA_KBD_BUFFER);
  ram.setBda16(BDA_KBD_BUFFER_END_PTR, BDA_KBD_BUFFER_END);
  ram.setBda8(BDA_KBD_FLAGS2, KBD2_ENHANCED);
  ram.setBda32(BDA_TICKS, ticksSinceMidnight(config.nowMs));
  for (let i = 0; i < 2; i++) {
    const disk = disks.get(0x80 + i);
    const at = linear(BIOS_SEGMENT, rom.fdpt) + i * FDPT_SIZE;
    memory.fill(0, at, at + FDPT_SIZE);
    if (!disk) continue;
    ram.setU16(at + FDPT_CYLINDERS, Math.min(disk.geometry.cylinders, 0xffff));
    ram.setU8(at + FDPT_HEADS, disk.geometry.heads);
    ram.setU16(at + FDPT_LANDING_ZONE, Math.min(disk.geometry.cylinders, 0xffff));
    ram.setU8(at + FDPT_SECTORS, disk.geometry.sectors);
  }
  setVideoMode({ ram, vga }, DEFAULT_TEXT_MODE);
  return { cs: BIOS_SEGMENT, ip: ROM_POST, ds: 0, es: 0, fs: 0, gs: 0, ss: 0, sp: 0, bp: 0, dx: 0 };
}

function setVector(ram: GuestRam, vector: number, segment: number, offset: number): void {
  ram.setU16(linear(0, vector * 4), offset);
  ram.setU16(linear(0, vector * 4 + 2), segment);
}
