/**
 * A worker thread that runs vCPUs, one job at a time. Idle threads are kept in a small pool,
 * unref'd so they never hold the process open; a busy thread is ref'd, and is only released once
 * its vCPU has left KVM_RUN and reported back.
 */
import { Worker } from 'node:worker_threads';
import type { BoardState } from '../board/board-state.js';
import type { BoardSpec } from '../board/pc-board.js';
import type { RemoteBoard } from '../board/board-thread.js';
import { ensureThreadFdHeadroom } from '../host.js';
import { setThreadCloser } from '../kvm/background-close.js';
import { asResourceError, fromErrorMessage, type ErrorMessage } from '../kvm/error.js';
import type { DebugStop, VcpuRunResult } from './exit-loop.js';

export interface VcpuJob extends BoardSpec {
  vcpuId: number;
  vcpuFd: number;
  runAddr: bigint;
  runSize: number;
  memoryAddr: bigint;
  memorySize: number;
  debug: VcpuJobDebug | undefined;
  /** Devices in a board thread shared with other vCPUs (then `serial` and `firmware` are unused). */
  remote: RemoteBoard | undefined;
  control: SharedArrayBuffer;
}

/** Debugging and tracing, as the vCPU thread needs them (all plain data, postMessage-able). */
export interface VcpuJobDebug {
  /** A debugger (the GDB stub) drives the vCPU: stop on debug exits and pause requests. */
  debugger?: { waitAtStart: boolean };
  /** --trace: write one line per exit to this fd. */
  trace?: { fd: number; kinds: string[] | null; ports: [number, number][] | null };
  /** --stats: time every exit and return ExitStats in the result. */
  stats?: boolean;
  /** --step: single-step, writing each instruction and the registers it changed to this fd. */
  step?: { fd: number };
  /** --dump-on-exit: the registers, decoded, in the result's `state`. */
  dumpOnExit?: boolean;
  /** process.hrtime.bigint() at the start of the run, for trace timestamps (same clock in every thread). */
  startNs: bigint;
}

/** What the vCPU thread tells the main thread (Firecracker's VcpuResponse). */
export type VcpuThreadReply =
  /** Paused for the main thread, which must send a command (resume or end). */
  | { type: 'paused'; why: DebugStop }
  /** While paused, asked for its board's device state (snapshots). */
  | { type: 'devices'; devices: BoardState }
  | { type: 'result'; result: VcpuRunResult }
  | { type: 'error'; error: ErrorMessage }
  /** Between jobs: the fd of a CloseFdRequest is closed. */
  | { type: 'closed' };

/** Between jobs, the main thread may ask an idle vCPU thread to close a VM fd (see kvm/background-close.ts). */
export interface CloseFdRequest {
  type: 'close-fd';
  fd: number;
}

/** What the main thread hears while a job runs. */
export interface VcpuThreadEvents {
  onPaused?: (why: DebugStop) => void;
  onDevices?: (devices: BoardState) => void;
}

/** What runs a vCPU job: a worker thread (VcpuThread) or the caller's own (CallerThread, caller-thread.ts). */
export interface VcpuRunner {
  /** Runs one vCPU job to its end; `events` hears it start and pause. */
  run(job: VcpuJob, events?: VcpuThreadEvents): Promise<VcpuRunResult>;
  /** After the run: the runner is free for another job. */
  release(): void;
}

/** Idle threads kept for reuse; more than this are terminated when released. */
const MAX_IDLE_THREADS = 8;
const idle: VcpuThread[] = [];
/** Threads created whose event loop is not yet up (each may still open files). */
let starting = 0;
setThreadCloser((fd) => VcpuThread.closeFd(fd));

/** Beside this module: dist/vcpu/worker.js for the library, dist/bundle/worker.js for the bundled CLI (scripts/bundle.mjs). */
const workerUrl = new URL('./worker.js', import.meta.url);

export class VcpuThread implements VcpuRunner {
  // No execArgv: the caller's flags (`--input-type=module -e ...`) are not the worker's.
  private readonly worker = new Worker(workerUrl, { execArgv: [] });
  private dead = false;

  /** Still loading its modules: counted in `starting` until its first message or its end. */
  private loading = true;

