/**
 * Disks as INT 13h sees them: an image (a file, or bytes) with a geometry, addressed by CHS or
 * LBA in 512-byte sectors. A standard floppy size (160 KB to 2.88 MB) is a floppy with that
 * format's geometry; anything else is a hard disk with 16 heads (255 past 504 MiB) and 63
 * sectors per track, as BIOSes translate IDE disks, rounded up to whole cylinders (sectors past
 * the end of the image read as zeros). Writes reach the image only when the disk is opened for
 * writing (`--disk-write`); otherwise they are kept in memory, so the guest sees them but the
 * file does not change (the kept sectors are what `state()` saves).
 */
import { readSync, writeSync } from 'node:fs';
import type { Snapshottable } from '../devices/device.js';
import { SECTOR_SIZE } from './layout.js';

export interface DiskGeometry {
  cylinders: number;
  heads: number;
  sectors: number;
}

export type DiskKind = 'floppy' | 'hard';

/** A standard floppy format: its size, geometry and drive type (CMOS 0x10 / INT 13h AH=08h BL). */
export interface FloppyFormat {
  bytes: number;
  geometry: DiskGeometry;
  driveType: number;
}

export const FLOPPY_DRIVE_360K = 1;
export const FLOPPY_DRIVE_1200K = 2;
export const FLOPPY_DRIVE_720K = 3;
export const FLOPPY_DRIVE_1440K = 4;
export const FLOPPY_DRIVE_2880K = 5;

const KIB = 1024;
const floppy = (kib: number, cylinders: number, heads: number, sectors: number, driveType: number): FloppyFormat => ({
  bytes: kib * KIB,
  geometry: { cylinders, heads, sectors },
  driveType,
});

export const FLOPPY_FORMATS: readonly FloppyFormat[] = [
  floppy(160, 40, 1, 8, FLOPPY_DRIVE_360K),
  floppy(180, 40, 1, 9, FLOPPY_DRIVE_360K),
  floppy(320, 40, 2, 8, FLOPPY_DRIVE_360K),
  floppy(360, 40, 2, 9, FLOPPY_DRIVE_360K),
  floppy(720, 80, 2, 9, FLOPPY_DRIVE_720K),
  floppy(1200, 80, 2, 15, FLOPPY_DRIVE_1200K),
  floppy(1440, 80, 2, 18, FLOPPY_DRIVE_1440K),
  floppy(1680, 80, 2, 21, FLOPPY_DRIVE_1440K), // DMF
  floppy(2880, 80, 2, 36, FLOPPY_DRIVE_2880K),
];

export const FIRST_FLOPPY = 0x00;
export const FIRST_HARD_DISK = 0x80;
export const HARD_DISK_SECTORS = 63;
export const HARD_DISK_HEADS = 16;
export const HARD_DISK_HEADS_LARGE = 255;
/** INT 13h's CHS reaches 1024 cylinders. */
export const MAX_CHS_CYLINDERS = 1024;

/** The floppy format of an image of `bytes`, or undefined when it is no standard floppy size. */
export function floppyFormat(bytes: number): FloppyFormat | undefined {
  return FLOPPY_FORMATS.find((f) => f.bytes === bytes);
}

/** A hard disk's geometry for `sectors` 512-byte sectors: whole cylinders of 16 (or 255) heads × 63. */
export function hardDiskGeometry(sectors: number): DiskGeometry {
  const heads = sectors > MAX_CHS_CYLINDERS * HARD_DISK_HEADS * HARD_DISK_SECTORS ? HARD_DISK_HEADS_LARGE : HARD_DISK_HEADS;
  const perCylinder = heads * HARD_DISK_SECTORS;
  return { cylinders: Math.max(1, Math.ceil(sectors / perCylinder)), heads, sectors: HARD_DISK_SECTORS };
}

/** Where a disk's bytes live. */
export interface DiskBackend {
  readonly size: number;
  /** Fills `into` from byte `offset` (past the end: zeros). */
  read(offset: number, into: Uint8Array): void;
  write(offset: number, data: Uint8Array): void;
}

/** An image in memory (tests, and library users who pass bytes). */
export class MemoryDiskBackend implements DiskBackend {
  constructor(readonly bytes: Uint8Array) {}

  get size(): number {
    return this.bytes.length;
  }

  read(offset: number, into: Uint8Array): void {
    into.fill(0);
    if (offset < this.bytes.length) into.set(this.bytes.subarray(offset, Math.min(offset + into.length, this.bytes.length)));
  }

  write(offset: number, data: Uint8Array): void {
    const room = Math.max(0, Math.min(data.length, this.bytes.length - offset));
    this.bytes.set(data.subarray(0, room), offset);
  }
}

/**
 * An image file, through a file descriptor the caller opened (and closes): positioned reads and
 * writes, so any thread of the process can use it.
 */
export class FdDiskBackend implements DiskBackend {
  constructor(
    private readonly fd: number,
    readonly size: number,
  ) {}

