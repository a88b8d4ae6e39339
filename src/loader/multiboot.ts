/**
 * Multiboot v1 (specification 0.6.96) loader, matching what `qemu-system-x86_64 -kernel K -append
 * ARGS -initrd "m1 args,m2"` gives a multiboot kernel: the kernel (ELF32 or a.out kludge) at its
 * load address, modules page-aligned after it, then the boot information with its memory map,
 * module list and strings in one block after the last module (QEMU too puts it after the kernel),
 * and the guest started in flat 32-bit protected mode with EAX = 0x2BADB002 and EBX = the info
 * address. The boot information and the boot GDT go where no kernel segment or module lies
 * (placement.ts), so kernels linked anywhere in low memory load. Everything is validated before a
 * byte of guest memory is written.
 */
import { PAGE_SIZE } from '../kvm/constants.js';
import type { BootState } from '../arch/x86/boot-state.js';
import { E820_RAM, type E820Entry } from '../arch/x86/e820.js';
import { E_MACHINE, EI_CLASS, ELFCLASS64, EM_X86_64, isElf, parseElf, writeElfSegments } from './elf.js';
import { LoaderError } from './image.js';
import { memoryAdvice } from '../units.js';
import { CONVENTIONAL_MEMORY_ADDRESS, HIGH_MEMORY_ADDRESS, LOW_MEMORY_END, VGA_HOLE_ADDRESS } from '../arch/x86/pc-layout.js';
import { BootDataAllocator, placeBootTables, type AddressRange, type BootTables } from './placement.js';

// The OS image's header (spec §3.1).
export const MULTIBOOT_HEADER_MAGIC = 0x1badb002;
/** The header lies wholly within the image's first 8192 bytes, 32-bit aligned. */
export const MULTIBOOT_SEARCH = 8192;
export const MULTIBOOT_HEADER_ALIGN = 4;
/** magic, flags, checksum: the part every header has. */
export const MULTIBOOT_HEADER_SIZE = 12;
/** ... plus header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr with the a.out kludge. */
export const MULTIBOOT_AOUT_HEADER_SIZE = 32;

const MH_MAGIC = 0;
const MH_FLAGS = 4;
const MH_CHECKSUM = 8;
const MH_HEADER_ADDR = 12;
const MH_LOAD_ADDR = 16;
const MH_LOAD_END_ADDR = 20;
const MH_BSS_END_ADDR = 24;
const MH_ENTRY_ADDR = 28;

// Header flags. Bits 0-15 are requirements: a loader that cannot meet one must refuse the kernel.
export const MULTIBOOT_PAGE_ALIGN = 1 << 0;
export const MULTIBOOT_MEMORY_INFO = 1 << 1;
export const MULTIBOOT_VIDEO_MODE = 1 << 2;
export const MULTIBOOT_AOUT_KLUDGE = 1 << 16;
export const MULTIBOOT_REQUIRED_FLAGS_MASK = 0x0000ffff;
/** Requirements tskvm meets (modules are always page-aligned and memory info is always given) or, for video, ignores as QEMU does. */
export const MULTIBOOT_SUPPORTED_REQUIRED_FLAGS = MULTIBOOT_PAGE_ALIGN | MULTIBOOT_MEMORY_INFO | MULTIBOOT_VIDEO_MODE;

/** What the boot loader leaves in EAX (spec §3.2). */
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002;

// multiboot_info flags (spec §3.3): which fields are valid.
export const MULTIBOOT_INFO_MEMORY = 1 << 0;
export const MULTIBOOT_INFO_BOOTDEV = 1 << 1;
export const MULTIBOOT_INFO_CMDLINE = 1 << 2;
export const MULTIBOOT_INFO_MODS = 1 << 3;
export const MULTIBOOT_INFO_MEM_MAP = 1 << 6;
export const MULTIBOOT_INFO_BOOT_LOADER_NAME = 1 << 9;

