/**
 * Where the CLI writes what the guest says: stdout or a file, through one file descriptor with
 * asynchronous writes (the blocking write runs in libuv's pool), so a reader that stops reading
 * never blocks the main thread: signals are still handled and the run still ends. Node's
 * process.stdout writes pipes synchronously on Linux, which is why it is not used for guest output.
 */
import { write } from 'node:fs';

/** How long to wait before writing again to an fd someone left non-blocking (EAGAIN). */
const EAGAIN_RETRY_MS = 5;

export class FdWriter {
  private failure: NodeJS.ErrnoException | undefined;
  private broken = false;
  private abandoned = false;
  /** write(2) calls issued to the pool and not yet returned: one may be blocked on a full pipe, abandoned or not. */
  private inPool = 0;
  private readonly wakeAbandoned = new Set<() => void>();

  constructor(
    readonly fd: number,
    /** What this is, for messages: `stdout`, `serial file 'x'`. */
    readonly what: string,
  ) {}

  /**
   * Writes a chunk whole; the promise settles once it is written (so a slow reader holds the
   * guest's output back) or dropped. Never rejects: a failure is kept in `error`.
   */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.broken || this.abandoned || this.failure) return;
    let done = 0;
    while (done < chunk.length && !this.abandoned) {
      const n = await this.writeOnce(chunk.subarray(done));
      if (n < 0) return;
      done += n;
    }
  }

  /** The first write error other than the reader going away (EPIPE), if any. */
  get error(): NodeJS.ErrnoException | undefined {
    return this.failure;
  }

  /**
   * A write(2) is still in the pool (it may be blocked on a full pipe, even once abandoned): the
   * process must then exit without joining the pool (hard-exit.ts).
   */
  get inFlight(): boolean {
    return this.inPool > 0;
  }

  /** Stops waiting for the reader: pending writes settle now, later ones are dropped. */
  abandon(): void {
    this.abandoned = true;
    for (const wake of this.wakeAbandoned) wake();
    this.wakeAbandoned.clear();
  }

  /** One write(2); the bytes written, or -1 when output stops (EPIPE, an error, abandoned). */
  private writeOnce(bytes: Uint8Array): Promise<number> {
    return new Promise((resolve) => {
      const onAbandon = (): void => resolve(-1);
      this.wakeAbandoned.add(onAbandon);
      this.inPool++;
      write(this.fd, bytes, 0, bytes.length, null, (err, written) => {
        this.inPool--;
        this.wakeAbandoned.delete(onAbandon);
        if (!err) return resolve(written);
        if (err.code === 'EAGAIN') return void setTimeout(() => resolve(0), EAGAIN_RETRY_MS);
        if (err.code === 'EPIPE')
          this.broken = true; // the reader went away: the guest runs on, its output dropped
        else this.failure ??= err;
        resolve(-1);
      });
    });
  }
}