  read(offset: number, into: Uint8Array): void {
    into.fill(0);
    let done = 0;
    while (done < into.length && offset + done < this.size) {
      const n = readSync(this.fd, into, done, into.length - done, offset + done);
      if (n <= 0) break;
      done += n;
    }
  }

  write(offset: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) done += writeSync(this.fd, data, done, data.length - done, offset + done);
  }
}

export interface DiskState {
  /** Sectors written but kept from the image, by LBA, base64. */
  written: Record<string, string>;
}

export interface DiskOptions {
  /** BIOS drive number: 0x00/0x01 floppies, 0x80/0x81 hard disks. */
  drive: number;
  /** Writes reach the backend (else they stay in memory). */
  writeThrough: boolean;
  /** A read-only medium: writes fail with "write protected". */
  readOnly?: boolean;
}

export class Disk implements Snapshottable<DiskState> {
  readonly kind: DiskKind;
  readonly geometry: DiskGeometry;
  /** Sectors the disk has (CHS capacity for hard disks, the format's for floppies). */
  readonly totalSectors: number;
  readonly drive: number;
  readonly floppy: FloppyFormat | undefined;
  readonly writeThrough: boolean;
  readonly readOnly: boolean;
  private written = new Map<number, Uint8Array>();

  constructor(
    private readonly backend: DiskBackend,
    options: DiskOptions,
  ) {
    this.drive = options.drive;
    this.writeThrough = options.writeThrough;
    this.readOnly = options.readOnly ?? false;
    this.kind = options.drive & FIRST_HARD_DISK ? 'hard' : 'floppy';
    if (this.kind === 'floppy') {
      const format = floppyFormat(backend.size);
      if (!format) throw new RangeError(`a ${backend.size}-byte image is no standard floppy size: give it as a hard disk (drive 0x80)`);
      this.floppy = format;
      this.geometry = format.geometry;
    } else {
      this.floppy = undefined;
      this.geometry = hardDiskGeometry(Math.ceil(backend.size / SECTOR_SIZE));
    }
    this.totalSectors = this.geometry.cylinders * this.geometry.heads * this.geometry.sectors;
  }

  /** CHS → LBA; undefined when outside the geometry (sector numbers start at 1). */
  chsToLba(cylinder: number, head: number, sector: number): number | undefined {
    const g = this.geometry;
    if (sector < 1 || sector > g.sectors || head >= g.heads || cylinder >= g.cylinders) return undefined;
    return (cylinder * g.heads + head) * g.sectors + (sector - 1);
  }

  /** Reads `count` sectors from `lba` into `into` (count × 512 bytes); false past the end of the disk. */
  read(lba: number, count: number, into: Uint8Array): boolean {
    if (lba < 0 || lba + count > this.totalSectors) return false;
    for (let i = 0; i < count; i++) {
      const sector = into.subarray(i * SECTOR_SIZE, (i + 1) * SECTOR_SIZE);
      const kept = this.written.get(lba + i);
      if (kept) sector.set(kept);
      else this.backend.read((lba + i) * SECTOR_SIZE, sector);
    }
    return true;
  }

  /** Writes `count` sectors at `lba` from `data`; false past the end of the disk. */
  write(lba: number, count: number, data: Uint8Array): boolean {
    if (lba < 0 || lba + count > this.totalSectors) return false;
    for (let i = 0; i < count; i++) {
      const sector = data.slice(i * SECTOR_SIZE, (i + 1) * SECTOR_SIZE);
      if (this.writeThrough) this.backend.write((lba + i) * SECTOR_SIZE, sector);
      else this.written.set(lba + i, sector);
    }
    return true;
  }

  /** Sectors the guest wrote that the image does not have (always 0 with write-through). */
  get keptSectors(): number {
    return this.written.size;
  }

  state(): DiskState {
    const written: Record<string, string> = {};
    for (const [lba, bytes] of this.written) written[String(lba)] = Buffer.from(bytes).toString('base64');
    return { written };
  }

  restore(state: DiskState): void {
    this.written = new Map(Object.entries(state.written).map(([lba, b64]) => [Number(lba), new Uint8Array(Buffer.from(b64, 'base64'))]));
  }
}

/** The machine's disks by drive number, with the counts the BDA and INT 13h AH=08h report. */
export class DiskSet {
  private readonly byDrive = new Map<number, Disk>();
  /** INT 13h status of the last operation, per drive kind (BDA 0x41 floppies, 0x74 hard disks). */
  constructor(readonly disks: readonly Disk[]) {
    for (const disk of disks) {
      if (this.byDrive.has(disk.drive)) throw new RangeError(`two disks claim drive 0x${disk.drive.toString(16)}`);
      this.byDrive.set(disk.drive, disk);
    }
  }

  get(drive: number): Disk | undefined {
    return this.byDrive.get(drive);
  }

  get floppies(): number {
    return this.disks.filter((d) => d.kind === 'floppy').length;
  }

  get hardDisks(): number {
    return this.disks.filter((d) => d.kind === 'hard').length;
  }
}
