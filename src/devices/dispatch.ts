/**
 * Handing an I/O or MMIO exit to the device that owns the address (kvmtool's kvm__emulate_io):
 * the same code whether the devices live in the vCPU's own thread (one vCPU) or in a board
 * thread shared by several.
 */
import type { MmioBus, PioBus } from './bus.js';
import { MMIO_ALL_ONES_BYTE, PIO_ALL_ONES, type MachineStop, type PioSize } from './device.js';

/** A port access, self-contained: `data` holds size × count bytes (see VcpuExit 'io'). */
export interface IoAccess {
  readonly direction: 'in' | 'out';
  readonly size: PioSize;
  readonly port: number;
  readonly count: number;
  readonly data: Uint8Array;
}

/** An MMIO access: `data` is the access's bytes. */
export interface MmioAccess {
  readonly physAddr: number;
  readonly isWrite: boolean;
  readonly data: Uint8Array;
}

/** What the exit loop needs from the devices, wherever they live. */
export interface ExitDevices {
  /** Performs a port access; returns the name of the device that took it (undefined: unassigned). */
  io(access: IoAccess): string | undefined;
  /** Performs an MMIO access; returns the device's name (undefined: unassigned). */
  mmio(access: MmioAccess): string | undefined;
  /** The host has new input for the devices (serial bytes): let them take it and raise their interrupts. */
  pollInput(): void;
  /** Set once a device has ended the run (debug-exit, reset). */
  readonly stop: MachineStop | undefined;
}

/**
 * A port access: `count` > 1 is string I/O (rep ins/outs), each element `size` bytes. Returns
 * the name of the device that took it (undefined: unassigned, which ignores writes and reads all ones).
 */
export function handleIo(access: IoAccess, pio: PioBus): string | undefined {
  const { size, port, count, data } = access;
  const slot = pio.find(port);
  const elements = Math.min(count, Math.floor(data.length / size));
  for (let i = 0, at = 0; i < elements; i++, at += size) {
    if (access.direction === 'out') slot?.device.pioWrite(port - slot.base, size, readLe(data, at, size));
    else writeLe(data, at, size, slot ? slot.device.pioRead(port - slot.base, size) : PIO_ALL_ONES[size]);
  }
  return slot?.name;
}

export function handleMmio(access: MmioAccess, mmio: MmioBus): string | undefined {
  const slot = mmio.find(access.physAddr);
  if (access.isWrite) slot?.device.mmioWrite(access.physAddr - slot.base, access.data);
  else if (slot) slot.device.mmioRead(access.physAddr - slot.base, access.data);
  else access.data.fill(MMIO_ALL_ONES_BYTE);
  return slot?.name;
}

function readLe(bytes: Uint8Array, at: number, size: PioSize): number {
  if (size === 1) return bytes[at]!;
  if (size === 2) return bytes[at]! | (bytes[at + 1]! << 8);
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
}

function writeLe(bytes: Uint8Array, at: number, size: PioSize, value: number): void {
  bytes[at] = value & 0xff;
  if (size === 1) return;
  bytes[at + 1] = (value >>> 8) & 0xff;
  if (size === 2) return;
  bytes[at + 2] = (value >>> 16) & 0xff;
  bytes[at + 3] = (value >>> 24) & 0xff;
}