  private constructor() {
    starting++;
    this.worker.unref();
    this.worker.once('message', () => this.loaded());
    // An idle (prestarted) thread that fails to load has no run listening: it is marked dead, and
    // acquire() starts another, whose run reports the error.
    this.worker.on('error', () => {
      this.dead = true;
    });
    this.worker.on('exit', () => {
      this.dead = true;
      this.loaded();
    });
  }

  private loaded(): void {
    if (!this.loading) return;
    this.loading = false;
    starting--;
  }

  static acquire(): VcpuThread {
    let thread: VcpuThread | undefined;
    while ((thread = idle.pop()) && thread.dead);
    if (thread) return thread;
    ensureThreadFdHeadroom('starting a vCPU thread', starting);
    return new VcpuThread();
  }

  /**
   * Starts one thread into the idle pool, unless one is there or starting: a caller that will
   * run a guest soon (the CLI's `run`) lets the thread load its modules while it reads the guest
   * and builds the VM. Idle threads are unref'd, so an unused one never holds the process open.
   * A hint only: when no thread can start now, acquire() says why later.
   */
  static prestart(): void {
    if (starting > 0 || idle.some((thread) => !thread.dead)) return;
    try {
      ensureThreadFdHeadroom('starting a vCPU thread', starting);
      idle.push(new VcpuThread());
    } catch {
      // acquire() reports it, if a run needs the thread.
    }
  }

  /** Runs one vCPU job to its end; `events` hears it start and pause. */
  run(job: VcpuJob, events: VcpuThreadEvents = {}): Promise<VcpuRunResult> {
    this.worker.ref();
    return new Promise<VcpuRunResult>((resolve, reject) => {
      const settle = (): void => {
        this.worker.off('message', onMessage);
        this.worker.off('error', onError);
        this.worker.off('exit', onExit);
        this.worker.unref();
      };
      const onMessage = (reply: VcpuThreadReply): void => {
        if (reply.type === 'paused') return events.onPaused?.(reply.why);
        if (reply.type === 'devices') return events.onDevices?.(reply.devices);
        if (reply.type === 'closed') return;
        settle();
        if (reply.type === 'result') return resolve(reply.result);
        reject(asResourceError(fromErrorMessage(reply.error), 'running a vCPU thread'));
      };
      const onError = (err: Error): void => {
        settle();
        this.dead = true;
        reject(asResourceError(err, 'starting a vCPU thread'));
      };
      const onExit = (code: number): void => {
        settle();
        reject(new Error(`vCPU thread exited with code ${code} during a run`));
      };
      this.worker.on('message', onMessage);
      this.worker.on('error', onError);
      this.worker.on('exit', onExit);
      this.worker.postMessage(job);
    });
  }

  /**
   * Closes `fd` through the backend in an idle thread, which stays out of the pool meanwhile;
   * undefined when no thread is idle. The thread is unref'd: a pending close never holds the
   * process open (the kernel closes what is left at exit).
   */
  static closeFd(fd: number): Promise<void> | undefined {
    let thread: VcpuThread | undefined;
    while ((thread = idle.pop()) && thread.dead);
    if (!thread) return undefined;
    const closer = thread;
    const worker = thread.worker;
    return new Promise<void>((resolve) => {
      const done = (): void => {
        worker.off('message', onMessage);
        worker.off('exit', done);
        closer.release();
        resolve();
      };
      const onMessage = (reply: VcpuThreadReply): void => {
        if (reply.type === 'closed') done();
      };
      worker.on('message', onMessage);
      worker.on('exit', done);
      worker.postMessage({ type: 'close-fd', fd } satisfies CloseFdRequest);
    });
  }

  /** Returns an idle thread to the pool (or ends it when the pool is full). */
  release(): void {
    if (this.dead) return;
    if (idle.length < MAX_IDLE_THREADS) idle.push(this);
    else void this.terminate();
  }

  terminate(): Promise<number> {
    this.dead = true;
    return this.worker.terminate();
  }

  /** Ends every idle thread (each costs ~8 MB and a few fds); the pool refills on demand. */
  static async closeIdle(): Promise<void> {
    await Promise.all(idle.splice(0).map((thread) => thread.terminate()));
  }
}