// multiboot_info field offsets.
export const MBI_FLAGS = 0;
export const MBI_MEM_LOWER = 4;
export const MBI_MEM_UPPER = 8;
export const MBI_BOOT_DEVICE = 12;
export const MBI_CMDLINE = 16;
export const MBI_MODS_COUNT = 20;
export const MBI_MODS_ADDR = 24;
export const MBI_MMAP_LENGTH = 44;
export const MBI_MMAP_ADDR = 48;
export const MBI_BOOT_LOADER_NAME = 64;
/** Up to and including the VBE fields, as QEMU writes it. */
export const MULTIBOOT_INFO_SIZE = 88;

/** A module descriptor: mod_start, mod_end (exclusive), string, reserved. */
export const MULTIBOOT_MODULE_SIZE = 16;
const MOD_START = 0;
const MOD_END = 4;
const MOD_STRING = 8;

/** A memory-map entry: `size` (of what follows it: 20) then base_addr u64, length u64, type u32. */
export const MULTIBOOT_MMAP_ENTRY_SIZE = 20;
const MMAP_SIZE_FIELD = 4;
export const MULTIBOOT_MMAP_STRIDE = MMAP_SIZE_FIELD + MULTIBOOT_MMAP_ENTRY_SIZE;
const MMAP_BASE = 4;
const MMAP_LENGTH = 12;
const MMAP_TYPE = 20;

/** QEMU (TARGET_PAGE_ALIGN) and MULTIBOOT_PAGE_ALIGN both align modules to 4 KiB pages. */
export { PAGE_SIZE };
const KiB = 1024;
/** Multiboot's fields are 32-bit: everything it describes must lie below 4 GiB. */
const ADDRESS_SPACE_END = 2 ** 32;
/** The boot information block is page-aligned, as QEMU aligns its multiboot buffer. */
const MULTIBOOT_INFO_ALIGN = PAGE_SIZE;
export const DEFAULT_BOOT_LOADER_NAME = 'tskvm';

export interface MultibootAoutFields {
  headerAddr: number;
  loadAddr: number;
  loadEndAddr: number;
  bssEndAddr: number;
  entryAddr: number;
}

export interface MultibootHeader {
  /** Byte offset of the magic in the image. */
  offset: number;
  flags: number;
  /** The a.out-kludge address fields, when flag bit 16 is set and they fit in the image. */
  aout?: MultibootAoutFields;
}

export interface MultibootModule {
  /** How it was named (QEMU: the file name as given to -initrd); the start of its string. */
  name: string;
  bytes: Uint8Array;
  /** Arguments, appended to the name after a space (QEMU: the text after the file name). */
  cmdline?: string;
}

export interface MultibootOptions {
  /** The kernel's name as given (QEMU: the -kernel path): errors and the command line use it. */
  name: string;
  /** --append's text. */
  cmdline?: string;
  modules?: MultibootModule[];
  e820: E820Entry[];
  bootLoaderName?: string;
}

export interface LoadedMultiboot {
  bootState: BootState;
  /** Where the boot GDT goes (applyBootState writes it). */
  bootTables: BootTables;
  /** The multiboot_info structure; the memory map, module list and strings follow it. */
  infoAddress: number;
  /** End (exclusive) of the boot information block. */
  infoEnd: number;
  entry: number;
  /** Lowest address of the kernel image. */
  kernelStart: number;
  /** End (exclusive) of the kernel, bss included. */
  kernelEnd: number;
  /** Where each module went: [start, end), as in the module list. */
  modules: { start: number; end: number }[];
  /** Things the user may want to know (e.g. an ignored video-mode request), for stderr. */
  notes: string[];
}

const hex = (n: number): string => `0x${n.toString(16).toUpperCase()}`;
const alignUp = (n: number, to: number): number => Math.ceil(n / to) * to;
const u32At = (image: Uint8Array, at: number): number =>
  (image[at]! | (image[at + 1]! << 8) | (image[at + 2]! << 16) | (image[at + 3]! << 24)) >>> 0;

