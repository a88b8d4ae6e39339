/**
 * ELF loader: ELF32 (EM_386) and ELF64 (EM_X86_64) little-endian executables. PT_LOAD segments go
 * to their physical address (p_paddr), as QEMU's -kernel does, with the bss (p_memsz - p_filesz)
 * zeroed. The whole image is validated before a byte of guest memory is written.
 */
import type { BootState } from '../arch/x86/boot-state.js';
import { LoaderError } from './image.js';
import { memoryAdvice } from '../units.js';

// e_ident (ELF spec, "ELF Identification").
export const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46] as const; // "\x7FELF"
export const EI_CLASS = 4;
export const EI_DATA = 5;
export const EI_VERSION = 6;
export const EI_NIDENT = 16;
export const ELFCLASS32 = 1;
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const ELFDATA2MSB = 2;
export const EV_CURRENT = 1;

// e_type.
export const ET_REL = 1;
export const ET_EXEC = 2;
export const ET_DYN = 3;
export const ET_CORE = 4;

// e_machine.
export const EM_386 = 3;
export const EM_X86_64 = 62;

// p_type.
export const PT_LOAD = 1;
/** e_phnum of 0xFFFF means "the real count is in section header 0" (extended numbering). */
export const PN_XNUM = 0xffff;

export const ELF32_EHDR_SIZE = 52;
export const ELF64_EHDR_SIZE = 64;
export const ELF32_PHDR_SIZE = 32;
export const ELF64_PHDR_SIZE = 56;

/** Elf32_Ehdr / Elf64_Ehdr field offsets after e_ident; they diverge from e_entry on (addresses widen). */
export const E_TYPE = 16;
export const E_MACHINE = 18;
const E_VERSION = 20;
const E_ENTRY = 24;
const E32_PHOFF = 28;
const E32_PHENTSIZE = 42;
const E32_PHNUM = 44;
const E64_PHOFF = 32;
const E64_PHENTSIZE = 54;
const E64_PHNUM = 56;

/** Elf32_Phdr / Elf64_Phdr field offsets (ELF64 moves p_flags up to keep the 8-byte fields aligned). */
const P_TYPE = 0;
const P32_OFFSET = 4;
const P32_PADDR = 12;
const P32_FILESZ = 16;
const P32_MEMSZ = 20;
const P64_OFFSET = 8;
const P64_PADDR = 24;
const P64_FILESZ = 32;
const P64_MEMSZ = 40;

/** Long mode starts with only the first 4 GiB identity-mapped (boot-state.ts). */
const IDENTITY_MAPPED_END = 2n ** 32n;

/** Machine numbers worth naming in an error (ELF spec / System V ABI registry). */
const MACHINE_NAMES: Readonly<Record<number, string>> = {
  0: 'none',
  2: 'SPARC',
  3: 'x86',
  8: 'MIPS',
  20: 'PowerPC',
  21: 'PowerPC64',
  22: 'S/390',
  40: 'ARM',
  43: 'SPARC V9',
  50: 'IA-64',
  62: 'x86-64',
  183: 'AArch64',
  243: 'RISC-V',
  258: 'LoongArch',
};

const TYPE_NAMES: Readonly<Record<number, string>> = {
  0: 'ET_NONE',
  [ET_REL]: 'ET_REL, a relocatable object: link it first',
  [ET_DYN]: 'ET_DYN, a shared object or PIE: link it with -no-pie at a fixed address',
  [ET_CORE]: 'ET_CORE, a core dump',
};

/** One PT_LOAD segment: `filesz` bytes from file `offset` to `paddr`, then zeros up to `memsz`. */
export interface ElfSegment {
  /** Index of its program header (as `readelf -l` lists them, from 0). */
  index: number;
  paddr: number;
  offset: number;
  filesz: number;
  memsz: number;
}

export interface ElfImage {
  class: 32 | 64;
  machine: number;
  entry: number;
  /** The non-empty PT_LOAD segments, in program-header order. */
  segments: ElfSegment[];
  /** Lowest physical address loaded. */
  lowest: number;
  /** End (exclusive) of the highest segment, bss included. */
  highest: number;
}

export function isElf(image: Uint8Array): boolean {
  return image.length >= ELF_MAGIC.length && ELF_MAGIC.every((b, i) => image[i] === b);
}

const hex = (n: number | bigint): string => `0x${n.toString(16)}`;

