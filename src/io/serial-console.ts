/**
 * A serial port as a test drives it, expect-style (what people write with pexpect around QEMU):
 * `write()` types into the port, `expect()` waits for output matching a string or a RegExp and
 * resolves with the match and what came before it, `lines()` yields each line. Typing and
 * expecting interleave without losing a byte: input waits in a queue until the guest's UART
 * takes it, and output is kept (the last MAX_CONSOLE_OUTPUT characters) from the start of the run.
 */
import { createRequire } from 'node:module';
import type * as Stream from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { SerialInputQueue, type SerialInput } from './serial-input-queue.js';

/** Output kept for expect() and `output`, in characters; older output is dropped. */
export const MAX_CONSOLE_OUTPUT = 1 << 20;
/** expect()'s default time-out. */
export const DEFAULT_EXPECT_TIMEOUT_MS = 10_000;
/** How much of the output an expect time-out shows. */
const SHOWN_ON_TIMEOUT = 2000;

export interface ExpectMatch {
  /** The text that matched. */
  match: string;
  /** The RegExp's match (groups and all); null for a string pattern. */
  groups: RegExpMatchArray | null;
  /** Output between the previous expect's match (or the start) and this one. */
  before: string;
}

/** expect() gave up: the message shows what the port printed. */
export class ExpectTimeoutError extends Error {
  override readonly name = 'ExpectTimeoutError';
  readonly code = 'EEXPECT';
  constructor(
    message: string,
    /** Everything the port printed after the previous match. */
    readonly output: string,
  ) {
    super(message);
  }
}

export class SerialConsole {
  /**
   * The machine's: what the guest receives, the caller's input and write()s in order. A queue,
   * not a stream, so that a run with no stream for input never loads node:stream.
   */
  readonly inputQueue: SerialInputQueue;
  private stream: Stream.PassThrough | undefined;
  private text = '';
  /** Where the next expect() starts looking, in `text`. */
  private cursor = 0;
  private readonly decoder = new StringDecoder('utf8');
  private readonly wakers = new Set<() => void>();
  private ended: string | undefined;

  constructor(
    /** The port's name, for messages. */
    readonly port: string,
    /** The caller's own input for the port, fed before anything written with write(); its EOF ends nothing. */
    initial?: SerialInput,
  ) {
    this.inputQueue = new SerialInputQueue(initial);
  }

  /**
   * The same input as a stream, for code that read it as one (this field was a PassThrough):
   * made on first use, it gets each chunk from then on. The machine reads `inputQueue`, so a
   * reader of this stream sees what the guest gets; one that stops reading holds back both, as
   * the one stream did.
   */
  get input(): Stream.PassThrough {
    if (this.stream) return this.stream;
    const { PassThrough } = createRequire(import.meta.url)('node:stream') as typeof Stream;
    const stream = new PassThrough();
    this.stream = stream;
    if (this.ended !== undefined) {
      stream.end();
      return stream;
    }
    let held = false;
    const reader = this.inputQueue.subscribe((chunk) => {
      if (stream.write(chunk) || held) return;
      held = true;
      reader.pause();
      stream.once('drain', () => {
        held = false;
        reader.resume();
      });
    });
    this.inputQueue.flush(); // what waits is in the stream at once, as the constructor's write put it there
    return stream;
  }

  /** Types into the port (queued; the guest reads it as fast as it wants). */
  write(data: string | Uint8Array): void {
    if (this.ended === undefined) this.inputQueue.push(data);
  }

  /** What the port has printed so far (at most the last MAX_CONSOLE_OUTPUT characters). */
  get output(): string {
    return this.text;
  }

  /** The machine: the port printed `chunk`. */
  feed(chunk: Uint8Array): void {
    this.append(this.decoder.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length)));
  }

  /** The machine: the run has ended; waiting expects fail, lines() ends. */
  close(why: string): void {
    if (this.ended !== undefined) return;
    this.append(this.decoder.end());
    this.ended = why;
    this.inputQueue.close();
    this.stream?.end();
    this.wake();
  }

  /**
   * Resolves with the first match after the previous expect's match. Rejects with
   * ExpectTimeoutError after `timeoutMs` (default 10 s), or when the run ends first.
   */
  async expect(pattern: string | RegExp, options: { timeoutMs?: number } = {}): Promise<ExpectMatch> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_EXPECT_TIMEOUT_MS;
    const regexp = typeof pattern === 'string' ? undefined : new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = this.find(pattern, regexp);
      if (found) return found;
      const left = deadline - performance.now();
      if (this.ended !== undefined || left <= 0) {
        const seen = this.text.slice(this.cursor);
        const shown = seen.length > SHOWN_ON_TIMEOUT ? `…${seen.slice(-SHOWN_ON_TIMEOUT)}` : seen;
        const why = this.ended !== undefined ? `the run ended (${this.ended})` : `${timeoutMs} ms passed`;
        throw new ExpectTimeoutError(
          `${this.port}: expected ${String(pattern)}, but ${why}; the output since the last match was:\n${shown}`,
          seen,
        );
      }
      await this.nextChange(left);
    }
  }

  /** Each complete line the port prints from now on (without its newline), until the run ends. */
  lines(): AsyncIterableIterator<string> {
    // From the call on, not from the first next(): a generator's body only starts then.
    return this.linesFrom(this.dropped + this.text.length);
  }

  private async *linesFrom(start: number): AsyncIterableIterator<string> {
    let position = start; // absolute: characters printed before the next line
    for (;;) {
      const at = Math.max(0, position - this.dropped);
      const newline = this.text.indexOf('\n', at);
      if (newline >= 0) {
        position = this.dropped + newline + 1;
        yield this.text.slice(at, newline).replace(/\r$/, '');
        continue;
      }
      if (this.ended !== undefined) return;
      await this.nextChange(Infinity);
    }
  }

  /** Characters dropped from the front of `text` so far: `text[0]` is character `dropped` of the output. */
  private dropped = 0;

  private find(pattern: string | RegExp, regexp: RegExp | undefined): ExpectMatch | undefined {
    const rest = this.text.slice(this.cursor);
    if (regexp === undefined) {
      const at = rest.indexOf(pattern as string);
      if (at < 0) return undefined;
      this.cursor += at + (pattern as string).length;
      return { match: pattern as string, groups: null, before: rest.slice(0, at) };
    }
    const m = regexp.exec(rest);
    if (!m) return undefined;
    this.cursor += m.index + m[0].length;
    return { match: m[0], groups: m, before: rest.slice(0, m.index) };
  }

  private append(text: string): void {
    if (text === '') return;
    this.text += text;
    const over = this.text.length - MAX_CONSOLE_OUTPUT;
    if (over > 0) {
      this.text = this.text.slice(over);
      this.cursor = Math.max(0, this.cursor - over);
      this.dropped += over;
    }
    this.wake();
  }

  private wake(): void {
    for (const wake of this.wakers) wake();
    this.wakers.clear();
  }

  private nextChange(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = Number.isFinite(timeoutMs) ? setTimeout(done, timeoutMs) : undefined;
      const wakers = this.wakers;
      function done(): void {
        clearTimeout(timer);
        wakers.delete(done);
        resolve();
      }
      this.wakers.add(done);
    });
  }
}
