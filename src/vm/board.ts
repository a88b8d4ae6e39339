/**
 * The board: which device sits at which address, as on a PC. Built inside the vCPU's thread so
 * every exit is handled there without crossing threads; the host sides of the devices (serial
 * rings, the end-of-run callbacks) are injected.
 */
import { Bus, PIO_ADDRESS_SPACE_SIZE, type MmioBus, type PioBus } from '../devices/bus.js';
import { DEBUG_EXIT_IOSIZE, DEBUG_EXIT_PORT, DebugExit } from '../devices/debug-exit.js';
import type { MmioDevice, PioDevice } from '../devices/device.js';
import { I8042, I8042_DATA_PORT, I8042_PORT_COUNT } from '../devices/i8042.js';
import { COM1_BASE, Serial16550, UART_REGISTER_COUNT, type SerialHost } from '../devices/serial16550.js';
import type { ByteRing } from './byte-ring.js';

/** Why a device ended the run. */
export type BoardStop = { reason: 'debug-exit'; exitCode: number } | { reason: 'reset' };

export interface Board {
  readonly pio: PioBus;
  readonly mmio: MmioBus;
  readonly com1: Serial16550;
  /** Set by a device that ends the run; the exit loop checks it after every exit. */
  stop: BoardStop | undefined;
}

/** COM1's host side: TX into the ring the main thread drains, RX from the ring it fills. */
export function ringSerialHost(tx: ByteRing, rx: ByteRing): SerialHost {
  return {
    transmit(byte) {
      // The device holds bytes back (THRE clear) once the backlog reaches its limit, and the ring
      // is sized above that limit, so a push never finds it full.
      tx.push(byte);
    },
    txBacklog: () => tx.used(),
    receive: () => rx.shift(),
  };
}

export function createPcBoard(serialHost: SerialHost): Board {
  const pio: PioBus = new Bus<PioDevice>(PIO_ADDRESS_SPACE_SIZE);
  const mmio: MmioBus = new Bus<MmioDevice>();
  const board: Board = { pio, mmio, com1: new Serial16550(serialHost), stop: undefined };
  pio.register(COM1_BASE, UART_REGISTER_COUNT, board.com1, 'COM1 (16550A)');
  pio.register(DEBUG_EXIT_PORT, DEBUG_EXIT_IOSIZE, new DebugExit((value) => (board.stop ??= { reason: 'debug-exit', exitCode: value })), 'debug-exit');
  pio.register(I8042_DATA_PORT, I8042_PORT_COUNT, new I8042(() => (board.stop ??= { reason: 'reset' })), 'i8042');
  // Port 0x80 (POST codes) needs no device: unassigned ports already ignore writes and read all ones.
  return board;
}