/**
 * Validates an ELF executable against a guest of `memorySize` bytes without touching memory.
 * `name` is how errors refer to the file (e.g. the path given on the command line).
 */
export function parseElf(image: Uint8Array, memorySize: number, name: string): ElfImage {
  const what = `kernel '${name}'`;
  const fail = (problem: string): never => {
    throw new LoaderError(`${what} ${problem}`);
  };
  if (!isElf(image)) fail('is not an ELF file (no \\x7FELF magic at offset 0)');
  if (image.length < EI_NIDENT) fail(`is truncated: its ELF identification ends at byte ${EI_NIDENT} of a ${image.length}-byte file`);

  const elfClass = image[EI_CLASS];
  if (elfClass !== ELFCLASS32 && elfClass !== ELFCLASS64) {
    fail(`has an invalid ELF class ${elfClass} (expected ${ELFCLASS32} for ELF32 or ${ELFCLASS64} for ELF64)`);
  }
  const is64 = elfClass === ELFCLASS64;
  const bits = is64 ? 64 : 32;
  const data = image[EI_DATA];
  if (data === ELFDATA2MSB) fail('is a big-endian ELF (ELFDATA2MSB): x86 kernels are little-endian');
  if (data !== ELFDATA2LSB) fail(`has an invalid ELF data encoding ${data} (expected ${ELFDATA2LSB}, little-endian)`);
  if (image[EI_VERSION] !== EV_CURRENT) fail(`has ELF version ${image[EI_VERSION]} in e_ident (expected ${EV_CURRENT}, EV_CURRENT)`);

  const ehdrSize = is64 ? ELF64_EHDR_SIZE : ELF32_EHDR_SIZE;
  if (image.length < ehdrSize) fail(`is truncated: its ELF${bits} header ends at byte ${ehdrSize} of a ${image.length}-byte file`);

  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const u16 = (at: number): number => view.getUint16(at, true);
  const u32 = (at: number): number => view.getUint32(at, true);
  /** An address-sized field: 4 bytes in ELF32, 8 in ELF64; bigint so nothing wraps or rounds. */
  const addr = (at32: number, at64: number): bigint => (is64 ? view.getBigUint64(at64, true) : BigInt(view.getUint32(at32, true)));

  const version = u32(E_VERSION);
  if (version !== EV_CURRENT) fail(`has ELF version ${version} in e_version (expected ${EV_CURRENT}, EV_CURRENT)`);

  const machine = u16(E_MACHINE);
  const expectedMachine = is64 ? EM_X86_64 : EM_386;
  if (machine !== expectedMachine) {
    const machineName = MACHINE_NAMES[machine] ?? 'unknown';
    if (machine === EM_386 || machine === EM_X86_64) {
      fail(
        `is an ELF${bits} for machine ${machine} (${machineName}): tskvm loads ELF32 images for EM_386 (${EM_386}) ` +
          `and ELF64 images for EM_X86_64 (${EM_X86_64})`,
      );
    }
    fail(`is an ELF for machine ${machine} (${machineName}), not x86`);
  }

  const type = u16(E_TYPE);
  if (type !== ET_EXEC) fail(`is an ELF of type ${type} (${TYPE_NAMES[type] ?? 'unknown'}), not an executable (ET_EXEC)`);

  const entry = addr(E_ENTRY, E_ENTRY);
  if (entry >= IDENTITY_MAPPED_END) {
    fail(`has its entry point at ${hex(entry)}, above 4 GiB: tskvm starts ELF64 kernels with only the first 4 GiB identity-mapped`);
  }

  const phoff = addr(E32_PHOFF, E64_PHOFF);
  const phentsize = u16(is64 ? E64_PHENTSIZE : E32_PHENTSIZE);
  const phnum = u16(is64 ? E64_PHNUM : E32_PHNUM);
  const phdrSize = is64 ? ELF64_PHDR_SIZE : ELF32_PHDR_SIZE;
  if (phnum === 0) fail('has no program headers: there is nothing to load');
  if (phnum === PN_XNUM) fail(`uses extended program header numbering (e_phnum = ${hex(PN_XNUM)}), which tskvm does not support`);
  if (phentsize !== phdrSize)
    fail(`has ${phentsize}-byte program headers (e_phentsize), but ELF${bits} program headers are ${phdrSize} bytes`);

  const fileSize = BigInt(image.length);
  const addressSpaceEnd = 2n ** BigInt(bits);
  const ramEnd = BigInt(memorySize);
  const segments: ElfSegment[] = [];
  // The whole table first, so a cut-off file is reported as such rather than as a bad segment.
  for (let i = 0; i < phnum; i++) {
    const end = phoff + BigInt((i + 1) * phdrSize);
    if (end > fileSize) fail(`is truncated: program header ${i} ends at byte ${end} of a ${image.length}-byte file`);
  }
  for (let i = 0; i < phnum; i++) {
    const ph = Number(phoff) + i * phdrSize;
    if (u32(ph + P_TYPE) !== PT_LOAD) continue;
    const offset = addr(ph + P32_OFFSET, ph + P64_OFFSET);
    const paddr = addr(ph + P32_PADDR, ph + P64_PADDR);
    const filesz = addr(ph + P32_FILESZ, ph + P64_FILESZ);
    const memsz = addr(ph + P32_MEMSZ, ph + P64_MEMSZ);
    if (offset + filesz > fileSize) {
      fail(
        `is truncated: segment ${i} (file bytes ${offset}-${offset + filesz}) ends at byte ${offset + filesz} of a ${image.length}-byte file`,
      );
    }
    if (filesz > memsz) fail(`has segment ${i} with p_filesz ${filesz} larger than its p_memsz ${memsz}`);
    if (paddr + memsz > addressSpaceEnd) {
      fail(`has segment ${i} (${hex(paddr)} + ${hex(memsz)} bytes) wrapping around the end of the ${bits}-bit address space`);
    }
    if (memsz === 0n) continue; // Nothing to place: an empty segment takes no memory.
    if (paddr + memsz > ramEnd) {
      throw new LoaderError(
        `${what}: segment ${i} (${hex(paddr)}-${hex(paddr + memsz)}) lies outside guest RAM (${memorySize} bytes): ` +
          memoryAdvice(Number(paddr + memsz)),
      );
    }
    segments.push({ index: i, paddr: Number(paddr), offset: Number(offset), filesz: Number(filesz), memsz: Number(memsz) });
  }
  if (segments.length === 0) fail('has no non-empty PT_LOAD segment: there is nothing to load');

  // Overlapping segments would silently overwrite each other; QEMU refuses overlapping ROM blobs too.
  const sorted = [...segments].sort((a, b) => a.paddr - b.paddr);
  for (let k = 1; k < sorted.length; k++) {
    const prev = sorted[k - 1]!;
    const next = sorted[k]!;
    if (next.paddr < prev.paddr + prev.memsz) {
      fail(
        `has overlapping segments ${prev.index} (${hex(prev.paddr)}-${hex(prev.paddr + prev.memsz)}) ` +
          `and ${next.index} (${hex(next.paddr)}-${hex(next.paddr + next.memsz)})`,
      );
    }
  }
  const last = sorted[sorted.length - 1]!;
  return {
    class: is64 ? 64 : 32,
    machine,
    entry: Number(entry),
    segments,
    lowest: sorted[0]!.paddr,
    highest: last.paddr + last.memsz,
  };
}

