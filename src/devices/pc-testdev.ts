/**
 * QEMU's pc-testdev (`-device pc-testdev`, hw/misc/pc-testdev.c): the ISA test device that
 * kvm-unit-tests' x86 kernels talk to. Behaviour as QEMU defines its ports:
 *
 * - 0xE0-0xE3 (TESTDEV_IO_PORT): a 32-bit scratch register; an access of 1, 2 or 4 bytes at
 *   offset o reads or writes the bytes o..o+size-1 of it (the emulator test checks string and
 *   wide I/O through it).
 * - 0xE4-0xE7: "flush page": a 4-byte write of a guest-physical address makes QEMU mprotect the
 *   page away and back, so KVM's shadow mappings of it are dropped. tskvm maps guest RAM in one
 *   slot it never changes; the host (`flushPage`) decides what to do, by default nothing.
 * - 0xE8-0xEB: the same scratch register, byte-wise (QEMU splits every access into bytes).
 * - 0x2000-0x2017: IRQ lines 0-23: a write of byte v to 0x2000 + n sets line n's level to
 *   v != 0 (the ioapic and apic tests drive GSIs with it); wider writes are split into bytes.
 * - MMIO 0xFF000000-0xFF00FFFF: 64 KiB of scratch memory (`PcTestdevIomem`).
 *
 * Each of the three saves its state for snapshots: the scratch register, the lines' levels (the
 * restored device drives the high ones again), the iomem bytes (base64).
 */
import type { MmioDevice, PioDevice, PioSize, Snapshottable } from './device.js';
import { arrayField, boolField, bytesField, refuseState, stateFields } from './state-check.js';

export const PC_TESTDEV_IOPORT = 0xe0;
export const PC_TESTDEV_IOPORT_SIZE = 4;
export const PC_TESTDEV_FLUSH_PORT = 0xe4;
export const PC_TESTDEV_FLUSH_SIZE = 4;
export const PC_TESTDEV_IOPORT_BYTE = 0xe8;
export const PC_TESTDEV_IOPORT_BYTE_SIZE = 4;
/** The whole 0xE0-0xEB block, one device. */
export const PC_TESTDEV_PORTS_SIZE = PC_TESTDEV_IOPORT_BYTE + PC_TESTDEV_IOPORT_BYTE_SIZE - PC_TESTDEV_IOPORT;
export const PC_TESTDEV_IRQ_PORT = 0x2000;
export const PC_TESTDEV_IRQ_LINES = 24;
export const PC_TESTDEV_IOMEM_ADDRESS = 0xff000000;
export const PC_TESTDEV_IOMEM_SIZE = 0x10000;

const BYTE_BITS = 8;
const BYTE_MASK = 0xff;
const DWORD_BYTES = 4;
const PAGE_MASK = 0xfff;
const FLUSH_ACCESS_SIZE = 4;

export interface PcTestdevHost {
  /** Sets ISA/GSI line `line` (0-23) high or low. */
  setIrqLine(line: number, level: boolean): void;
  /** A guest asked for the page at `pageAddress` to be dropped from KVM's mappings. */
  flushPage?(pageAddress: number): void;
}

export interface PcTestdevPortsState {
  /** The scratch register's four bytes, little-endian. */
  data: number[];
}

export interface PcTestdevIrqLinesState {
  levels: boolean[];
}

export interface PcTestdevIomemState {
  /** The 64 KiB, base64. */
  data: string;
}

/** The port block 0xE0-0xEB: register at PC_TESTDEV_IOPORT with length PC_TESTDEV_PORTS_SIZE. */
export class PcTestdevPorts implements PioDevice, Snapshottable<PcTestdevPortsState> {
  /** The 32-bit scratch register, as four bytes (little-endian, as QEMU keeps it). */
  private readonly data = new Uint8Array(DWORD_BYTES);

  constructor(private readonly host: PcTestdevHost) {}

  pioRead(offset: number, size: PioSize): number {
    if (isFlushOffset(offset)) return 0; // write-only: QEMU's flush region has no read handler
    let value = 0;
    for (let i = 0; i < size; i++) value |= this.byteAt(offset + i) << (i * BYTE_BITS);
    return value >>> 0;
  }

  pioWrite(offset: number, size: PioSize, value: number): void {
    if (isFlushOffset(offset)) {
      if (size === FLUSH_ACCESS_SIZE) this.host.flushPage?.((value & ~PAGE_MASK) >>> 0);
      return;
    }
    for (let i = 0; i < size; i++) this.setByteAt(offset + i, (value >>> (i * BYTE_BITS)) & BYTE_MASK);
  }

  state(): PcTestdevPortsState {
    return { data: Array.from(this.data) };
  }

