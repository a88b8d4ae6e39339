/**
 * The board's device state, for snapshots: every device that can save its state (Snapshottable:
 * `state()`/`restore()`) under the name the board knows it by — the COM ports as COM1–COM4, the
 * rest by their bus names. Built in the thread that owns the board (a vCPU's, or the board
 * thread), as plain JSON-able data. Devices without the pair are listed, so a snapshot can say
 * what it could not keep.
 */
import type { BusSlot } from '../devices/bus.js';
import type { Snapshottable } from '../devices/device.js';

/** What of a board (pc-board.ts's Board) its state is read from. */
export interface StatefulBoard {
  /** The UARTs, in `comPorts` order. */
  readonly serial: readonly unknown[];
  readonly pio: { entries(): readonly BusSlot<unknown>[] };
  readonly mmio: { entries(): readonly BusSlot<unknown>[] };
}

/** The board's COM ports (pc-board.ts's COM_PORTS): names and I/O bases. */
export type ComPortList = readonly { readonly name: string; readonly base: number }[];

/** Each device's state() by name, and the names of devices that have none to give. */
export interface BoardState {
  devices: Record<string, unknown>;
  /** Devices on the buses without state()/restore(): a restore builds them fresh. */
  unsaved: string[];
}

function isSnapshottable(device: unknown): device is Snapshottable<unknown> {
  const d = device as Partial<Snapshottable<unknown>> | null;
  return typeof d === 'object' && d !== null && typeof d.state === 'function' && typeof d.restore === 'function';
}

/** Every device of `board` and its state, keyed by name. */
function namedDevices(board: StatefulBoard, comPorts: ComPortList): Map<string, unknown> {
  const named = new Map<string, unknown>();
  // The UARTs by port name: on the bus a BIOS may have put a wrapper in front of one.
  comPorts.forEach((port, i) => named.set(port.name, board.serial[i]));
  const comBases = new Set<number>(comPorts.map((port) => port.base));
  const slots = [...board.pio.entries().filter((slot) => !comBases.has(slot.base)), ...board.mmio.entries()];
  for (const slot of slots) if (!named.has(slot.name)) named.set(slot.name, slot.device);
  return named;
}

/** The state of every device that has one (call with the guest stopped). */
export function saveBoardState(board: StatefulBoard, comPorts: ComPortList): BoardState {
  const devices: Record<string, unknown> = {};
  const unsaved: string[] = [];
  for (const [name, device] of namedDevices(board, comPorts)) {
    if (isSnapshottable(device)) devices[name] = device.state();
    else unsaved.push(name);
  }
  return { devices, unsaved };
}

/**
 * Puts saved state back into a freshly built board: each saved device by name. A device the
 * state names that this board lacks, or a state a device refuses, is an error (the snapshot was
 * made by a differently built board); devices the state does not name stay as built.
 */
export function restoreBoardState(board: StatefulBoard, comPorts: ComPortList, state: BoardState): void {
  const named = namedDevices(board, comPorts);
  for (const [name, saved] of Object.entries(state.devices)) {
    const device = named.get(name);
    if (!isSnapshottable(device))
      throw new RangeError(`the saved state has a device "${name}" that this board has no snapshottable device for`);
    try {
      device.restore(saved);
    } catch (err) {
      throw new RangeError(`the saved state of "${name}" is not one it can take: ${(err as Error).message}`, { cause: err });
    }
  }
}