/**
 * Finds the multiboot header: the magic at a 4-byte-aligned offset with magic + flags + checksum
 * = 0 (mod 2^32), its 12 mandatory bytes within the first 8192 bytes. Returns undefined when no
 * offset holds the magic. A magic with a bad checksum is a LoaderError unless a valid header follows
 * (QEMU and GRUB skip such a false match and keep searching).
 */
export function findMultibootHeader(image: Uint8Array, name?: string): MultibootHeader | undefined {
  const limit = Math.min(image.length, MULTIBOOT_SEARCH);
  let badChecksum: string | undefined;
  for (let offset = 0; offset + MULTIBOOT_HEADER_SIZE <= limit; offset += MULTIBOOT_HEADER_ALIGN) {
    if (u32At(image, offset + MH_MAGIC) !== MULTIBOOT_HEADER_MAGIC) continue;
    const flags = u32At(image, offset + MH_FLAGS);
    const checksum = u32At(image, offset + MH_CHECKSUM);
    const sum = (MULTIBOOT_HEADER_MAGIC + flags + checksum) % ADDRESS_SPACE_END;
    if (sum !== 0) {
      badChecksum ??=
        `multiboot header at offset ${hex(offset)} has a bad checksum: magic ${hex(MULTIBOOT_HEADER_MAGIC)} + flags ${hex(flags)} + ` +
        `checksum ${hex(checksum)} = ${hex(sum)} (mod 2^32), but must be 0: set checksum to ${hex((ADDRESS_SPACE_END - ((MULTIBOOT_HEADER_MAGIC + flags) % ADDRESS_SPACE_END)) % ADDRESS_SPACE_END)}`;
      continue;
    }
    const header: MultibootHeader = { offset, flags };
    if (flags & MULTIBOOT_AOUT_KLUDGE && offset + MULTIBOOT_AOUT_HEADER_SIZE <= limit) {
      header.aout = {
        headerAddr: u32At(image, offset + MH_HEADER_ADDR),
        loadAddr: u32At(image, offset + MH_LOAD_ADDR),
        loadEndAddr: u32At(image, offset + MH_LOAD_END_ADDR),
        bssEndAddr: u32At(image, offset + MH_BSS_END_ADDR),
        entryAddr: u32At(image, offset + MH_ENTRY_ADDR),
      };
    }
    return header;
  }
  if (badChecksum !== undefined) throw new LoaderError(name === undefined ? badChecksum : `kernel '${name}': ${badChecksum}`);
  return undefined;
}

/** The kernel's placement, validated; `write` copies it into memory. */
interface KernelPlan {
  start: number;
  end: number;
  entry: number;
  write(memory: Uint8Array): void;
}