/** Copies the segments of an image that `parseElf` accepted into guest memory and zeroes their bss. */
export function writeElfSegments(image: Uint8Array, memory: Uint8Array, elf: ElfImage): void {
  for (const s of elf.segments) {
    memory.set(image.subarray(s.offset, s.offset + s.filesz), s.paddr);
    memory.fill(0, s.paddr + s.filesz, s.paddr + s.memsz);
  }
}

/** Validates the whole image, then loads its PT_LOAD segments at their physical addresses. */
export function loadElf(image: Uint8Array, memory: Uint8Array, name: string): ElfImage {
  const elf = parseElf(image, memory.length, name);
  writeElfSegments(image, memory, elf);
  return elf;
}

export interface ElfBootOptions {
  /** Start an ELF32 in long mode too (its code must then be 64-bit). */
  longMode?: boolean;
}

/**
 * How the guest starts: an ELF64 (or `longMode`) in long mode at e_entry, an ELF32 in flat 32-bit
 * protected mode at e_entry, as QEMU's -kernel starts a bare ELF32. No registers carry anything.
 */
export function elfBootState(elf: ElfImage, options: ElfBootOptions = {}): BootState {
  if (elf.class === 64 || options.longMode === true) return { mode: 'long', rip: BigInt(elf.entry), regs: {} };
  return { mode: 'protected', rip: elf.entry, regs: {} };
}
