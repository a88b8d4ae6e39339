/**
 * QEMU's firmware configuration device (fw_cfg), legacy I/O-port interface only, modelled on
 * QEMU's hw/nvram/fw_cfg.c, include/standard-headers/linux/qemu_fw_cfg.h and docs/specs/fw_cfg.rst.
 * It is how SeaBIOS, OVMF and Linux's qemu_fw_cfg driver learn the machine's RAM size, CPU count,
 * command line and memory map.
 *
 * Registered at FW_CFG_IO_BASE (0x510) with length FW_CFG_IO_SIZE (2):
 * - offset 0 (port 0x510, selector): a 16-bit write selects an item and rewinds its read offset.
 * - offset 1 (port 0x511, data): each 8-bit read returns the next byte of the selected item; past
 *   the end (or with an unknown key selected) reads return 0.
 *
 * Where we follow QEMU's x86 port region ("fw_cfg_comb_mem_ops"):
 * - Reads at either offset read data (QEMU's combined region has one read handler), so `inb 0x510`
 *   also consumes a byte.
 * - Writes to the data port are ignored: QEMU removed fw_cfg write support in v2.4.
 * - The selector's FW_CFG_WRITE_CHANNEL bit is ignored for reads, as QEMU masks it off.
 * - Items and the file directory: little-endian integers in the numbered items, big-endian in the
 *   file directory; files sorted by name (QEMU's non-legacy order) at FW_CFG_FILE_FIRST upwards.
 *
 * Where we differ, on purpose:
 * - An 8-bit write to the selector selects the key in its low byte (QEMU treats it as a data write
 *   and drops it). A 4-byte write selects the key in its low 16 bits (QEMU drops it).
 * - A 2- or 4-byte read returns that many consecutive bytes, first byte in the low bits, so that
 *   storing the value (x86 is little-endian) preserves the item's byte order, as QEMU's
 *   "string-preserving" wide data reads do. QEMU's x86 port itself only accepts 1-byte reads.
 * - No DMA interface: FW_CFG_ID does not advertise FW_CFG_VERSION_DMA and there is no port 0x514,
 *   so firmware falls back to byte-at-a-time reads. Neither is there FW_CFG_KERNEL_* / INITRD_* /
 *   SETUP_* (tskvm loads kernels itself) nor any arch-local (0x8000+) item.
 */
import { checkInteger } from '../check.js';
import type { PioDevice, PioSize, Snapshottable } from './device.js';

// Ports (QEMU hw/i386/fw_cfg.h FW_CFG_IO_BASE; docs/specs/fw_cfg.rst "Selector/Data register").
export const FW_CFG_PORT_SEL = 0x510;
export const FW_CFG_PORT_DATA = 0x511;
/** QEMU's DMA address register on x86 (8 bytes, big-endian). Not modelled: nothing decodes it. */
export const FW_CFG_PORT_DMA = 0x514;
/** Register the device at FW_CFG_IO_BASE with length FW_CFG_IO_SIZE: selector + data. */
export const FW_CFG_IO_BASE = FW_CFG_PORT_SEL;
export const FW_CFG_IO_SIZE = 2;
const SELECTOR_OFFSET = FW_CFG_PORT_SEL - FW_CFG_IO_BASE;

