/**
 * Little-endian reads and writes of guest RAM for the BIOS services (the BDA, buffers a call
 * points at), tolerant of addresses past the end of RAM: reads give all ones, writes vanish,
 * as an unassigned bus would do.
 */
import { BDA, linear } from './layout.js';

const BYTE = 0xff;

export class GuestRam {
  constructor(readonly bytes: Uint8Array) {}

  u8(address: number): number {
    return this.bytes[address] ?? BYTE;
  }

  setU8(address: number, value: number): void {
    if (address >= 0 && address < this.bytes.length) this.bytes[address] = value & BYTE;
  }

  u16(address: number): number {
    return this.u8(address) | (this.u8(address + 1) << 8);
  }

  setU16(address: number, value: number): void {
    this.setU8(address, value);
    this.setU8(address + 1, value >>> 8);
  }

  u32(address: number): number {
    return (this.u16(address) | (this.u16(address + 2) << 16)) >>> 0;
  }

  setU32(address: number, value: number): void {
    this.setU16(address, value & 0xffff);
    this.setU16(address + 2, value >>> 16);
  }

  /** `length` bytes from `address` (clipped to RAM; missing bytes read as all ones). */
  read(address: number, length: number): Uint8Array {
    const out = new Uint8Array(length).fill(BYTE);
    const end = Math.min(address + length, this.bytes.length);
    if (address < end) out.set(this.bytes.subarray(address, end));
    return out;
  }

  /** Writes `data` at `address`, dropping what falls past the end of RAM. */
  write(address: number, data: Uint8Array): void {
    const room = Math.max(0, Math.min(data.length, this.bytes.length - address));
    if (room > 0) this.bytes.set(data.subarray(0, room), address);
  }

  // The BIOS data area, by offset from 0x400.
  bda8(offset: number): number {
    return this.u8(BDA + offset);
  }

  setBda8(offset: number, value: number): void {
    this.setU8(BDA + offset, value);
  }

  bda16(offset: number): number {
    return this.u16(BDA + offset);
  }

  setBda16(offset: number, value: number): void {
    this.setU16(BDA + offset, value);
  }

  bda32(offset: number): number {
    return this.u32(BDA + offset);
  }

  setBda32(offset: number, value: number): void {
    this.setU32(BDA + offset, value);
  }

  /** A real-mode far pointer (offset, segment) stored at `address`, as a linear address. */
  farPointer(address: number): number {
    return linear(this.u16(address + 2), this.u16(address));
  }
}
