/**
 * The main thread's handle on a board thread (board-worker.ts): one per multi-vCPU run, started
 * before the vCPUs and stopped after them.
 */
import { Worker } from 'node:worker_threads';
import type { FwCfgConfig } from '../devices/fw-cfg.js';
import type { BiosBoardSpec } from '../bios/spec.js';
import type { BoardState } from './board-state.js';
import type { BoardSnapshotSpec, BoardSpec } from './pc-board.js';
import { ensureThreadFdHeadroom } from '../host.js';
import { asResourceError } from '../kvm/error.js';
import { DeviceMailbox, Doorbell } from './mailbox.js';
import type { SerialRings } from '../io/byte-ring.js';

export interface BoardJob extends BoardSpec {
  mailboxes: SharedArrayBuffer[];
  doorbell: SharedArrayBuffer;
}

export type BoardThreadMessage =
  | { type: 'ready'; deviceNames: string[]; unassignedPorts: Uint8Array | undefined }
  | { type: 'devices'; devices: BoardState }
  | { type: 'done' };

/** What a vCPU thread needs to use the shared board. */
export interface RemoteBoard {
  mailbox: SharedArrayBuffer;
  doorbell: SharedArrayBuffer;
  deviceNames: string[];
  /** The board's ports that no device decodes (ExitDevices.unassignedPorts). */
  unassignedPorts: Uint8Array | undefined;
}

export class BoardThread {
  private constructor(
    private readonly worker: Worker,
    private readonly doorbell: Doorbell,
    /** One per vCPU, in vCPU order. */
    readonly remotes: RemoteBoard[],
  ) {}

  static async start(options: {
    vmFd: number;
    memoryAddr: bigint;
    memorySize: number;
    irqchip: boolean;
    serial: readonly (SerialRings | null)[];
    firmware: FwCfgConfig | undefined;
    bios?: BiosBoardSpec;
    snapshot?: BoardSnapshotSpec;
    vcpus: number;
  }): Promise<BoardThread> {
    ensureThreadFdHeadroom('starting the board thread');
    const mailboxes = Array.from({ length: options.vcpus }, () => new DeviceMailbox());
    const doorbell = new Doorbell();
    const worker = new Worker(new URL('./board-worker.js', import.meta.url), { execArgv: [] });
    const job: BoardJob = {
      vmFd: options.vmFd,
      memoryAddr: options.memoryAddr,
      memorySize: options.memorySize,
      irqchip: options.irqchip,
      serial: options.serial.map((rings) => (rings ? { tx: rings.tx.buffer, rx: rings.rx.buffer } : null)),
      firmware: options.firmware,
      ...(options.bios ? { bios: options.bios } : {}),
      ...(options.snapshot ? { snapshot: options.snapshot } : {}),
      mailboxes: mailboxes.map((m) => m.buffer),
      doorbell: doorbell.buffer,
    };
    const ready = new Promise<Extract<BoardThreadMessage, { type: 'ready' }>>((resolve, reject) => {
      worker.once('message', (message: BoardThreadMessage) =>
        message.type === 'ready' ? resolve(message) : reject(new Error('board thread ended early')),
      );
      worker.once('error', (err) => reject(asResourceError(err, 'starting the board thread')));
    });
    worker.postMessage(job);
    const { deviceNames, unassignedPorts } = await ready;
    return new BoardThread(
      worker,
      doorbell,
      mailboxes.map((m) => ({ mailbox: m.buffer, doorbell: doorbell.buffer, deviceNames, unassignedPorts })),
    );
  }

  /** The devices' state, for a snapshot (call with every vCPU paused, so no access is in flight). */
  saveDevices(): Promise<BoardState> {
    const saved = new Promise<BoardState>((resolve, reject) => {
      const onMessage = (message: BoardThreadMessage): void => {
        if (message.type !== 'devices') return;
        this.worker.off('message', onMessage);
        this.worker.off('exit', onExit);
        resolve(message.devices);
      };
      const onExit = (): void => {
        this.worker.off('message', onMessage);
        reject(new Error('the board thread ended before it reported its devices'));
      };
      this.worker.on('message', onMessage);
      this.worker.once('exit', onExit);
    });
    this.doorbell.save();
    return saved;
  }

  /** New host input is waiting: the board thread polls its UARTs, which raise their interrupts. */
  notifyInput(): void {
    this.doorbell.input();
  }

  /** Ends the board thread; call once every vCPU has stopped. */
  async stop(): Promise<void> {
    this.doorbell.quit();
    await this.worker.terminate();
  }
}
