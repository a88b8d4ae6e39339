/**
 * The main thread's side of a vCPU's serial port: it moves transmitted bytes from the TX ring to
 * a sink (stdout, a callback) at the sink's pace, and feeds input into the RX ring no faster than
 * the guest reads it. The vCPU thread never waits for either: a slow reader shows up in the
 * guest only as LSR.THRE staying clear once the backlog reaches its limit.
 *
 * Memory is bounded whatever the guest writes: output waits in the fixed TX ring (the UART holds
 * further bytes back), and at most one chunk is handed to the sink at a time.
 *
 * Output is coalesced: a guest writes one byte per VM exit, and waking this thread for each
 * (Atomics.notify from the vCPU thread, a wake-up and a write here) costs both threads far more
 * than the exit itself. Once a burst starts the pump looks every SERIAL_OUTPUT_COALESCE_MS and
 * hands over what came; meanwhile the vCPU's pushes find no reader waiting and notify nobody.
 * Only after SERIAL_OUTPUT_LINGER_LOOKS empty looks does it park and wait to be notified again.
 */
import { SERIAL_TX_BACKLOG_LIMIT } from '../devices/serial16550.js';
import { ByteRing, type SerialRings } from './byte-ring.js';
import { SerialInputQueue, type SerialInput, type SerialInputReader, type SerialInputSource } from './serial-input-queue.js';

export type { SerialInput } from './serial-input-queue.js';

/** Room for the backlog limit plus the bytes in flight when THRE clears. */
export const SERIAL_TX_RING_SIZE = 2 * SERIAL_TX_BACKLOG_LIMIT;
/** Input waiting for the guest; beyond it, the input is paused. */
export const SERIAL_RX_RING_SIZE = 64 * 1024;
/** The most bytes handed to the sink at once. */
export const SERIAL_OUTPUT_CHUNK = 64 * 1024;
/** How long the first byte of a burst waits for the rest: too short to see, long enough for hundreds of exits. */
export const SERIAL_OUTPUT_COALESCE_MS = 1;
/** Looks (each SERIAL_OUTPUT_COALESCE_MS apart) that find nothing before the pump parks and asks to be notified again. */
export const SERIAL_OUTPUT_LINGER_LOOKS = 10;

/** Receives serial output; a returned promise holds back further output until it settles. */
export type SerialSink = (chunk: Buffer) => void | Promise<void>;

export interface SerialBridgeOptions {
  /** Called after new input reached the RX ring, so the machine can tell the UART (raise its interrupt). */
  onInput?: () => void;
  /** Called once when the sink throws or rejects: the run should end with this error. */
  onSinkError?: (err: unknown) => void;
}

export class SerialBridge implements SerialRings {
  readonly tx = ByteRing.allocate(SERIAL_TX_RING_SIZE);
  readonly rx = ByteRing.allocate(SERIAL_RX_RING_SIZE);
  private finishing = false;
  private stopping = false;
  private readonly output: Promise<void>;
  private stopInput: () => void = () => {};
  /** A feed() is moving queued input into the RX ring. */
  private feeding = false;
  private sinkFailed = false;

  constructor(
    private readonly sink: SerialSink,
    /** The caller's input, or a queue of it (a SerialConsole's SerialInputQueue). */
    input?: SerialInput | SerialInputSource,
    private readonly options: SerialBridgeOptions = {},
  ) {
    this.output = this.pumpOutput();
    if (input !== undefined) this.startInput(input);
  }

  /** Stops reading input and delivers every byte the guest transmitted. */
  async finish(): Promise<void> {
    this.finishing = true;
    this.stopInput();
    this.endCoalescing?.();
    this.tx.wakeReader();
    this.rx.wakeWriter();
    await this.output;
    for (let chunk = this.tx.read(SERIAL_OUTPUT_CHUNK); chunk.length > 0 && !this.stopping; chunk = this.tx.read(SERIAL_OUTPUT_CHUNK)) {
      await this.deliver(chunk);
    }
  }

  /** Stops at once: input is no longer read and output not yet delivered is dropped (a signal's stop path). */
  abandon(): void {
    this.stopping = true;
    this.finishing = true;
    this.stopInput();
    this.endCoalescing?.();
    this.tx.wakeReader();
    this.rx.wakeWriter();
    for (const wake of this.abandonWakers) wake();
    this.abandonWakers.clear();
  }

