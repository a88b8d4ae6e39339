/**
 * Handing an I/O or MMIO exit to the device that owns the address: the same code whether the
 * board lives in the vCPU's own thread (one vCPU) or in a board thread shared by several.
 */
import type { PioSize } from '../devices/device.js';
import type { VcpuExit } from '../kvm/run.js';
import type { Board, BoardStop } from './board.js';

/** What the exit loop needs from the devices, wherever they live. */
export interface ExitDevices {
  /** Performs a port access; returns the name of the device that took it (undefined: unassigned). */
  io(exit: Extract<VcpuExit, { kind: 'io' }>, data: DataView): string | undefined;
  /** Performs an MMIO access on `bytes` (the access's data); returns the device's name. */
  mmio(exit: Extract<VcpuExit, { kind: 'mmio' }>, bytes: Uint8Array): string | undefined;
  /** Set once a device has ended the run (debug-exit, reset). */
  readonly stop: BoardStop | undefined;
}

/** The board in this thread. */
export function localDevices(board: Board): ExitDevices {
  return {
    io: (exit, data) => handleIo(exit, data, board),
    mmio: (exit, bytes) => handleMmio(exit, bytes, board),
    get stop() {
      return board.stop;
    },
  };
}

/** What an unassigned port or MMIO address reads as: all ones, as on an ISA bus with no driver. */
const ALL_ONES_BYTE = 0xff;

/**
 * A port access: `count` > 1 is string I/O (rep ins/outs), each element `size` bytes. Returns
 * the name of the device that took it (undefined: unassigned).
 */
export function handleIo(exit: Extract<VcpuExit, { kind: 'io' }>, data: DataView, board: Board): string | undefined {
  const { size, port, count, dataOffset } = exit;
  const slot = board.pio.find(port);
  for (let i = 0, at = dataOffset; i < count; i++, at += size) {
    if (exit.direction === 'out') {
      slot?.device.pioWrite(port - slot.base, size, readLe(data, at, size));
    } else {
      writeLe(data, at, size, slot ? slot.device.pioRead(port - slot.base, size) : ALL_ONES[size]);
    }
  }
  return slot?.name;
}

export function handleMmio(exit: Extract<VcpuExit, { kind: 'mmio' }>, bytes: Uint8Array, board: Board): string | undefined {
  const slot = board.mmio.find(exit.physAddr);
  if (exit.isWrite) slot?.device.mmioWrite(exit.physAddr - slot.base, bytes);
  else if (slot) slot.device.mmioRead(exit.physAddr - slot.base, bytes);
  else bytes.fill(ALL_ONES_BYTE);
  return slot?.name;
}

const ALL_ONES: Readonly<Record<PioSize, number>> = { 1: 0xff, 2: 0xffff, 4: 0xffffffff };

function readLe(view: DataView, at: number, size: PioSize): number {
  return size === 1 ? view.getUint8(at) : size === 2 ? view.getUint16(at, true) : view.getUint32(at, true);
}

function writeLe(view: DataView, at: number, size: PioSize, value: number): void {
  if (size === 1) view.setUint8(at, value & 0xff);
  else if (size === 2) view.setUint16(at, value & 0xffff, true);
  else view.setUint32(at, value >>> 0, true);
}

