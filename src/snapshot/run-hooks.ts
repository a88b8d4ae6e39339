/**
 * What snapshots add to a run (machine/run.ts holds one of these per run): for a restored
 * machine, the vCPUs held before their first instruction until the saved state is loaded; for
 * `options.save`, the triggers — a pattern in COM1's output, a debug-exit value, a request
 * signal (Ctrl-A s) — that pause the guest and write the snapshot; and `run.snapshot()` itself. While a capture reads the VM, the
 * run keeps the VM open (finish() waits for `settled()`).
 */
import type { BoardState } from '../board/board-state.js';
import type { BoardSnapshotSpec } from '../board/pc-board.js';
import type { SerialSink } from '../io/serial-bridge.js';
import type { SaveConfig } from './options.js';
import { captureGuest, type CaptureMachine, type SnapshotInfo, type SnapshotOptions } from './capture.js';
import type { PendingRestore } from './restore.js';

/** What the hooks need of the run. */
export interface RunControl {
  readonly machine: CaptureMachine & { readonly warnings: string[]; readonly restore?: PendingRestore };
  readonly save: SaveConfig | undefined;
  /** Pauses every vCPU (resolves once all are paused or the run has ended). */
  pause(): Promise<void>;
  resume(): void;
  saveDevices(): Promise<BoardState>;
  /** Ends the run; 'saved' after options.save wrote its snapshot. */
  stop(reason: 'saved' | 'stopped'): void;
  /** Ends the run with an error (the run's result rejects with it). */
  fail(err: unknown): void;
}

/** How much of COM1's output a RegExp trigger looks at (the most recent bytes). */
const SERIAL_WINDOW_BYTES = 64 * 1024;

export class RunSnapshots {
  private captures = new Set<Promise<unknown>>();
  private saved: SnapshotInfo | undefined;
  private triggered = false;
  private readonly trigger: { value: number; flag: SharedArrayBuffer } | undefined;
  private window = Buffer.alloc(0);
  private unwatchRequest: (() => void) | undefined;

  constructor(private readonly run: RunControl) {
    const value = run.save?.onDebugExit;
    this.trigger = value === undefined ? undefined : { value, flag: new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT) };
  }

  /** What the board needs: the saved device state to take, and the debug-exit trigger. */
  get boardSpec(): BoardSnapshotSpec | undefined {
    const restore = this.run.machine.restore?.devices;
    if (!restore && !this.trigger) return undefined;
    return { ...(restore ? { restore } : {}), ...(this.trigger ? { trigger: this.trigger } : {}) };
  }

  /**
   * Call just before the vCPUs start, and await what it returns once they have: for a restore,
   * every vCPU is asked to pause before its first instruction, the saved state is loaded while
   * they wait, and they go on. Rejects (the run should then be stopped) if the state cannot be loaded.
   */
  start(): () => Promise<void> {
    this.watchDebugExit();
    const restore = this.run.machine.restore;
    if (!restore) {
      this.watchRequest();
      return () => Promise.resolve();
    }
    // Requests made before a vCPU's thread runs wait for it: each pauses before its first KVM_RUN.
    const paused = this.run.pause();
    return async () => {
      restore.check(); // the memory's checksums, while the vCPU threads start and build the board
      await paused;
      if (this.run.machine.vcpus.some((vcpu) => vcpu.state !== 'paused')) return; // stopped meanwhile
      this.run.machine.warnings.push(...restore.apply());
      this.run.resume();
      this.watchRequest(); // only now: a capture's pause must not meet the restore's resume
    };
  }

  /** COM1's sink, watched for options.save.onSerial (the chunk reaches `sink` first). */
  watchSerial(sink: SerialSink): SerialSink {
    const pattern = this.run.save?.onSerial;
    if (pattern === undefined) return sink;
    const needle = typeof pattern === 'string' ? Buffer.from(pattern) : undefined;
    return (chunk) => {
      const delivered = sink(chunk);
      if (!this.triggered) {
        this.window = Buffer.concat([this.window, chunk]);
        const matched = needle ? this.window.includes(needle) : (pattern as RegExp).test(this.window.toString('utf8'));
        if (matched) this.fire();
        // Keep enough to find a pattern that straddles two chunks.
        const keep = needle ? needle.length - 1 : SERIAL_WINDOW_BYTES;
        if (this.window.length > keep) this.window = this.window.subarray(this.window.length - keep);
      }
      return delivered;
    };
  }

  /** run.snapshot(path, options). */
  snapshot(path: string, options?: SnapshotOptions): Promise<SnapshotInfo> {
    const capture = captureGuest(this.run, path, options);
    this.captures.add(capture);
    const forget = (): void => void this.captures.delete(capture);
    capture.then(forget, forget);
    return capture;
  }

  /** Settles once no capture is reading the VM (call before closing it). */
  async settled(): Promise<void> {
    while (this.captures.size > 0) await Promise.allSettled([...this.captures]);
  }

  /** The snapshot options.save wrote, for the result. */
  get savedInfo(): SnapshotInfo | undefined {
    return this.saved;
  }

  /** The run ended: stop waiting for the debug-exit trigger. */
  finish(): void {
    this.unwatchRequest?.();
    if (this.trigger && !this.triggered) {
      this.triggered = true;
      Atomics.store(new Int32Array(this.trigger.flag), 0, 1);
      Atomics.notify(new Int32Array(this.trigger.flag), 0);
    }
  }

  private watchRequest(): void {
    const request = this.run.save?.request;
    if (!request || this.unwatchRequest) return;
    const fired = (): void => {
      if (!this.triggered) this.fire();
    };
    if (request.aborted) return fired();
    request.addEventListener('abort', fired, { once: true });
    this.unwatchRequest = () => request.removeEventListener('abort', fired);
  }

  private watchDebugExit(): void {
    if (!this.trigger) return;
    const flag = new Int32Array(this.trigger.flag);
    const wait = Atomics.waitAsync(flag, 0, 0);
    const fired = (): void => {
      if (!this.triggered) this.fire();
    };
    if (wait.async) void wait.value.then(fired);
    else fired();
  }

  /** options.save's point has come: save, then end the run or let it go on. */
  private fire(): void {
    this.triggered = true;
    const save = this.run.save;
    if (!save) return;
    this.snapshot(save.path).then(
      (info) => {
        this.saved = info;
        if (save.then === 'resume') this.run.resume();
        else this.run.stop('saved');
      },
      (err: unknown) => this.run.fail(err),
    );
  }
}
