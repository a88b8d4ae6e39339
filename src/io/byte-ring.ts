/**
 * A single-producer single-consumer byte ring over a SharedArrayBuffer: how serial bytes cross
 * between a vCPU worker and the main thread without a message per byte. Indices are free-running
 * u32 counters (used = head - tail, mod 2^32). Either side may sleep asynchronously until the
 * other moves (`waitForData`, `waitForSpace`); the other side pays for Atomics.notify only when
 * someone is actually waiting.
 */

const HEAD = 0; // bytes ever written
const TAIL = 1; // bytes ever read
const READER_WAITING = 2;
const WRITER_WAITING = 3;
const HEADER_INT32S = 4;
const HEADER_BYTES = HEADER_INT32S * 4;
/** Indices are u32 counters, so the capacity must stay well inside 2^32. */
const MAX_CAPACITY = 2 ** 30;
const never = (): boolean => false;

export class ByteRing {
  readonly capacity: number;
  private readonly header: Int32Array;
  private readonly data: Uint8Array;
  private readonly mask: number;

  /** Wraps a buffer made by `ByteRing.allocate` (possibly in another thread). */
  constructor(readonly buffer: SharedArrayBuffer) {
    this.header = new Int32Array(buffer, 0, HEADER_INT32S);
    this.data = new Uint8Array(buffer, HEADER_BYTES);
    this.capacity = this.data.length;
    this.mask = this.capacity - 1;
  }

  /** A new ring; capacity must be a power of two. */
  static allocate(capacity: number): ByteRing {
    if (!Number.isInteger(capacity) || capacity <= 0 || capacity > MAX_CAPACITY || (capacity & (capacity - 1)) !== 0)
      throw new RangeError(`ring capacity ${capacity} is not a power of two`);
    return new ByteRing(new SharedArrayBuffer(HEADER_BYTES + capacity));
  }

  /** Bytes written and not yet read. */
  used(): number {
    return (Atomics.load(this.header, HEAD) - Atomics.load(this.header, TAIL)) >>> 0;
  }

  free(): number {
    return this.capacity - this.used();
  }

  /** Producer: appends one byte; false when the ring is full. */
  push(byte: number): boolean {
    const head = Atomics.load(this.header, HEAD);
    if ((head - Atomics.load(this.header, TAIL)) >>> 0 >= this.capacity) return false;
    this.data[head & this.mask] = byte;
    Atomics.store(this.header, HEAD, (head + 1) | 0);
    this.wake(READER_WAITING, HEAD);
    return true;
  }

  /** Producer: appends as many bytes of `bytes` as fit; returns how many. */
  write(bytes: Uint8Array): number {
    const head = Atomics.load(this.header, HEAD);
    const n = Math.min(bytes.length, this.capacity - ((head - Atomics.load(this.header, TAIL)) >>> 0));
    if (n === 0) return 0;
    const at = head & this.mask;
    const first = Math.min(n, this.capacity - at);
    this.data.set(bytes.subarray(0, first), at);
    if (n > first) this.data.set(bytes.subarray(first, n), 0);
    Atomics.store(this.header, HEAD, (head + n) | 0);
    this.wake(READER_WAITING, HEAD);
    return n;
  }

  /** Consumer: takes one byte, or -1 when the ring is empty. */
  shift(): number {
    const tail = Atomics.load(this.header, TAIL);
    if (tail === Atomics.load(this.header, HEAD)) return -1;
    const byte = this.data[tail & this.mask]!;
    Atomics.store(this.header, TAIL, (tail + 1) | 0);
    this.wake(WRITER_WAITING, TAIL);
    return byte;
  }

  /** Consumer: takes up to `max` bytes into a new Buffer (empty when the ring is empty). */
  read(max = this.capacity): Buffer {
    const tail = Atomics.load(this.header, TAIL);
    const n = Math.min(max, (Atomics.load(this.header, HEAD) - tail) >>> 0);
    const out = Buffer.allocUnsafe(n);
    if (n === 0) return out;
    const at = tail & this.mask;
    const first = Math.min(n, this.capacity - at);
    out.set(this.data.subarray(at, at + first), 0);
    if (n > first) out.set(this.data.subarray(0, n - first), first);
    Atomics.store(this.header, TAIL, (tail + n) | 0);
    this.wake(WRITER_WAITING, TAIL);
    return out;
  }

  /**
   * Consumer: resolves once the ring holds data (at once if it already does), or once
   * `cancelled()` is true after a `wakeReader()`.
   */
  waitForData(cancelled: () => boolean = never): Promise<void> {
    return this.waitWhile(READER_WAITING, HEAD, () => this.used() === 0, cancelled);
  }

  /** Producer: resolves once the ring has room (at once if it already has), or on cancellation. */
  waitForSpace(cancelled: () => boolean = never): Promise<void> {
    return this.waitWhile(WRITER_WAITING, TAIL, () => this.free() === 0, cancelled);
  }

  /** Wakes a waitForData() so that it looks at its cancel condition. */
  wakeReader(): void {
    this.wakeHere(HEAD);
  }

  /** Wakes a waitForSpace() so that it looks at its cancel condition. */
  wakeWriter(): void {
    this.wakeHere(TAIL);
  }

  /**
   * The waits of this ring object (its thread's), by the index they wait on: a wake from this
   * thread resolves them at once. Atomics.notify alone would resolve a waitAsync of this thread
   * only through a task of the event loop (~0.1 ms: the end of every run waits for it).
   */
  private readonly waitsHere = new Map<number, Set<() => void>>();

  private wakeHere(index: number): void {
    Atomics.notify(this.header, index); // also lets V8 drop the waitAsync it holds
    const waits = this.waitsHere.get(index);
    if (!waits) return;
    this.waitsHere.delete(index);
    for (const wake of waits) wake();
  }

  /** A waitAsync on `index` that a wake from this thread also ends. */
  private waitHere(index: number, value: Promise<unknown>): Promise<void> {
    return new Promise((resolve) => {
      let waits = this.waitsHere.get(index);
      if (!waits) this.waitsHere.set(index, (waits = new Set()));
      waits.add(resolve);
      void value.then(() => {
        this.waitsHere.get(index)?.delete(resolve);
        resolve();
      });
    });
  }

  private async waitWhile(flag: number, index: number, blocked: () => boolean, cancelled: () => boolean): Promise<void> {
    while (blocked() && !cancelled()) {
      const seen = Atomics.load(this.header, index);
      Atomics.store(this.header, flag, 1);
      // Re-check after raising the flag: the other side may have moved just before it saw the flag.
      if (!blocked()) break;
      const wait = Atomics.waitAsync(this.header, index, seen);
      if (wait.async) await this.waitHere(index, wait.value);
    }
    Atomics.store(this.header, flag, 0);
  }

  private wake(flag: number, index: number): void {
    if (Atomics.load(this.header, flag) !== 0) {
      Atomics.store(this.header, flag, 0);
      Atomics.notify(this.header, index);
    }
  }
}

/** The pair of rings a serial port is wired to: TX from the guest, RX to it. */
export interface SerialRings {
  tx: ByteRing;
  rx: ByteRing;
}
