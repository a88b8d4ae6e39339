/**
 * How several vCPU threads share one board: each vCPU has a mailbox (a SharedArrayBuffer) where
 * it leaves an I/O or MMIO access and sleeps (Atomics.wait) until the board thread has performed
 * it; a doorbell wakes the board thread. One board, one thread touching the devices: the device
 * models stay plain objects, and the serial rings keep one producer and one consumer.
 */
import type { PioBus } from '../devices/bus.js';
import type { MachineStop, PioSize } from '../devices/device.js';
import { handleIo, unassignedPortMap, type ExitDevices } from '../devices/dispatch.js';

// Mailbox header words (Int32).
const STATE = 0;
const KIND = 1;
const DIRECTION = 2;
const SIZE = 3; // I/O element size, or MMIO length
const PORT_OR_ADDRESS_LOW = 4;
const ADDRESS_HIGH = 5;
const COUNT = 6;
const DEVICE = 7; // index into the board's device names, or -1 (unassigned)
const STOP = 8; // a BoardStop the access caused
const STOP_CODE = 9;
const HEADER_BYTES = 64;
/** The most data one exit carries: a page of string I/O (KVM never hands over more). */
export const MAILBOX_DATA_BYTES = 4096;
const DATA_BYTES = MAILBOX_DATA_BYTES;

const STATE_IDLE = 0;
const STATE_REQUEST = 1;
const STATE_RESPONSE = 2;
const KIND_IO = 0;
const KIND_MMIO = 1;
const STOP_NONE = 0;
const STOP_DEBUG_EXIT = 1;
const STOP_RESET = 2;
const STOP_POWEROFF = 3;

// Doorbell words.
const RINGS = 0;
const QUIT = 1;
/** The host has new input for the devices (serial bytes): the board polls its UARTs. */
const INPUT = 2;
/** The main thread wants the devices' state (a snapshot, every vCPU paused). */
const SAVE = 3;
const DOORBELL_INT32S = 4;

const STOP_KINDS: Readonly<Record<MachineStop['reason'], number>> = {
  'debug-exit': STOP_DEBUG_EXIT,
  reset: STOP_RESET,
  poweroff: STOP_POWEROFF,
};

/** One vCPU's mailbox. */
export class DeviceMailbox {
  readonly words: Int32Array;
  readonly bytes: Uint8Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(HEADER_BYTES + DATA_BYTES)) {
    this.words = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.bytes = new Uint8Array(buffer);
  }

  get pending(): boolean {
    return Atomics.load(this.words, STATE) === STATE_REQUEST;
  }
}

export class Doorbell {
  readonly words: Int32Array;
  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(DOORBELL_INT32S * 4)) {
    this.words = new Int32Array(buffer);
  }

  /** Main thread: new host input is waiting; the board thread polls its devices' inputs. */
  input(): void {
    Atomics.store(this.words, INPUT, 1);
    this.ring();
  }

  /** Main thread: ask the board thread for its devices' state (it answers with a message). */
  save(): void {
    Atomics.store(this.words, SAVE, 1);
    this.ring();
  }

  /** Board thread: takes (and clears) a pending request for the devices' state. */
  takeSave(): boolean {
    return Atomics.exchange(this.words, SAVE, 0) !== 0;
  }

  /** Board thread: takes (and clears) a pending input notice. */
  takeInput(): boolean {
    return Atomics.exchange(this.words, INPUT, 0) !== 0;
  }

  ring(): void {
    Atomics.add(this.words, RINGS, 1);
    Atomics.notify(this.words, RINGS);
  }

  /** Board thread: sleeps until rung after `seen` (or `timeoutMs`). */
  wait(seen: number, timeoutMs: number): void {
    Atomics.wait(this.words, RINGS, seen, timeoutMs);
  }

  get rings(): number {
    return Atomics.load(this.words, RINGS);
  }

  quit(): void {
    Atomics.store(this.words, QUIT, 1);
    this.ring();
  }

  get quitting(): boolean {
    return Atomics.load(this.words, QUIT) !== 0;
  }
}

/**
 * The vCPU side: each access goes to the board thread and back, except those to `local`'s ports:
 * devices that need this vCPU's registers (vmport), performed here (createVcpuLocalBus).
 * `boardUnassigned`: the board's map of ports no device decodes (its buses are built before the
 * run), so that the exit loop need not ask the board thread about them.
 */
