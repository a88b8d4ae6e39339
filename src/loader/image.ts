/**
 * Loaders: turn an image into guest-memory contents and the registers the guest starts with.
 * Flat binaries follow kvmtool's convention; boot sectors follow the PC BIOS's.
 */

import { UsageError } from '../errors.js';
import { memoryAdvice } from '../units.js';
import type { RealModeEntry } from '../arch/x86/boot-state.js';

export type { RealModeEntry };

export type ImageFormat = 'flat' | 'bootsector';
export type FormatChoice = ImageFormat | 'auto';

/** kvmtool's flat-binary convention: loaded at 1000:0000, stack at 1000:8000. */
export const FLAT_LOAD_SEGMENT = 0x1000;
export const FLAT_LOAD_ADDRESS = FLAT_LOAD_SEGMENT << 4; // 0x10000
export const FLAT_STACK_POINTER = 0x8000;

/** The BIOS loads the boot sector at 0000:7C00 and passes the boot drive in DL. */
export const BOOT_SECTOR_ADDRESS = 0x7c00;
export const BOOT_SECTOR_SIZE = 512;
export const BOOT_SIGNATURE = [0x55, 0xaa] as const;
/** DL = 0x80: the first hard disk, the drive a hard-disk MBR is booted from. */
export const BOOT_DRIVE_FIRST_HARD_DISK = 0x80;

export interface LoadedImage {
  format: ImageFormat;
  loadAddress: number;
  size: number;
  entry: RealModeEntry;
}

/** A bad image: the CLI exits 2. */
export class LoaderError extends UsageError {
  constructor(message: string) {
    super(message, 'EIMAGE');
  }
}

export function isBootSector(image: Uint8Array): boolean {
  return image.length === BOOT_SECTOR_SIZE && image[510] === BOOT_SIGNATURE[0] && image[511] === BOOT_SIGNATURE[1];
}

/** `auto`: exactly 512 bytes ending 0x55 0xAA is a boot sector; anything else is flat. */
export function detectFormat(image: Uint8Array): ImageFormat {
  return isBootSector(image) ? 'bootsector' : 'flat';
}

/** Copies `image` into guest memory and returns where and how the guest starts. */
export function loadImage(image: Uint8Array, memory: Uint8Array, choice: FormatChoice = 'auto', name = 'image'): LoadedImage {
  if (image.length === 0) throw new LoaderError(`${name} is empty: give a flat binary or a 512-byte boot sector`);
  const format = choice === 'auto' ? detectFormat(image) : choice;
  switch (format) {
    case 'flat':
      return loadFlat(image, memory, name);
    case 'bootsector':
      return loadBootSector(image, memory, name);
    default: {
      const never: never = format;
      throw new LoaderError(`unknown image format ${String(never)}`);
    }
  }
}

function loadFlat(image: Uint8Array, memory: Uint8Array, name: string): LoadedImage {
  place(image, memory, FLAT_LOAD_ADDRESS, name);
  const s = FLAT_LOAD_SEGMENT;
  return {
    format: 'flat',
    loadAddress: FLAT_LOAD_ADDRESS,
    size: image.length,
    entry: { cs: s, ip: 0, ds: s, es: s, fs: s, gs: s, ss: s, sp: FLAT_STACK_POINTER, bp: FLAT_STACK_POINTER, dx: 0 },
  };
}

function loadBootSector(image: Uint8Array, memory: Uint8Array, name: string): LoadedImage {
  if (image.length !== BOOT_SECTOR_SIZE) {
    throw new LoaderError(
      `${name} is ${image.length} bytes, but a boot sector is exactly ${BOOT_SECTOR_SIZE}: use --format flat for other images`,
    );
  }
  if (!isBootSector(image)) {
    throw new LoaderError(`${name} lacks the boot signature 0x55 0xAA at offset 510: fix the image or use --format flat`);
  }
  place(image, memory, BOOT_SECTOR_ADDRESS, name);
  return {
    format: 'bootsector',
    loadAddress: BOOT_SECTOR_ADDRESS,
    size: image.length,
    entry: {
      cs: 0,
      ip: BOOT_SECTOR_ADDRESS,
      ds: 0,
      es: 0,
      fs: 0,
      gs: 0,
      ss: 0,
      sp: BOOT_SECTOR_ADDRESS,
      bp: 0,
      dx: BOOT_DRIVE_FIRST_HARD_DISK,
    },
  };
}

function place(image: Uint8Array, memory: Uint8Array, at: number, name: string): void {
  if (at + image.length > memory.length) {
    throw new LoaderError(
      `${name} (${image.length} bytes loaded at 0x${at.toString(16)}) does not fit in ${memory.length} bytes of guest RAM: ` +
        memoryAdvice(at + image.length),
    );
  }
  memory.set(image, at);
}
