/**
 * INT 13h, the disk BIOS, over the machine's Disks: reset (00h, 0Dh), status (01h), CHS read,
 * write and verify (02h-04h), format track (05h, floppies), drive parameters (08h), seek and
 * readiness (0Ch, 10h, 11h, 14h), disk type (15h), change line (16h), media type (17h, 18h), and
 * for hard disks the enhanced disk drive extensions: check (41h), LBA read, write, verify and
 * seek (42h-44h, 47h) and drive parameters (48h). Each call leaves its status in AH and in the
 * BDA (0x41 for floppies, 0x74 for hard disks), CF set on failure, AL the sectors moved.
 */
import type { Disk } from './disk.js';
import type { TrapFrame } from './frame.js';
import {
  BDA_DISK_STATUS,
  BDA_FLOPPY_MOTOR,
  BDA_FLOPPY_MOTOR_TIMEOUT,
  BDA_FLOPPY_STATUS,
  BIOS_SEGMENT,
  linear,
  ROM_DISKETTE_TABLE,
  SECTOR_SIZE,
} from './layout.js';
import type { BiosMachine, CallResult } from './machine.js';

// INT 13h status codes.
export const DISK_OK = 0x00;
export const DISK_BAD_COMMAND = 0x01;
export const DISK_WRITE_PROTECTED = 0x03;
export const DISK_SECTOR_NOT_FOUND = 0x04;
export const DISK_MEDIA_TYPE_UNSUPPORTED = 0x0c;
export const DISK_TIMEOUT = 0x80;

/** 15h: what sits at a drive number. */
export const DISK_TYPE_NONE = 0x00;
export const DISK_TYPE_FLOPPY_NO_CHANGE_LINE = 0x01;
export const DISK_TYPE_HARD = 0x03;
/** 41h: EDD 3.0, fixed disk access subset (42h-44h, 47h, 48h). */
export const EDD_VERSION_3 = 0x30;
export const EDD_SUBSET_FIXED_DISK = 0x0001;
export const EDD_CHECK_IN = 0x55aa;
export const EDD_CHECK_OUT = 0xaa55;
/** 48h: the result buffer's size (EDD 1.1 fields) and its flags (CHS information valid). */
export const EDD_PARAMS_SIZE = 0x1a;
export const EDD_PARAMS_SIZE_WITH_DPTE = 0x1e;
export const EDD_FLAG_CHS_VALID = 0x0002;
/** Largest transfer in one CHS call. */
const MAX_CHS_SECTORS = 128;
const DAP_SIZE_MIN = 0x10;
const DAP_FLAT_BUFFER = 0xffffffff;
const DAP_SIZE_FLAT = 0x18;
const FORMAT_FILL = 0xf6;
/** Floppy motor on for drive 0, and how many ticks (about 2 s) it runs on after the last access. */
const MOTOR_ON_DRIVE0 = 0x01;
const MOTOR_TIMEOUT_TICKS = 0x25;
const MAX_CYLINDER_FIELD = 1023;

function finish(m: BiosMachine, f: TrapFrame, disk: Disk | undefined, drive: number, status: number): CallResult {
  m.ram.setBda8(drive & 0x80 ? BDA_DISK_STATUS : BDA_FLOPPY_STATUS, status);
  if (status === DISK_OK) f.ok();
  else f.fail(status);
  if (disk?.kind === 'floppy') {
    m.ram.setBda8(BDA_FLOPPY_MOTOR, m.ram.bda8(BDA_FLOPPY_MOTOR) | (MOTOR_ON_DRIVE0 << disk.drive));
    m.ram.setBda8(BDA_FLOPPY_MOTOR_TIMEOUT, MOTOR_TIMEOUT_TICKS);
  }
  return 'done';
}

/** CX/DH of a CHS call → LBA, or undefined outside the geometry. */
function chsLba(disk: Disk, f: TrapFrame): number | undefined {
  const cylinder = f.ch | ((f.cl & 0xc0) << 2);
  const sector = f.cl & 0x3f;
  return disk.chsToLba(cylinder, f.dh, sector);
}

