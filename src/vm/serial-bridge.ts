/**
 * The main thread's side of a vCPU's serial port: it moves transmitted bytes from the TX ring to
 * a sink (stdout, a callback) at the sink's pace, and feeds input into the RX ring no faster than
 * the guest reads it. The vCPU thread never waits for either: a slow reader shows up in the
 * guest only as LSR.THRE staying clear once the backlog reaches its limit.
 */
import type { Readable } from 'node:stream';
import { SERIAL_TX_BACKLOG_LIMIT } from '../devices/serial16550.js';
import { ByteRing } from './byte-ring.js';
import type { SerialRings } from './vm.js';

/** Room for the backlog limit plus the bytes in flight when THRE clears. */
export const SERIAL_TX_RING_SIZE = 2 * SERIAL_TX_BACKLOG_LIMIT;
/** Input waiting for the guest; beyond it, the input stream is paused. */
export const SERIAL_RX_RING_SIZE = 64 * 1024;
/** The most bytes handed to the sink at once. */
const OUTPUT_CHUNK = 64 * 1024;

/** Receives serial output; a returned promise holds back further output until it settles. */
export type SerialSink = (chunk: Buffer) => void | Promise<void>;
export type SerialInput = Readable | Uint8Array | string;

export class SerialBridge implements SerialRings {
  readonly tx = ByteRing.allocate(SERIAL_TX_RING_SIZE);
  readonly rx = ByteRing.allocate(SERIAL_RX_RING_SIZE);
  private finishing = false;
  private wakeOutput: () => void = () => {};
  private readonly finished = new Promise<void>((resolve) => (this.wakeOutput = resolve));
  private readonly output: Promise<void>;
  private stopInput: () => void = () => {};
  /** A feed() is moving queued input into the RX ring. */
  private feeding = false;

  constructor(
    private readonly sink: SerialSink,
    input?: SerialInput,
  ) {
    this.output = this.pumpOutput();
    if (input !== undefined) this.startInput(input);
  }

  /** Stops reading input and delivers every byte the guest transmitted. */
  async finish(): Promise<void> {
    this.finishing = true;
    this.stopInput();
    this.wakeOutput();
    await this.output;
    for (let chunk = this.tx.read(OUTPUT_CHUNK); chunk.length > 0; chunk = this.tx.read(OUTPUT_CHUNK)) await this.sink(chunk);
  }

  private async pumpOutput(): Promise<void> {
    while (!this.finishing) {
      await Promise.race([this.tx.waitForData(), this.finished]);
      const chunk = this.tx.read(OUTPUT_CHUNK);
      if (chunk.length > 0) await this.sink(chunk);
    }
  }

  private startInput(input: SerialInput): void {
    if (typeof input === 'string' || input instanceof Uint8Array) {
      const bytes = typeof input === 'string' ? Buffer.from(input) : input;
      void this.feed([bytes]);
      return;
    }
    const queue: Uint8Array[] = [];
    const onData = (chunk: Buffer | string): void => {
      queue.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      if (!this.feeding) void this.feed(queue, input);
    };
    input.on('data', onData);
    input.on('error', () => {}); // input ending or failing does not end the run
    this.stopInput = () => {
      input.off('data', onData);
      input.pause();
    };
  }

  /** Moves queued input into the RX ring, pausing the stream while the ring is full. */
  private async feed(queue: Uint8Array[], stream?: Readable): Promise<void> {
    this.feeding = true;
    while (queue.length > 0 && !this.finishing) {
      const chunk = queue[0]!;
      const n = this.rx.write(chunk);
      if (n === chunk.length) {
        queue.shift();
        continue;
      }
      queue[0] = chunk.subarray(n);
      stream?.pause();
      await Promise.race([this.rx.waitForSpace(), this.finished]);
      if (!this.finishing) stream?.resume();
    }
    // Cleared in the same tick as the last look at the queue, so no chunk is left behind.
    this.feeding = false;
  }
}