// Selector keys for the well-known items (qemu_fw_cfg.h).
export const FW_CFG_SIGNATURE = 0x00;
export const FW_CFG_ID = 0x01;
export const FW_CFG_UUID = 0x02;
export const FW_CFG_RAM_SIZE = 0x03;
export const FW_CFG_NOGRAPHIC = 0x04;
export const FW_CFG_NB_CPUS = 0x05;
export const FW_CFG_MACHINE_ID = 0x06;
export const FW_CFG_KERNEL_ADDR = 0x07;
export const FW_CFG_KERNEL_SIZE = 0x08;
export const FW_CFG_KERNEL_CMDLINE = 0x09;
export const FW_CFG_INITRD_ADDR = 0x0a;
export const FW_CFG_INITRD_SIZE = 0x0b;
export const FW_CFG_BOOT_DEVICE = 0x0c;
export const FW_CFG_NUMA = 0x0d;
export const FW_CFG_BOOT_MENU = 0x0e;
export const FW_CFG_MAX_CPUS = 0x0f;
export const FW_CFG_KERNEL_ENTRY = 0x10;
export const FW_CFG_KERNEL_DATA = 0x11;
export const FW_CFG_INITRD_DATA = 0x12;
export const FW_CFG_CMDLINE_ADDR = 0x13;
export const FW_CFG_CMDLINE_SIZE = 0x14;
export const FW_CFG_CMDLINE_DATA = 0x15;
export const FW_CFG_SETUP_ADDR = 0x16;
export const FW_CFG_SETUP_SIZE = 0x17;
export const FW_CFG_SETUP_DATA = 0x18;
export const FW_CFG_FILE_DIR = 0x19;
/** Named files live at FW_CFG_FILE_FIRST, FW_CFG_FILE_FIRST + 1, ... in directory order. */
export const FW_CFG_FILE_FIRST = 0x20;
/** Selector bit for writes through the data port (obsolete; ignored when reading). */
export const FW_CFG_WRITE_CHANNEL = 0x4000;
/** Selector bit for architecture-specific items (none here). */
export const FW_CFG_ARCH_LOCAL = 0x8000;
/** Keys are 16 bits wide. */
export const FW_CFG_KEY_MASK = 0xffff;

/** FW_CFG_SIGNATURE's contents. */
export const FW_CFG_SIGNATURE_TEXT = 'QEMU';
// FW_CFG_ID feature bits.
export const FW_CFG_VERSION = 0x01; // the traditional selector/data interface
export const FW_CFG_VERSION_DMA = 0x02; // the DMA interface (not implemented, never set)

// File directory layout (struct fw_cfg_files / struct fw_cfg_file, all big-endian).
export const FW_CFG_DIR_COUNT_SIZE = 4; // u32 count
export const FW_CFG_FILE_SIZE_OFFSET = 0; // u32 size
export const FW_CFG_FILE_SELECT_OFFSET = 4; // u16 select
export const FW_CFG_FILE_RESERVED_OFFSET = 6; // u16 reserved
export const FW_CFG_FILE_NAME_OFFSET = 8; // char name[FW_CFG_MAX_FILE_PATH]
export const FW_CFG_MAX_FILE_PATH = 56; // including the terminating NUL
export const FW_CFG_FILE_ENTRY_SIZE = FW_CFG_FILE_NAME_OFFSET + FW_CFG_MAX_FILE_PATH; // 64

/** The memory map file SeaBIOS and OVMF read (QEMU hw/i386/e820_memory_layout.c). */
export const FW_CFG_E820_FILE = 'etc/e820';
// struct e820_entry { u64 address; u64 length; u32 type; } packed, little-endian.
export const E820_ENTRY_ADDRESS_OFFSET = 0;
export const E820_ENTRY_LENGTH_OFFSET = 8;
export const E820_ENTRY_TYPE_OFFSET = 16;
export const E820_ENTRY_SIZE = 20;

const UUID_SIZE = 16;
const U16_SIZE = 2;
const U32_SIZE = 4;
const U64_SIZE = 8;
const BYTE_BITS = 8;
const BYTE_MASK = 0xff;
/** FW_CFG_NOGRAPHIC: tskvm has no display, as with QEMU's -nographic. */
const NOGRAPHIC = 1;

/** One memory-map range, as in BIOS E820 (`type` 1 = usable RAM, 2 = reserved, ...). */
export interface FwCfgE820Entry {
  base: number;
  length: number;
  type: number;
}

/** What the machine tells its firmware. */
export interface FwCfgConfig {
  /** Guest RAM in bytes (FW_CFG_RAM_SIZE). */
  ramSize: number;
  /** vCPUs present at boot (FW_CFG_NB_CPUS). */
  cpus: number;
  /** Most vCPUs the machine could have (FW_CFG_MAX_CPUS); defaults to `cpus`. */
  maxCpus?: number;
  /** Kernel command line (FW_CFG_CMDLINE_SIZE/DATA), UTF-8, without the NUL. */
  cmdline?: string;
  /** Memory map, published as the file "etc/e820". */
  e820?: readonly FwCfgE820Entry[];
  /** Extra named files, published in the file directory. */
  files?: Readonly<Record<string, Uint8Array>>;
}