  restore(state: PcTestdevPortsState): void {
    this.data.set(bytesField('pc-testdev', stateFields('pc-testdev', state), 'data', DWORD_BYTES));
  }

  /** Both windows (0xE0 and 0xE8) show the same register; bytes past its end (an access crossing it) read 0, writes drop. */
  private byteAt(offset: number): number {
    const at = registerByte(offset);
    return at < DWORD_BYTES ? this.data[at]! : 0;
  }

  private setByteAt(offset: number, byte: number): void {
    const at = registerByte(offset);
    if (at < DWORD_BYTES) this.data[at] = byte;
  }
}

const FLUSH_OFFSET = PC_TESTDEV_FLUSH_PORT - PC_TESTDEV_IOPORT;
const BYTE_WINDOW_OFFSET = PC_TESTDEV_IOPORT_BYTE - PC_TESTDEV_IOPORT;
const isFlushOffset = (offset: number): boolean => offset >= FLUSH_OFFSET && offset < BYTE_WINDOW_OFFSET;
/** The scratch register's byte an offset in the block names (4 and up: past the register). */
const registerByte = (offset: number): number => (offset >= BYTE_WINDOW_OFFSET ? offset - BYTE_WINDOW_OFFSET : offset);

/** 0x2000-0x2017: one byte per IRQ line. */
export class PcTestdevIrqLines implements PioDevice, Snapshottable<PcTestdevIrqLinesState> {
  /** Each line's level as the guest last set it. */
  private readonly levels: boolean[] = new Array<boolean>(PC_TESTDEV_IRQ_LINES).fill(false);

  constructor(private readonly host: PcTestdevHost) {}

  state(): PcTestdevIrqLinesState {
    return { levels: [...this.levels] };
  }

  /** Takes saved levels and drives each line that changes (a fresh board's lines are low). */
  restore(state: PcTestdevIrqLinesState): void {
    const device = 'pc-testdev IRQ lines';
    const levels = arrayField(device, stateFields(device, state), 'levels', PC_TESTDEV_IRQ_LINES, (v, i) =>
      boolField(device, { [`levels[${i}]`]: v }, `levels[${i}]`),
    );
    levels.forEach((level, line) => {
      if (this.levels[line] !== level) this.setLine(line, level);
    });
  }

  /** Every write reaches the line, as QEMU's qemu_set_irq per write (the irqchip ignores a level it already has). */
  private setLine(line: number, level: boolean): void {
    this.levels[line] = level;
    this.host.setIrqLine(line, level);
  }

  pioRead(_offset: number, _size: PioSize): number {
    return 0; // write-only, as in QEMU
  }

  pioWrite(offset: number, size: PioSize, value: number): void {
    // QEMU's region takes bytes only (valid.max_access_size = 1), so its memory core splits a wider
    // access into byte writes to consecutive lines: realmode.flat's `outl %eax, $0x200b` sets IRQ 11
    // from the low byte and lines 12-14 from the others.
    for (let i = 0; i < size && offset + i < PC_TESTDEV_IRQ_LINES; i++) {
      this.setLine(offset + i, ((value >>> (i * BYTE_BITS)) & BYTE_MASK) !== 0);
    }
  }
}

/** 0xFF000000: 64 KiB the guest can read back. */
export class PcTestdevIomem implements MmioDevice, Snapshottable<PcTestdevIomemState> {
  /** Allocated on the first write (or restore): every board has one, few guests ever touch it, and until then it reads zero. */
  private written: Uint8Array | undefined;

  private get buffer(): Uint8Array {
    this.written ??= new Uint8Array(PC_TESTDEV_IOMEM_SIZE);
    return this.written;
  }

  mmioRead(offset: number, data: Uint8Array): void {
    const buffer = this.written;
    for (let i = 0; i < data.length; i++) data[i] = buffer?.[offset + i] ?? 0;
  }

  mmioWrite(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length && offset + i < PC_TESTDEV_IOMEM_SIZE; i++) this.buffer[offset + i] = data[i]!;
  }

  state(): PcTestdevIomemState {
    return { data: Buffer.from(this.written ?? new Uint8Array(PC_TESTDEV_IOMEM_SIZE)).toString('base64') };
  }

  restore(state: PcTestdevIomemState): void {
    const device = 'pc-testdev iomem';
    const { data } = stateFields(device, state);
    const bytes = typeof data === 'string' && BASE64.test(data) ? Buffer.from(data, 'base64') : undefined;
    if (bytes?.length !== PC_TESTDEV_IOMEM_SIZE) refuseState(device, `data must be ${PC_TESTDEV_IOMEM_SIZE} bytes in base64`);
    this.buffer.set(bytes);
  }
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