function planAoutKernel(image: Uint8Array, memorySize: number, header: MultibootHeader, name: string): KernelPlan {
  const fail = (problem: string): never => {
    throw new LoaderError(`kernel '${name}': multiboot header at offset ${hex(header.offset)} ${problem}`);
  };
  const a = header.aout;
  if (a === undefined) {
    return fail(
      `sets the a.out kludge (flag bit 16), but its address fields (${MULTIBOOT_AOUT_HEADER_SIZE} bytes) do not fit ` +
        `in the file's first ${Math.min(image.length, MULTIBOOT_SEARCH)} bytes`,
    );
  }
  // The checks QEMU's load_multiboot makes, in its order.
  if (a.headerAddr < a.loadAddr) fail(`has header_addr ${hex(a.headerAddr)} below load_addr ${hex(a.loadAddr)}`);
  if (a.headerAddr - a.loadAddr > header.offset) {
    fail(
      `has header_addr ${hex(a.headerAddr)} - load_addr ${hex(a.loadAddr)} = ${a.headerAddr - a.loadAddr} bytes, ` +
        `more than the header's offset in the file (${header.offset}): the text would start before the file does`,
    );
  }
  const textOffset = header.offset - (a.headerAddr - a.loadAddr);
  let loadSize: number;
  if (a.loadEndAddr !== 0) {
    if (a.loadEndAddr < a.loadAddr) fail(`has load_end_addr ${hex(a.loadEndAddr)} below load_addr ${hex(a.loadAddr)}`);
    loadSize = a.loadEndAddr - a.loadAddr;
  } else {
    loadSize = image.length - textOffset; // 0 means "load to the end of the file".
  }
  if (textOffset + loadSize > image.length) {
    throw new LoaderError(
      `kernel '${name}' is truncated: its multiboot header asks for ${loadSize} bytes from file offset ${textOffset}, ` +
        `which end at byte ${textOffset + loadSize} of a ${image.length}-byte file`,
    );
  }
  if (a.loadAddr + loadSize > ADDRESS_SPACE_END)
    fail(`loads ${loadSize} bytes at ${hex(a.loadAddr)}, past the end of the 32-bit address space`);
  let kernelSize = loadSize;
  if (a.bssEndAddr !== 0) {
    if (a.bssEndAddr < a.loadAddr + loadSize) {
      fail(`has bss_end_addr ${hex(a.bssEndAddr)} below the end of the loaded text and data (${hex(a.loadAddr + loadSize)})`);
    }
    kernelSize = a.bssEndAddr - a.loadAddr;
  }
  const end = a.loadAddr + kernelSize;
  if (end > memorySize) {
    throw new LoaderError(
      `kernel '${name}' (${hex(a.loadAddr)}-${hex(end)}) lies outside guest RAM (${memorySize} bytes): ${memoryAdvice(end)}`,
    );
  }
  return {
    start: a.loadAddr,
    end,
    entry: a.entryAddr,
    write(memory) {
      memory.set(image.subarray(textOffset, textOffset + loadSize), a.loadAddr);
      memory.fill(0, a.loadAddr + loadSize, end);
    },
  };
}

function planElfKernel(image: Uint8Array, memorySize: number, name: string): KernelPlan {
  if (!isElf(image)) {
    throw new LoaderError(
      `kernel '${name}' has a multiboot header without the a.out kludge (flag bit 16), so it must be an ELF, but it is not one`,
    );
  }
  // QEMU refuses these too ("Cannot load x86-64 image, give a 32bit one").
  const machine = (image[E_MACHINE] ?? 0) | ((image[E_MACHINE + 1] ?? 0) << 8);
  if (image[EI_CLASS] === ELFCLASS64 || machine === EM_X86_64) {
    throw new LoaderError(
      `kernel '${name}' is a 64-bit ELF with a multiboot header, but multiboot v1 starts kernels in 32-bit mode: ` +
        `link it as ELF32 (ld -m elf_i386, objcopy -O elf32-i386) or set the a.out kludge (flag bit 16)`,
    );
  }
  const elf = parseElf(image, memorySize, name);
  return { start: elf.lowest, end: elf.highest, entry: elf.entry, write: (memory) => writeElfSegments(image, memory, elf) };
}

/** KiB of RAM contiguous from `from` in the map (RAM entries may adjoin). */
function contiguousRamKiB(e820: readonly E820Entry[], from: number): number {
  let end = from;
  for (;;) {
    const next = e820.find((e) => e.type === E820_RAM && e.base <= end && end < e.base + e.length);
    if (next === undefined) break;
    end = next.base + next.length;
  }
  return Math.floor((end - from) / KiB);
}