/**
 * What the guest can observe of fw_cfg beyond its items: the selected key and how far into the
 * item it has read. The items come from the machine's configuration, which a snapshot keeps.
 */
export interface FwCfgState {
  selector: number;
  offset: number;
}

export class FwCfg implements PioDevice, Snapshottable<FwCfgState> {
  private readonly items = new Map<number, Uint8Array>();
  private key: number = FW_CFG_SIGNATURE;
  private current: Uint8Array | undefined;
  private offset = 0;

  constructor(config: FwCfgConfig) {
    const maxCpus = config.maxCpus ?? config.cpus;
    checkInteger('fw_cfg ramSize', config.ramSize, 0, Number.MAX_SAFE_INTEGER);
    checkInteger('fw_cfg cpus', config.cpus, 1, 0xffff);
    checkInteger('fw_cfg maxCpus', maxCpus, config.cpus, 0xffff);

    this.items.set(FW_CFG_SIGNATURE, new TextEncoder().encode(FW_CFG_SIGNATURE_TEXT));
    this.items.set(FW_CFG_ID, le(U32_SIZE, FW_CFG_VERSION));
    this.items.set(FW_CFG_UUID, new Uint8Array(UUID_SIZE));
    this.items.set(FW_CFG_RAM_SIZE, le(U64_SIZE, config.ramSize));
    this.items.set(FW_CFG_NOGRAPHIC, le(U16_SIZE, NOGRAPHIC));
    this.items.set(FW_CFG_NB_CPUS, le(U16_SIZE, config.cpus));
    this.items.set(FW_CFG_MAX_CPUS, le(U16_SIZE, maxCpus));

    // As QEMU's x86_load_linux: the size counts the NUL, and the data carries it.
    const cmdline = config.cmdline === undefined ? undefined : cString(config.cmdline);
    this.items.set(FW_CFG_CMDLINE_SIZE, le(U32_SIZE, cmdline?.length ?? 0));
    this.items.set(FW_CFG_CMDLINE_DATA, cmdline ?? new Uint8Array(0));

    const files = new Map<string, Uint8Array>();
    if (config.e820 !== undefined) files.set(FW_CFG_E820_FILE, encodeE820(config.e820));
    for (const [name, data] of Object.entries(config.files ?? {})) {
      if (files.has(name)) throw new RangeError(`fw_cfg file "${name}" is given twice`);
      files.set(name, data.slice()); // a snapshot: the guest sees what was passed at build time
    }
    this.items.set(FW_CFG_FILE_DIR, this.addFiles(files));
    this.reset();
  }

  /** The key currently selected. */
  get selector(): number {
    return this.key;
  }

  /** Device reset, as QEMU's fw_cfg_reset: the signature is selected, offset 0. */
  reset(): void {
    this.select(FW_CFG_SIGNATURE);
  }

  state(): FwCfgState {
    return { selector: this.key, offset: this.offset };
  }

  /** Selects the saved key and moves to the saved read offset; a RangeError if the offset is not within the item. */
  restore(state: FwCfgState): void {
    const { selector, offset } = state;
    if (!Number.isInteger(selector) || selector < 0 || selector > FW_CFG_KEY_MASK)
      throw new RangeError(`fw_cfg state: selector ${String(selector)} is not a 16-bit key`);
    const length = this.items.get(selector & ~FW_CFG_WRITE_CHANNEL)?.length ?? 0;
    if (!Number.isInteger(offset) || offset < 0 || offset > length)
      throw new RangeError(`fw_cfg state: offset ${String(offset)} is outside item 0x${selector.toString(16)} (${length} bytes)`);
    this.select(selector);
    this.offset = offset;
  }

  /** An item's bytes (a copy), or undefined for a key with no item. For the machine and tests. */
  item(key: number): Uint8Array | undefined {
    return this.items.get(key & ~FW_CFG_WRITE_CHANNEL)?.slice();
  }

