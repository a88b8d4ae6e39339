/**
 * Which register layout the gdb that debugs an image will use, read from the image as gdb reads
 * its file: an ELF64 is x86-64 code (even a multiboot kernel that starts in 32-bit mode: gdb
 * loads it as x86-64 and wants that layout from its first packet). An ELF32 is i386 — unless its
 * DWARF says its code is 64-bit: kvm-unit-tests' x86-64 `.flat` kernels are their `.elf` copied
 * into an ELF32 container (`objcopy -O elf32-i386`) so multiboot loaders take them, and people
 * run the `.flat` while gdb loads the `.elf`; the debug information keeps 8-byte addresses.
 * Anything else (flat binaries, boot sectors, an ELF32 without debug information) is undecided:
 * the stub then goes by the vCPU's mode.
 */
import type { LayoutName } from './registers.js';

// ELF identification and header fields (System V ABI), the ELF32 offsets.
const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46]; // "\x7fELF"
const EI_CLASS = 4;
const EI_DATA = 5;
const ELFCLASS32 = 1;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const E_SHOFF_32 = 0x20;
const E_SHENTSIZE_32 = 0x2e;
const E_SHNUM_32 = 0x30;
const E_SHSTRNDX_32 = 0x32;
const SH_NAME = 0;
const SH_OFFSET_32 = 16;
const SH_SIZE_32 = 20;
const SHDR_SIZE_32 = 40;
/** A section header table larger than this is not a real one. */
const MAX_SECTIONS = 4096;
const DEBUG_INFO = '.debug_info';
const MAX_SECTION_NAME = 64;
// The first DWARF compilation unit header (DWARF 2-5, section 7.5.1).
const DWARF64_ESCAPE = 0xffffffff;
const DWARF_VERSION_5 = 5;
const X86_64_ADDRESS_SIZE = 8;

/** The layout the image's gdb will use; undefined when the image does not tell. */
export function layoutForImage(image: Uint8Array | undefined): LayoutName | undefined {
  if (!image || image.length <= EI_DATA || ELF_MAGIC.some((byte, i) => image[i] !== byte)) return undefined;
  if (image[EI_CLASS] === ELFCLASS64) return 'x86-64';
  if (image[EI_CLASS] !== ELFCLASS32) return undefined;
  return image[EI_DATA] === ELFDATA2LSB && debugAddressSize(image) === X86_64_ADDRESS_SIZE ? 'x86-64' : 'i386';
}

/** The address size of an ELF32's first DWARF compilation unit; undefined without one (or when malformed). */
function debugAddressSize(image: Uint8Array): number | undefined {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const u16 = (at: number): number | undefined => (at + 2 <= image.length ? view.getUint16(at, true) : undefined);
  const u32 = (at: number): number | undefined => (at + 4 <= image.length ? view.getUint32(at, true) : undefined);
  const shoff = u32(E_SHOFF_32);
  const shentsize = u16(E_SHENTSIZE_32);
  const shnum = u16(E_SHNUM_32);
  const shstrndx = u16(E_SHSTRNDX_32);
  if (!shoff || shentsize !== SHDR_SIZE_32 || !shnum || shnum > MAX_SECTIONS || shstrndx === undefined || shstrndx >= shnum)
    return undefined;
  const header = (n: number): number => shoff + n * SHDR_SIZE_32;
  const names = u32(header(shstrndx) + SH_OFFSET_32);
  if (names === undefined) return undefined;
  for (let n = 0; n < shnum; n++) {
    const nameAt = u32(header(n) + SH_NAME);
    if (nameAt === undefined || sectionName(image, names + nameAt) !== DEBUG_INFO) continue;
    const offset = u32(header(n) + SH_OFFSET_32);
    const size = u32(header(n) + SH_SIZE_32);
    if (offset === undefined || size === undefined || offset + size > image.length) return undefined;
    return compileUnitAddressSize(image.subarray(offset, offset + size));
  }
  return undefined;
}

function sectionName(image: Uint8Array, at: number): string | undefined {
  const end = image.indexOf(0, at);
  if (at >= image.length || end < 0 || end - at > MAX_SECTION_NAME) return undefined;
  return new TextDecoder('latin1').decode(image.subarray(at, end));
}

/** unit_length, version, then (DWARF 5) unit_type and address_size, or (2-4) debug_abbrev_offset and address_size. */
function compileUnitAddressSize(info: Uint8Array): number | undefined {
  const view = new DataView(info.buffer, info.byteOffset, info.byteLength);
  if (info.length < 4) return undefined;
  const dwarf64 = view.getUint32(0, true) === DWARF64_ESCAPE;
  const lengthSize = dwarf64 ? 12 : 4;
  const offsetSize = dwarf64 ? 8 : 4;
  if (info.length < lengthSize + 2) return undefined;
  const version = view.getUint16(lengthSize, true);
  const at = version >= DWARF_VERSION_5 ? lengthSize + 2 + 1 : lengthSize + 2 + offsetSize;
  return info[at];
}