/** A string as the guest reads it: UTF-8, NUL-terminated. */
function cString(text: string, what: string): Uint8Array {
  if (text.includes('\0')) throw new LoaderError(`${what} contains a NUL character, which would end the string early`);
  const bytes = new TextEncoder().encode(text);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** Loads a multiboot kernel and its modules and writes the boot information. */
export function loadMultiboot(image: Uint8Array, memory: Uint8Array, options: MultibootOptions): LoadedMultiboot {
  const { name, cmdline = '', modules = [], e820, bootLoaderName = DEFAULT_BOOT_LOADER_NAME } = options;
  const notes: string[] = [];
  const header = findMultibootHeader(image, name);
  if (header === undefined) {
    throw new LoaderError(
      `kernel '${name}' has no multiboot header (magic ${hex(MULTIBOOT_HEADER_MAGIC)} at a 4-byte-aligned offset in its first ${MULTIBOOT_SEARCH} bytes)`,
    );
  }
  const unsupported = header.flags & MULTIBOOT_REQUIRED_FLAGS_MASK & ~MULTIBOOT_SUPPORTED_REQUIRED_FLAGS;
  if (unsupported !== 0) {
    const bits = [...Array(16).keys()].filter((b) => unsupported & (1 << b));
    throw new LoaderError(
      `kernel '${name}': multiboot header at offset ${hex(header.offset)} requires features tskvm does not provide ` +
        `(flag bit${bits.length > 1 ? 's' : ''} ${bits.join(', ')}); the multiboot specification says the boot loader must then refuse the kernel`,
    );
  }
  if (header.flags & MULTIBOOT_VIDEO_MODE) {
    notes.push(
      `kernel '${name}' asks for a video mode (multiboot flag bit 2): tskvm has no display, so it gets no video information (QEMU ignores this too)`,
    );
  }
  const kernel =
    header.flags & MULTIBOOT_AOUT_KLUDGE ? planAoutKernel(image, memory.length, header, name) : planElfKernel(image, memory.length, name);

  // Modules: each page-aligned after the previous one, the first after the kernel (QEMU's layout).
  const placed: { start: number; end: number }[] = [];
  let next = alignUp(kernel.end, PAGE_SIZE);
  for (const m of modules) {
    const start = next;
    const end = start + m.bytes.length;
    if (end > memory.length) {
      throw new LoaderError(
        `module '${m.name}' (${m.bytes.length} bytes at ${hex(start)}) does not fit in guest RAM (${memory.length} bytes): ${memoryAdvice(end)}`,
      );
    }
    if (end >= ADDRESS_SPACE_END)
      throw new LoaderError(`module '${m.name}' would end at ${hex(end)}, above the 4 GiB that multiboot's 32-bit fields can describe`);
    placed.push({ start, end });
    next = alignUp(end, PAGE_SIZE);
  }

  // The boot information block: multiboot_info, then the memory map, the module list and the
  // strings. Its size is known before it is placed: build it at offset 0, relocate on placement.
  const strings: { bytes: Uint8Array; what: string }[] = [];
  const addString = (text: string, what: string): number => {
    strings.push({ bytes: cString(text, what), what });
    return strings.length - 1;
  };
  // QEMU's form: "<kernel> <append>" (always with the space), and each module's -initrd text "<file> <args>".
  const cmdlineString = addString(`${name} ${cmdline}`, 'command line');
  const moduleStrings = modules.map((m) =>
    addString(m.cmdline !== undefined && m.cmdline !== '' ? `${m.name} ${m.cmdline}` : m.name, `string of module '${m.name}'`),
  );
  const bootLoaderNameString = addString(bootLoaderName, 'boot loader name');
  const mmapOffset = MULTIBOOT_INFO_SIZE;
  const mmapLength = e820.length * MULTIBOOT_MMAP_STRIDE;
  const modsOffset = mmapOffset + mmapLength;
  const stringOffsets: number[] = [];
  let blockSize = modsOffset + modules.length * MULTIBOOT_MODULE_SIZE;
  for (const s of strings) {
    stringOffsets.push(blockSize);
    blockSize += s.bytes.length;
  }

  // Where it goes: after the kernel and its modules (QEMU's choice), else in conventional memory.
  const occupied: AddressRange[] = [{ start: kernel.start, end: kernel.end }, ...placed];
  const allocator = new BootDataAllocator(memory.length, occupied);
  const after = alignUp(Math.max(kernel.end, ...placed.map((p) => p.end)), MULTIBOOT_INFO_ALIGN);
  const infoAddress = allocator.allocate(
    blockSize,
    MULTIBOOT_INFO_ALIGN,
    [
      { start: after, end: ADDRESS_SPACE_END },
      { start: CONVENTIONAL_MEMORY_ADDRESS, end: LOW_MEMORY_END },
      { start: HIGH_MEMORY_ADDRESS, end: ADDRESS_SPACE_END },
    ],
    'the multiboot information (memory map, module list, command lines)',
  );
  const bootTables = placeBootTables(allocator, false);
  const at = (offset: number): number => infoAddress + offset;

  const block = new Uint8Array(blockSize);
  const view = new DataView(block.buffer);
  e820.forEach((e, i) => {
    const entry = mmapOffset + i * MULTIBOOT_MMAP_STRIDE;
    view.setUint32(entry, MULTIBOOT_MMAP_ENTRY_SIZE, true);
    view.setBigUint64(entry + MMAP_BASE, BigInt(e.base), true);
    view.setBigUint64(entry + MMAP_LENGTH, BigInt(e.length), true);
    view.setUint32(entry + MMAP_TYPE, e.type, true);
  });
  modules.forEach((_, i) => {
    const entry = modsOffset + i * MULTIBOOT_MODULE_SIZE;
    const p = placed[i]!;
    view.setUint32(entry + MOD_START, p.start, true);
    view.setUint32(entry + MOD_END, p.end, true);
    view.setUint32(entry + MOD_STRING, at(stringOffsets[moduleStrings[i]!]!), true);
  });
  strings.forEach((s, i) => block.set(s.bytes, stringOffsets[i]!));

  view.setUint32(
    MBI_FLAGS,
    MULTIBOOT_INFO_MEMORY | MULTIBOOT_INFO_CMDLINE | MULTIBOOT_INFO_MODS | MULTIBOOT_INFO_MEM_MAP | MULTIBOOT_INFO_BOOT_LOADER_NAME,
    true,
  );
  // mem_lower is at most 640 KiB by definition; mem_upper runs to the first hole above 1 MiB.
  view.setUint32(MBI_MEM_LOWER, Math.min(contiguousRamKiB(e820, 0), VGA_HOLE_ADDRESS / KiB), true);
  view.setUint32(MBI_MEM_UPPER, Math.min(contiguousRamKiB(e820, HIGH_MEMORY_ADDRESS), ADDRESS_SPACE_END - 1), true);
  view.setUint32(MBI_CMDLINE, at(stringOffsets[cmdlineString]!), true);
  view.setUint32(MBI_MODS_COUNT, modules.length, true);
  view.setUint32(MBI_MODS_ADDR, at(modsOffset), true);
  view.setUint32(MBI_MMAP_LENGTH, mmapLength, true);
  view.setUint32(MBI_MMAP_ADDR, at(mmapOffset), true);
  view.setUint32(MBI_BOOT_LOADER_NAME, at(stringOffsets[bootLoaderNameString]!), true);

  // Everything validated: now write.
  kernel.write(memory);
  modules.forEach((m, i) => memory.set(m.bytes, placed[i]!.start));
  memory.set(block, infoAddress);

  return {
    bootState: { mode: 'protected', rip: kernel.entry, regs: { rax: MULTIBOOT_BOOTLOADER_MAGIC, rbx: infoAddress } },
    bootTables,
    infoAddress,
    infoEnd: infoAddress + blockSize,
    entry: kernel.entry,
    kernelStart: kernel.start,
    kernelEnd: kernel.end,
    modules: placed,
    notes,
  };
}
