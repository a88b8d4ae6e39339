/**
 * How several vCPU threads share one board: each vCPU has a mailbox (a SharedArrayBuffer) where
 * it leaves an I/O or MMIO access and sleeps (Atomics.wait) until the board thread has performed
 * it; a doorbell wakes the board thread. One board, one thread touching the devices: the device
 * models stay plain objects, and the serial rings keep one producer and one consumer.
 */
import type { VcpuExit } from '../kvm/run.js';
import type { BoardStop } from './board.js';
import type { ExitDevices } from './dispatch.js';

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
/** The most data one exit carries: a page of string I/O. */
const DATA_BYTES = 4096;
export const MAILBOX_DATA_OFFSET = HEADER_BYTES;

const STATE_IDLE = 0;
const STATE_REQUEST = 1;
const STATE_RESPONSE = 2;
const KIND_IO = 0;
const KIND_MMIO = 1;
const STOP_NONE = 0;
const STOP_DEBUG_EXIT = 1;
const STOP_RESET = 2;

// Doorbell words.
const RINGS = 0;
const QUIT = 1;

/** One vCPU's mailbox. */
export class DeviceMailbox {
  readonly words: Int32Array;
  readonly data: DataView;
  readonly bytes: Uint8Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(HEADER_BYTES + DATA_BYTES)) {
    this.words = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.data = new DataView(buffer);
    this.bytes = new Uint8Array(buffer);
  }

  get pending(): boolean {
    return Atomics.load(this.words, STATE) === STATE_REQUEST;
  }
}

export class Doorbell {
  readonly words: Int32Array;
  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(8)) {
    this.words = new Int32Array(buffer);
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

/** The vCPU side: each access goes to the board thread and back. */
export function remoteDevices(mailbox: DeviceMailbox, doorbell: Doorbell, deviceNames: readonly string[]): ExitDevices {
  let stop: BoardStop | undefined;
  const { words, bytes } = mailbox;
  const call = (): string | undefined => {
    Atomics.store(words, STATE, STATE_REQUEST);
    doorbell.ring();
    while (Atomics.load(words, STATE) !== STATE_RESPONSE) Atomics.wait(words, STATE, STATE_REQUEST);
    Atomics.store(words, STATE, STATE_IDLE);
    const stopKind = words[STOP]!;
    if (stopKind === STOP_DEBUG_EXIT) stop ??= { reason: 'debug-exit', exitCode: words[STOP_CODE]! >>> 0 };
    else if (stopKind === STOP_RESET) stop ??= { reason: 'reset' };
    const device = words[DEVICE]!;
    return device < 0 ? undefined : deviceNames[device];
  };
  return {
    io(exit, data) {
      const length = exit.size * exit.count;
      words[KIND] = KIND_IO;
      words[DIRECTION] = exit.direction === 'out' ? 1 : 0;
      words[SIZE] = exit.size;
      words[PORT_OR_ADDRESS_LOW] = exit.port;
      words[COUNT] = exit.count;
      if (exit.direction === 'out') bytes.set(new Uint8Array(data.buffer, exit.dataOffset, length), HEADER_BYTES);
      const device = call();
      if (exit.direction === 'in') new Uint8Array(data.buffer, exit.dataOffset, length).set(bytes.subarray(HEADER_BYTES, HEADER_BYTES + length));
      return device;
    },
    mmio(exit, access) {
      words[KIND] = KIND_MMIO;
      words[DIRECTION] = exit.isWrite ? 1 : 0;
      words[SIZE] = exit.len;
      words[PORT_OR_ADDRESS_LOW] = exit.physAddr % 2 ** 32;
      words[ADDRESS_HIGH] = Math.floor(exit.physAddr / 2 ** 32);
      if (exit.isWrite) bytes.set(access, HEADER_BYTES);
      const device = call();
      if (!exit.isWrite) access.set(bytes.subarray(HEADER_BYTES, HEADER_BYTES + exit.len));
      return device;
    },
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
  const { words, data, bytes } = mailbox;
  let name: string | undefined;
  if (words[KIND] === KIND_IO) {
    const exit: Extract<VcpuExit, { kind: 'io' }> = {
      kind: 'io',
      direction: words[DIRECTION] === 1 ? 'out' : 'in',
      size: words[SIZE] as 1 | 2 | 4,
      port: words[PORT_OR_ADDRESS_LOW]!,
      count: words[COUNT]!,
      dataOffset: HEADER_BYTES,
    };
    name = devices.io(exit, data);
  } else {
    const len = words[SIZE]!;
    const exit: Extract<VcpuExit, { kind: 'mmio' }> = {
      kind: 'mmio',
      physAddr: (words[PORT_OR_ADDRESS_LOW]! >>> 0) + words[ADDRESS_HIGH]! * 2 ** 32,
      len,
      isWrite: words[DIRECTION] === 1,
    };
    name = devices.mmio(exit, bytes.subarray(HEADER_BYTES, HEADER_BYTES + len));
  }
  words[DEVICE] = name === undefined ? -1 : (deviceIndex.get(name) ?? -1);
  const stop = devices.stop;
  words[STOP] = stop === undefined ? STOP_NONE : stop.reason === 'debug-exit' ? STOP_DEBUG_EXIT : STOP_RESET;
  words[STOP_CODE] = stop?.reason === 'debug-exit' ? stop.exitCode | 0 : 0;
  Atomics.store(words, STATE, STATE_RESPONSE);
  Atomics.notify(words, STATE);
}
