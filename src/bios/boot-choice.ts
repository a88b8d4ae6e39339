/**
 * Whether a run boots through the BIOS: a well-formed boot sector as the image, or no image but
 * disks. Kept apart from the BIOS itself, so the decision costs no import of it.
 */
import { UsageError } from '../errors.js';
import type { GuestFormatChoice } from '../loader/guest.js';
import { isBootSector } from '../loader/image.js';
import type { BiosConfig } from './options.js';

export function bootsThroughBios(config: BiosConfig | undefined, format: GuestFormatChoice, image: Uint8Array | undefined): boolean {
  if (!config) return false;
  if (!image) return true;
  // Only a well-formed boot sector boots through the BIOS; a bad one gets the loader's error.
  const bootSector = (format === 'bootsector' || format === 'auto') && isBootSector(image);
  if (!bootSector && config.disks.length > 0) {
    throw new UsageError(
      '--disk boots through the BIOS, which a flat binary, ELF or multiboot image does not: give a boot sector as IMAGE, or no IMAGE',
    );
  }
  return bootSector;
}