function transfer(m: BiosMachine, disk: Disk, op: 'read' | 'write' | 'verify', lba: number, count: number, address: number): number {
  if (op === 'verify') return lba + count <= disk.totalSectors ? DISK_OK : DISK_SECTOR_NOT_FOUND;
  if (op === 'write') {
    if (disk.readOnly) return DISK_WRITE_PROTECTED;
    return disk.write(lba, count, m.ram.read(address, count * SECTOR_SIZE)) ? DISK_OK : DISK_SECTOR_NOT_FOUND;
  }
  const buffer = new Uint8Array(count * SECTOR_SIZE);
  if (!disk.read(lba, count, buffer)) return DISK_SECTOR_NOT_FOUND;
  m.ram.write(address, buffer);
  return DISK_OK;
}

export function int13(m: BiosMachine, f: TrapFrame): CallResult {
  const drive = f.dl;
  const disk = m.disks.get(drive);
  const fn = f.ah;
  // Functions that answer for absent drives too.
  if (fn === 0x15) {
    if (!disk) {
      f.ah = DISK_TYPE_NONE;
      f.carry = false;
      return 'done';
    }
    if (disk.kind === 'floppy') {
      f.ah = DISK_TYPE_FLOPPY_NO_CHANGE_LINE;
    } else {
      f.ah = DISK_TYPE_HARD;
      f.cx = disk.totalSectors >>> 16;
      f.dx = disk.totalSectors & 0xffff;
    }
    f.carry = false;
    return 'done';
  }
  if (fn === 0x01) {
    const status = m.ram.bda8(drive & 0x80 ? BDA_DISK_STATUS : BDA_FLOPPY_STATUS);
    f.al = status;
    if (status === DISK_OK) f.ok();
    else f.fail(status);
    return 'done';
  }
  if (!disk) {
    if (fn === 0x08) f.dl = drive & 0x80 ? m.disks.hardDisks : m.disks.floppies;
    return finish(m, f, undefined, drive, fn === 0x00 || fn === 0x0d ? DISK_OK : drive & 0x80 ? DISK_BAD_COMMAND : DISK_TIMEOUT);
  }
  switch (fn) {
    case 0x00:
    case 0x0d:
    case 0x0c:
    case 0x10:
    case 0x11:
    case 0x14:
    case 0x16:
    case 0x17:
    case 0x47:
      // The extended seek and the controller diagnostic are hard disk functions.
      if ((fn === 0x47 || fn === 0x14) && disk.kind === 'floppy') return finish(m, f, disk, drive, DISK_BAD_COMMAND);
      return finish(m, f, disk, drive, DISK_OK);
    case 0x02:
    case 0x03:
    case 0x04: {
      const count = f.al;
      const lba = chsLba(disk, f);
      if (count === 0 || count > MAX_CHS_SECTORS) {
        f.al = 0;
        return finish(m, f, disk, drive, DISK_BAD_COMMAND);
      }
      const status =
        lba === undefined
          ? DISK_SECTOR_NOT_FOUND
          : transfer(m, disk, fn === 0x02 ? 'read' : fn === 0x03 ? 'write' : 'verify', lba, count, linear(f.es, f.bx));
      f.al = status === DISK_OK ? count : 0;
      return finish(m, f, disk, drive, status);
    }
    case 0x05: {
      if (disk.kind !== 'floppy') return finish(m, f, disk, drive, DISK_OK);
      if (disk.readOnly) return finish(m, f, disk, drive, DISK_WRITE_PROTECTED);
      const lba = disk.chsToLba(f.ch, f.dh, 1);
      if (lba === undefined) return finish(m, f, disk, drive, DISK_SECTOR_NOT_FOUND);
      const track = new Uint8Array(disk.geometry.sectors * SECTOR_SIZE).fill(FORMAT_FILL);
      disk.write(lba, disk.geometry.sectors, track);
      return finish(m, f, disk, drive, DISK_OK);
    }
    case 0x08: {
      const g = disk.geometry;
      const maxCylinder = Math.min(g.cylinders - 1, MAX_CYLINDER_FIELD);
      f.ch = maxCylinder & 0xff;
      f.cl = (g.sectors & 0x3f) | ((maxCylinder >> 2) & 0xc0);
      f.dh = g.heads - 1;
      f.ax = 0;
      if (disk.kind === 'floppy') {
        f.bl = disk.floppy?.driveType ?? 0;
        f.dl = m.disks.floppies;
        f.es = BIOS_SEGMENT;
        f.di = ROM_DISKETTE_TABLE;
      } else {
        f.dl = m.disks.hardDisks;
      }
      return finish(m, f, disk, drive, DISK_OK);
    }
    case 0x18: {
      if (disk.kind !== 'floppy') return finish(m, f, disk, drive, DISK_BAD_COMMAND);
      const g = disk.geometry;
      const cylinders = (f.ch | ((f.cl & 0xc0) << 2)) + 1;
      if (cylinders !== g.cylinders || (f.cl & 0x3f) !== g.sectors) return finish(m, f, disk, drive, DISK_MEDIA_TYPE_UNSUPPORTED);
      f.es = BIOS_SEGMENT;
      f.di = ROM_DISKETTE_TABLE;
      return finish(m, f, disk, drive, DISK_OK);
    }
    case 0x41:
      if (disk.kind !== 'hard' || f.bx !== EDD_CHECK_IN) return finish(m, f, disk, drive, DISK_BAD_COMMAND);
      f.bx = EDD_CHECK_OUT;
      f.cx = EDD_SUBSET_FIXED_DISK;
      f.carry = false;
      f.ah = EDD_VERSION_3;
      return 'done';
    case 0x42:
    case 0x43:
    case 0x44: {
      if (disk.kind !== 'hard') return finish(m, f, disk, drive, DISK_BAD_COMMAND);
      const dap = linear(f.ds, f.si);
      const size = m.ram.u8(dap);
      const count = m.ram.u16(dap + 2);
      if (size < DAP_SIZE_MIN) return finish(m, f, disk, drive, DISK_BAD_COMMAND);
      const segOff = m.ram.u32(dap + 4);
      const lbaLow = m.ram.u32(dap + 8);
      const lbaHigh = m.ram.u32(dap + 12);
      const address = segOff === DAP_FLAT_BUFFER && size >= DAP_SIZE_FLAT ? m.ram.u32(dap + 0x10) : linear(segOff >>> 16, segOff & 0xffff);
      const lba = lbaHigh * 2 ** 32 + lbaLow;
      const status =
        count === 0 ? DISK_OK : transfer(m, disk, fn === 0x42 ? 'read' : fn === 0x43 ? 'write' : 'verify', lba, count, address);
      if (status !== DISK_OK) m.ram.setU16(dap + 2, 0);
      return finish(m, f, disk, drive, status);
    }
    case 0x48: {
      if (disk.kind !== 'hard') return finish(m, f, disk, drive, DISK_BAD_COMMAND);
      const at = linear(f.ds, f.si);
      const room = m.ram.u16(at);
      if (room < EDD_PARAMS_SIZE) return finish(m, f, disk, drive, DISK_BAD_COMMAND);
      const g = disk.geometry;
      const size = room >= EDD_PARAMS_SIZE_WITH_DPTE ? EDD_PARAMS_SIZE_WITH_DPTE : EDD_PARAMS_SIZE;
      m.ram.setU16(at, size);
      m.ram.setU16(at + 2, EDD_FLAG_CHS_VALID);
      m.ram.setU32(at + 4, g.cylinders);
      m.ram.setU32(at + 8, g.heads);
      m.ram.setU32(at + 12, g.sectors);
      m.ram.setU32(at + 16, disk.totalSectors % 2 ** 32);
      m.ram.setU32(at + 20, Math.floor(disk.totalSectors / 2 ** 32));
      m.ram.setU16(at + 24, SECTOR_SIZE);
      if (size === EDD_PARAMS_SIZE_WITH_DPTE) m.ram.setU32(at + 26, DAP_FLAT_BUFFER); // no device parameter table
      return finish(m, f, disk, drive, DISK_OK);
    }
    default:
      return 'unsupported';
  }
}
