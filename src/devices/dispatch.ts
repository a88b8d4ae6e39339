/**
 * Handing an I/O or MMIO exit to the device that owns the address (kvmtool's kvm__emulate_io):
 * the same code whether the devices live in the vCPU's own thread (one vCPU) or in a board
 * thread shared by several.
 */
import { PIO_ADDRESS_SPACE_SIZE, type MmioBus, type PioBus } from './bus.js';
import { isCpuPioDevice, MMIO_ALL_ONES_BYTE, PIO_ALL_ONES, type IoCpu, type MachineStop, type PioSize } from './device.js';

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
  /**
   * Performs a port access; returns the name of the device that took it (undefined: unassigned).
   * `cpu`: the vCPU's registers, for the device that needs them (vmport); fetched only if used.
   */
  io(access: IoAccess, cpu?: IoCpu): string | undefined;
  /** Performs an MMIO access; returns the device's name (undefined: unassigned). */
  mmio(access: MmioAccess): string | undefined;
  /** The host has new input for the devices (serial bytes): let them take it and raise their interrupts. */
  pollInput(): void;
  /** A timer device's deadline has come (a 'poll-timers' request): due interrupts are raised. */
  pollTimers(): void;
  /** Set once a device has ended the run (debug-exit, reset, poweroff). */
  readonly stop: MachineStop | undefined;
  /**
   * The ports no device decodes, one bit each (a PortMap, see unassignedPortMap): the exit loop
   * may let the native side take accesses to them without a return to JavaScript, with the same
   * effect as `io()` (the write dropped, all ones read). Absent: every access goes through `io()`.
   */
  readonly unassignedPorts?: Uint8Array;
  /**
   * The guest has put the machine to sleep (ACPI S3, suspend to RAM): the exit loop parks the
   * vCPU until a wake event (LoopHooks.suspend). Absent: sleep states are not modelled here.
   */
  readonly suspended?: boolean;
}

/**
 * A port access: `count` > 1 is string I/O (rep ins/outs), each element `size` bytes. Returns
 * the name of the device that took it (undefined: unassigned, which ignores writes and reads all ones).
 */
export function handleIo(access: IoAccess, pio: PioBus, cpu?: IoCpu): string | undefined {
  const { size, port, count, data } = access;
  const slot = pio.find(port);
  // A device that needs the vCPU's registers (vmport) gets them for a single (not string) access.
  if (cpu && slot && count === 1 && isCpuPioDevice(slot.device)) {
    if (access.direction === 'out') slot.device.pioWriteCpu(port - slot.base, size, readLe(data, 0, size), cpu);
    else writeLe(data, 0, size, slot.device.pioReadCpu(port - slot.base, size, cpu));
    return slot.name;
  }
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

/** A PortMap's size: one bit per port of the 64 Ki port space (native/kvm_shim.h's SHIM_PORT_MAP_BYTES). */
export const PORT_MAP_BYTES = PIO_ADDRESS_SPACE_SIZE / 8;

/**
 * The ports of `pio` that no device owns, as a bitmap (port p is bit p % 8 of byte p / 8). An
 * access is routed by its first port, as handleIo routes it, so a bit says what handleIo would
 * do with an access that starts there. `within`: only ports that map marks too (a copy is made).
 */
export function unassignedPortMap(pio: PioBus, within?: Uint8Array): Uint8Array {
  const map = within ? Uint8Array.from(within) : new Uint8Array(PORT_MAP_BYTES).fill(0xff);
  for (const { base, length } of pio.entries()) {
    const end = base + length;
    let port = base;
    for (; port < end && (port & 7) !== 0; port++) map[port >>> 3]! &= ~(1 << (port & 7));
    const wholeBytesEnd = end & ~7;
    if (port < wholeBytesEnd) map.fill(0, port >>> 3, wholeBytesEnd >>> 3);
    for (port = Math.max(port, wholeBytesEnd); port < end; port++) map[port >>> 3]! &= ~(1 << (port & 7));
  }
  return map;
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
