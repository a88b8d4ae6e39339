/**
 * A serial port's input on its way to the guest: the caller's own input first (a Readable such as
 * process.stdin, a string or bytes), then each push(), in the order they come. It stands where a
 * PassThrough stood because the machine needs no more than chunks in order and a way to hold them
 * back, and node:stream costs a launch ~3 ms to load even when no port has a stream for input.
 *
 * It flows while it has readers and none of them is paused. Otherwise chunks wait here and a
 * Readable source is paused, so what waits is what was pushed (unbounded, as PassThrough.write
 * was) plus what the source emitted before its pause. The source's EOF ends nothing; close() does.
 */
import type { Readable } from 'node:stream';

export type SerialInput = Readable | Uint8Array | string;

/** One reader's flow control: pause() holds chunks back (the RX ring is full), stop() ends its reading. */
export interface SerialInputReader {
  pause(): void;
  resume(): void;
  stop(): void;
}

/** Where a SerialBridge reads input: each chunk, in order, to every reader. */
export interface SerialInputSource {
  /** `onData` gets each chunk from the next tick on (never during this call). */
  subscribe(onData: (chunk: Uint8Array) => void): SerialInputReader;
}

interface Reader {
  onData: (chunk: Uint8Array) => void;
  paused: boolean;
}

export class SerialInputQueue implements SerialInputSource {
  /** Chunks not yet delivered, oldest first. */
  private readonly waiting: Uint8Array[] = [];
  private readonly readers = new Set<Reader>();
  private pausedReaders = 0;
  private flushScheduled = false;
  private closed = false;
  private readonly source: Readable | undefined;
  /** Listening to the source's 'data' (from the first reader on, as a pipe would). */
  private attached = false;
  private sourcePaused = false;

  constructor(initial?: SerialInput) {
    if (initial === undefined) return;
    if (typeof initial === 'string' || initial instanceof Uint8Array) this.push(initial);
    else this.source = initial;
  }

  /** Queues `data` after everything before it. */
  push(data: string | Uint8Array): void {
    if (this.closed) return;
    const chunk = typeof data === 'string' ? Buffer.from(data) : data;
    if (chunk.length === 0) return; // a stream drops empty chunks too
    if (this.waiting.length === 0 && !this.flushScheduled && this.flowing()) {
      this.deliver(chunk);
      return;
    }
    this.waiting.push(chunk);
    this.steer();
  }

  subscribe(onData: (chunk: Uint8Array) => void): SerialInputReader {
    const reader: Reader = { onData, paused: false };
    if (!this.closed) this.readers.add(reader);
    this.steer();
    return {
      pause: () => {
        if (reader.paused || !this.readers.has(reader)) return;
        reader.paused = true;
        this.pausedReaders++;
        this.steer();
      },
      resume: () => {
        if (!reader.paused) return;
        reader.paused = false;
        if (this.readers.has(reader)) this.pausedReaders--;
        this.steer();
      },
      stop: () => {
        if (!this.readers.delete(reader)) return;
        if (reader.paused) this.pausedReaders--;
        this.steer();
      },
    };
  }

  /** Delivers what waits now rather than on the next tick (a new reader that wants it at once). */
  flush(): void {
    this.flushScheduled = false;
    while (this.waiting.length > 0 && this.flowing()) this.deliver(this.waiting.shift()!);
  }

  /** No more input: what waits is dropped, readers get nothing more, the source is let go (paused). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.waiting.length = 0;
    this.readers.clear();
    this.pausedReaders = 0;
    if (this.source && this.attached) {
      this.source.off('data', this.onSourceData);
      this.source.pause();
    }
  }

  private flowing(): boolean {
    return !this.closed && this.readers.size > 0 && this.pausedReaders === 0;
  }

  private deliver(chunk: Uint8Array): void {
    for (const reader of this.readers) reader.onData(chunk);
  }

  private readonly onSourceData = (chunk: Buffer | string): void => this.push(chunk);

  /** After any change: flush what waits if it may flow, and pause or resume the source to match. */
  private steer(): void {
    const flowing = this.flowing();
    if (flowing && this.waiting.length > 0 && !this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(() => {
        if (this.flushScheduled) this.flush();
      });
    }
    const source = this.source;
    if (!source || this.closed) return;
    if (!this.attached) {
      if (!flowing) return;
      this.attached = true;
      // As pipe() did: a source paused before flows too, from the next tick (after what waits).
      source.on('data', this.onSourceData);
      // Input failing (a terminal hung up) ends the input, not the run; unheard, it would crash the
      // process. Kept after close(): an error then must not crash it either.
      source.on('error', ignoreError);
      source.resume();
      return;
    }
    if (flowing === !this.sourcePaused) return;
    this.sourcePaused = !flowing;
    if (flowing) source.resume();
    else source.pause();
  }
}

function ignoreError(): void {}