  pioRead(_offset: number, size: PioSize): number {
    let value = 0;
    for (let i = 0; i < size; i++) value += this.readByte() * 2 ** (BYTE_BITS * i);
    return value;
  }

  pioWrite(offset: number, size: PioSize, value: number): void {
    if (offset !== SELECTOR_OFFSET) return; // data-port writes: ignored, as in QEMU since v2.4
    this.select(size === 1 ? value & BYTE_MASK : value & FW_CFG_KEY_MASK);
  }

  // --- internals ------------------------------------------------------------------------------

  private select(key: number): void {
    this.key = key;
    this.current = this.items.get(key & ~FW_CFG_WRITE_CHANNEL);
    this.offset = 0;
  }

  private readByte(): number {
    const item = this.current;
    if (item === undefined || this.offset >= item.length) return 0;
    return item[this.offset++] as number;
  }

  /** Gives each file a key from FW_CFG_FILE_FIRST in name order; returns the directory item. */
  private addFiles(files: Map<string, Uint8Array>): Uint8Array {
    const entries = [...files].map(([name, data]) => ({ name, bytes: cString(name), data }));
    for (const { name, bytes } of entries) {
      if (bytes.length > FW_CFG_MAX_FILE_PATH) {
        throw new RangeError(`fw_cfg file name "${name}" is too long: at most ${FW_CFG_MAX_FILE_PATH - 1} bytes`);
      }
    }
    if (FW_CFG_FILE_FIRST + entries.length > FW_CFG_WRITE_CHANNEL) {
      throw new RangeError(`too many fw_cfg files: ${entries.length}`);
    }
    entries.sort((a, b) => compareBytes(a.bytes, b.bytes)); // QEMU sorts with strcmp

    const dir = new Uint8Array(FW_CFG_DIR_COUNT_SIZE + entries.length * FW_CFG_FILE_ENTRY_SIZE);
    const view = new DataView(dir.buffer);
    view.setUint32(0, entries.length); // big-endian, as is everything in the directory
    entries.forEach(({ bytes, data }, index) => {
      const key = FW_CFG_FILE_FIRST + index;
      const at = FW_CFG_DIR_COUNT_SIZE + index * FW_CFG_FILE_ENTRY_SIZE;
      view.setUint32(at + FW_CFG_FILE_SIZE_OFFSET, data.length);
      view.setUint16(at + FW_CFG_FILE_SELECT_OFFSET, key);
      dir.set(bytes, at + FW_CFG_FILE_NAME_OFFSET); // NUL-padded: the rest is already 0
      this.items.set(key, data);
    });
    return dir;
  }
}

/** QEMU's struct e820_entry array: u64 address, u64 length, u32 type, little-endian, packed. */
export function encodeE820(entries: readonly FwCfgE820Entry[]): Uint8Array {
  const out = new Uint8Array(entries.length * E820_ENTRY_SIZE);
  const view = new DataView(out.buffer);
  entries.forEach((e, i) => {
    checkInteger('fw_cfg e820 base', e.base, 0, Number.MAX_SAFE_INTEGER);
    checkInteger('fw_cfg e820 length', e.length, 0, Number.MAX_SAFE_INTEGER);
    checkInteger('fw_cfg e820 type', e.type, 0, 0xffffffff);
    const at = i * E820_ENTRY_SIZE;
    view.setBigUint64(at + E820_ENTRY_ADDRESS_OFFSET, BigInt(e.base), true);
    view.setBigUint64(at + E820_ENTRY_LENGTH_OFFSET, BigInt(e.length), true);
    view.setUint32(at + E820_ENTRY_TYPE_OFFSET, e.type, true);
  });
  return out;
}

/** A little-endian unsigned integer of `size` bytes. */
function le(size: number, value: number): Uint8Array {
  const out = new Uint8Array(size);
  let rest = value;
  for (let i = 0; i < size; i++) {
    out[i] = rest % 2 ** BYTE_BITS;
    rest = Math.floor(rest / 2 ** BYTE_BITS);
  }
  return out;
}

/** UTF-8 bytes plus a terminating NUL. */
function cString(text: string): Uint8Array {
  const bytes = new TextEncoder().encode(text);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}
