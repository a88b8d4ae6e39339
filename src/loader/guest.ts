/**
 * Choosing a loader: what `--format auto` does, and the one entry point runGuest uses. Like
 * QEMU's -kernel, a multiboot header wins over a bare ELF; unlike it, flat binaries and boot
 * sectors (kvmtool's guests) are first-class.
 */
import type { BootState } from '../arch/x86/boot-state.js';
import type { E820Entry } from '../arch/x86/e820.js';
import { elfBootState, isElf, parseElf, writeElfSegments } from './elf.js';
import { isBootSector, loadImage, LoaderError } from './image.js';
import { findMultibootHeader, loadMultiboot, type MultibootModule } from './multiboot.js';
import { BootDataAllocator, placeBootTables, type BootTables } from './placement.js';

export type GuestFormat = 'flat' | 'bootsector' | 'elf' | 'multiboot';
export type GuestFormatChoice = GuestFormat | 'auto';
export const GUEST_FORMATS: readonly GuestFormatChoice[] = ['auto', 'flat', 'bootsector', 'elf', 'multiboot'];

export interface LoadGuestOptions {
  format: GuestFormatChoice;
  /** How errors and the multiboot command line name the image (e.g. its path). */
  name: string;
  /** Kernel command line (--append): multiboot only. */
  cmdline?: string;
  /** Multiboot modules (--initrd). */
  modules?: MultibootModule[];
  /** Start an ELF32 in long mode (--long-mode). */
  longMode?: boolean;
  e820: E820Entry[];
}

export interface LoadedGuest {
  format: GuestFormat;
  bootState: BootState;
  /**
   * Where applyBootState writes the boot GDT and page tables (clear of the kernel and modules);
   * absent for real-mode guests, which need neither.
   */
  bootTables?: BootTables;
  /** Things worth telling the user on stderr (ignored requests and the like). */
  notes: string[];
}

/** `auto`: boot sector, then multiboot header, then ELF, else flat. */
export function detectGuestFormat(image: Uint8Array, name: string): GuestFormat {
  if (isBootSector(image)) return 'bootsector';
  if (findMultibootHeader(image, name)) return 'multiboot';
  if (isElf(image)) return 'elf';
  return 'flat';
}

export function loadGuest(image: Uint8Array, memory: Uint8Array, options: LoadGuestOptions): LoadedGuest {
  const { name } = options;
  const label = `image '${name}'`;
  if (image.length === 0) throw new LoaderError(`${label} is empty: give a flat binary, a boot sector, an ELF or a multiboot kernel`);
  const format = options.format === 'auto' ? detectGuestFormat(image, name) : options.format;
  const usesKernelOptions = format === 'multiboot';
  if (!usesKernelOptions && options.cmdline !== undefined) {
    throw new LoaderError(`--append needs a multiboot kernel, but ${label} is loaded as ${format}`);
  }
  if (!usesKernelOptions && options.modules?.length) {
    throw new LoaderError(`--initrd needs a multiboot kernel, but ${label} is loaded as ${format}`);
  }
  if (options.longMode && format !== 'elf') {
    throw new LoaderError(`--long-mode applies to ELF images, but ${label} is loaded as ${format}`);
  }
  switch (format) {
    case 'flat':
    case 'bootsector': {
      const loaded = loadImage(image, memory, format, label);
      return { format, bootState: { mode: 'real', entry: loaded.entry }, notes: [] };
    }
    case 'elf': {
      const elf = parseElf(image, memory.length, name);
      const bootState = elfBootState(elf, { longMode: options.longMode });
      // The boot GDT and page tables go where no segment lies (placed before anything is written).
      const segments = elf.segments.map((seg) => ({ start: seg.paddr, end: seg.paddr + seg.memsz }));
      const bootTables = placeBootTables(new BootDataAllocator(memory.length, segments), bootState.mode === 'long');
      writeElfSegments(image, memory, elf);
      return { format, bootState, bootTables, notes: [] };
    }
    case 'multiboot': {
      if (!findMultibootHeader(image, name))
        throw new LoaderError(`${label} has no multiboot header in its first 8 KiB: use --format elf or flat`);
      const mb = loadMultiboot(image, memory, { name, cmdline: options.cmdline, modules: options.modules, e820: options.e820 });
      return { format, bootState: mb.bootState, bootTables: mb.bootTables, notes: mb.notes };
    }
    default: {
      const never: never = format;
      throw new LoaderError(`unknown format ${String(never)}`);
    }
  }
}