  private async pumpOutput(): Promise<void> {
    let quietLooks = SERIAL_OUTPUT_LINGER_LOOKS; // parked until the first byte
    while (!this.finishing) {
      // Parked, the producer's next push notifies this thread; lingering, it notifies nobody.
      if (quietLooks >= SERIAL_OUTPUT_LINGER_LOOKS) {
        await this.tx.waitForData(() => this.finishing);
        quietLooks = 0;
      }
      if (!this.finishing && this.tx.used() < SERIAL_OUTPUT_CHUNK) await this.coalesce();
      const chunk = this.tx.read(SERIAL_OUTPUT_CHUNK);
      if (chunk.length === 0) {
        quietLooks++;
        continue;
      }
      quietLooks = 0;
      await this.deliver(chunk);
    }
  }

  /** Waits for the rest of a burst; finish() and abandon() cut it short. */
  private coalesce(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.endCoalescing = undefined;
        resolve();
      };
      const timer = setTimeout(done, SERIAL_OUTPUT_COALESCE_MS);
      this.endCoalescing = done;
    });
  }

  /** Ends a coalesce() in progress. */
  private endCoalescing: (() => void) | undefined;

  /**
   * Hands a chunk to the sink and waits for it, unless the bridge is abandoned meanwhile (a sink
   * that never settles must not keep a stopped run alive). A sink that throws or rejects is
   * reported once and then bypassed.
   */
  private async deliver(chunk: Buffer): Promise<void> {
    if (this.sinkFailed || this.stopping) return;
    let pending: void | Promise<void>;
    try {
      pending = this.sink(chunk);
    } catch (err) {
      return this.sinkError(err);
    }
    if (!pending || typeof pending.then !== 'function') return;
    await new Promise<void>((resolve) => {
      const wake = (): void => resolve();
      this.abandonWakers.add(wake);
      pending.then(
        () => {
          this.abandonWakers.delete(wake);
          resolve();
        },
        (err: unknown) => {
          this.abandonWakers.delete(wake);
          this.sinkError(err);
          resolve();
        },
      );
    });
  }

  private sinkError(err: unknown): void {
    if (this.sinkFailed) return;
    this.sinkFailed = true;
    this.options.onSinkError?.(err);
  }

  /** Deliveries waiting on the sink, woken by abandon(). */
  private readonly abandonWakers = new Set<() => void>();

  private startInput(input: SerialInput | SerialInputSource): void {
    // Input given straight to the bridge (the BIOS's keys) is read through a queue of its own,
    // as a serial port's is through its console's: one way to read a stream, a string or bytes.
    let own: SerialInputQueue | undefined;
    const source = isInputSource(input) ? input : (own = new SerialInputQueue(input));
    const queue: Uint8Array[] = [];
    const onData = (chunk: Uint8Array): void => {
      queue.push(chunk);
      if (!this.feeding) void this.feed(queue, reader);
    };
    const reader = source.subscribe(onData);
    own?.flush(); // a string or bytes reach the RX ring now, before the guest runs
    this.stopInput = () => {
      reader.stop();
      own?.close();
    };
  }

  /** Moves queued input into the RX ring, pausing the input while the ring is full. */
  private async feed(queue: Uint8Array[], reader?: SerialInputReader): Promise<void> {
    this.feeding = true;
    while (queue.length > 0 && !this.finishing) {
      const chunk = queue[0]!;
      const n = this.rx.write(chunk);
      if (n > 0) this.options.onInput?.();
      if (n === chunk.length) {
        queue.shift();
        continue;
      }
      queue[0] = chunk.subarray(n);
      reader?.pause();
      await this.rx.waitForSpace(() => this.finishing);
      if (!this.finishing) reader?.resume();
    }
    // Cleared in the same tick as the last look at the queue, so no chunk is left behind.
    this.feeding = false;
  }
}

function isInputSource(input: SerialInput | SerialInputSource): input is SerialInputSource {
  return typeof (input as Partial<SerialInputSource>).subscribe === 'function';
}