export function remoteDevices(
  mailbox: DeviceMailbox,
  doorbell: Doorbell,
  deviceNames: readonly string[],
  local?: PioBus,
  boardUnassigned?: Uint8Array,
): ExitDevices {
  let stop: MachineStop | undefined;
  const unassignedPorts = boardUnassigned && (local ? unassignedPortMap(local, boardUnassigned) : boardUnassigned);
  const { words, bytes } = mailbox;
  const call = (): string | undefined => {
    Atomics.store(words, STATE, STATE_REQUEST);
    doorbell.ring();
    while (Atomics.load(words, STATE) !== STATE_RESPONSE) Atomics.wait(words, STATE, STATE_REQUEST);
    Atomics.store(words, STATE, STATE_IDLE);
    const stopKind = words[STOP]!;
    if (stopKind === STOP_DEBUG_EXIT) stop ??= { reason: 'debug-exit', exitCode: words[STOP_CODE]! >>> 0 };
    else if (stopKind === STOP_RESET) stop ??= { reason: 'reset' };
    else if (stopKind === STOP_POWEROFF) stop ??= { reason: 'poweroff' };
    const device = words[DEVICE]!;
    return device < 0 ? undefined : deviceNames[device];
  };
  return {
    io(access, cpu) {
      if (local?.find(access.port)) return handleIo(access, local, cpu);
      const length = Math.min(access.data.length, DATA_BYTES);
      words[KIND] = KIND_IO;
      words[DIRECTION] = access.direction === 'out' ? 1 : 0;
      words[SIZE] = access.size;
      words[PORT_OR_ADDRESS_LOW] = access.port;
      words[COUNT] = Math.min(access.count, Math.floor(length / access.size));
      if (access.direction === 'out') bytes.set(access.data.subarray(0, length), HEADER_BYTES);
      const device = call();
      if (access.direction === 'in') access.data.set(bytes.subarray(HEADER_BYTES, HEADER_BYTES + length));
      return device;
    },
    mmio(access) {
      const length = Math.min(access.data.length, DATA_BYTES);
      words[KIND] = KIND_MMIO;
      words[DIRECTION] = access.isWrite ? 1 : 0;
      words[SIZE] = length;
      words[PORT_OR_ADDRESS_LOW] = access.physAddr % 2 ** 32;
      words[ADDRESS_HIGH] = Math.floor(access.physAddr / 2 ** 32);
      if (access.isWrite) bytes.set(access.data.subarray(0, length), HEADER_BYTES);
      const device = call();
      if (!access.isWrite) access.data.set(bytes.subarray(HEADER_BYTES, HEADER_BYTES + length));
      return device;
    },
    ...(unassignedPorts ? { unassignedPorts } : {}),
    // The board thread polls its devices' input and timers itself (the main thread rings its doorbell).
    pollInput() {},
    pollTimers() {},
    get stop() {
      return stop;
    },
  };
}

/**
 * The board thread's side: performs a pending access with `devices` (the board's local
 * dispatch) and answers. `deviceIndex` maps a device name to its index in the shared list.
 */
export function serveMailbox(mailbox: DeviceMailbox, devices: ExitDevices, deviceIndex: ReadonlyMap<string, number>): void {
  const { words, bytes } = mailbox;
  let name: string | undefined;
  const direction = words[DIRECTION] === 1;
  if (words[KIND] === KIND_IO) {
    const size = words[SIZE] as PioSize;
    const count = words[COUNT]!;
    const data = bytes.subarray(HEADER_BYTES, HEADER_BYTES + Math.min(size * count, DATA_BYTES));
    name = devices.io({ direction: direction ? 'out' : 'in', size, port: words[PORT_OR_ADDRESS_LOW]!, count, data });
  } else {
    const len = Math.min(words[SIZE]!, DATA_BYTES);
    const physAddr = (words[PORT_OR_ADDRESS_LOW]! >>> 0) + words[ADDRESS_HIGH]! * 2 ** 32;
    name = devices.mmio({ physAddr, isWrite: direction, data: bytes.subarray(HEADER_BYTES, HEADER_BYTES + len) });
  }
  words[DEVICE] = name === undefined ? -1 : (deviceIndex.get(name) ?? -1);
  const stop = devices.stop;
  words[STOP] = stop === undefined ? STOP_NONE : STOP_KINDS[stop.reason];
  words[STOP_CODE] = stop?.reason === 'debug-exit' ? stop.exitCode | 0 : 0;
  Atomics.store(words, STATE, STATE_RESPONSE);
  Atomics.notify(words, STATE);
}
