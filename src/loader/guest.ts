/**
 * Choosing a loader: what `--format auto` does, and the one entry point runGuest uses. Like
 * QEMU's -kernel, a multiboot header wins over a bare ELF; unlike it, flat binaries and boot
 * sectors (kvmtool's guests) are first-class.
 */
import type { BootState } from '../arch/x86/boot-state.js';
import type { E820Entry } from '../arch/x86/e820.js';
import { elfBootState, isElf, parseElf, writeElfSegments } from './elf.js';
import { BOOT_GDT_ADDRESS, PAGE_TABLES_END } from '../arch/x86/pc-layout.js';
import { isBootSector, loadImage, LoaderError } from './image.js';
import { findMultibootHeader, loadMultiboot, type MultibootModule } from './multiboot.js';

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
      const clash = elf.segments.find((seg) => seg.paddr < PAGE_TABLES_END && seg.paddr + seg.memsz > BOOT_GDT_ADDRESS);
      if (clash) {
        throw new LoaderError(
          `${label}: segment ${clash.index} (0x${clash.paddr.toString(16)}-0x${(clash.paddr + clash.memsz).toString(16)}) overlaps the boot GDT and page tables ` +
            `at 0x${BOOT_GDT_ADDRESS.toString(16)}-0x${PAGE_TABLES_END.toString(16)}: link the kernel at 1 MiB (0x100000)`,
        );
      }
      writeElfSegments(image, memory, elf);
      return { format, bootState: elfBootState(elf, { longMode: options.longMode }), notes: [] };
    }
    case 'multiboot': {
      if (!findMultibootHeader(image, name))
        throw new LoaderError(`${label} has no multiboot header in its first 8 KiB: use --format elf or flat`);
      const mb = loadMultiboot(image, memory, { name, cmdline: options.cmdline, modules: options.modules, e820: options.e820 });
      return { format, bootState: mb.bootState, notes: mb.notes };
    }
    default: {
      const never: never = format;
      throw new LoaderError(`unknown format ${String(never)}`);
    }
  }
}
