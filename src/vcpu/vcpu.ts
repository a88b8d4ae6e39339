/**
 * A vCPU and its lifecycle (Firecracker's VcpuRunState): created → starting → running ⇄ paused →
 * stopped. Requests (pause, resume, stop, poll-input) can be made in any state; those made before
 * the thread runs wait in the control block and are answered when it starts, never dropped.
 */
import type { BiosBoardSpec } from '../bios/spec.js';
import type { BoardState } from '../board/board-state.js';
import type { BoardSnapshotSpec } from '../board/pc-board.js';
import type { FwCfgConfig } from '../devices/fw-cfg.js';
import type { RemoteBoard } from '../board/board-thread.js';
import type { SerialRings } from '../io/byte-ring.js';
import type { VcpuFd } from '../kvm/ioctls.js';
import type { KvmRegs, KvmSregs } from '../kvm/structs.js';
import type { GuestDebug } from '../kvm/x86.js';
import { HALT_POLL_INTERVAL_MS, VcpuControl } from './control.js';
import type { DebugStop, VcpuRunResult } from './exit-loop.js';
import { CallerThread } from './caller-thread.js';
import { VcpuThread, type VcpuJobDebug, type VcpuRunner } from './thread.js';

export { HALT_POLL_INTERVAL_MS } from './control.js';

/** What a vCPU needs to know of its VM. */
export interface VcpuVm {
  readonly vmFd: number;
  readonly irqchip: boolean;
  readonly memory: { readonly hostAddr: bigint; readonly size: number };
}

export interface VcpuRunOptions {
  /** Use a board thread's devices (multi-vCPU VMs) instead of a board of its own. */
  remote?: RemoteBoard;
  /** Debugger, tracing, statistics, single-step (see VcpuJobDebug). */
  debug?: VcpuJobDebug;
  /** Each pause (the vCPU then waits for resume() or stop()). */
  onPaused?: (why: DebugStop) => void;
  /** tskvm's BIOS devices on this vCPU's board (a guest booting through the BIOS). */
  bios?: BiosBoardSpec;
  /** Snapshots: device state for this vCPU's board to take, a debug-exit value that asks for a snapshot. */
  snapshot?: BoardSnapshotSpec;
  /**
   * Where the exit loop runs: 'worker' (default), a pooled worker thread; 'caller', this thread,
   * in slices between which its event loop runs (caller-thread.ts), when the run suits it (one
   * vCPU with its own board, no debugger, no --trace/--step, the addon backend), else a worker.
   */
  thread?: 'worker' | 'caller';
}

/**
 * created: no run yet; starting: run() called, the thread not yet in its loop; running; paused:
 * waiting in its thread for resume() or stop(); stopped: the run has ended.
 */
export type VcpuState = 'created' | 'starting' | 'running' | 'paused' | 'stopped';

export class Vcpu {
  private control = new VcpuControl();
  private currentState: VcpuState = 'created';
  private pauseWaiters: (() => void)[] = [];
  private deviceWaiters: ((devices: BoardState) => void)[] = [];
  private running = false;

  constructor(
    private readonly vm: VcpuVm,
    readonly fd: VcpuFd,
    readonly id: number,
  ) {}

  getRegs(): KvmRegs {
    return this.fd.getRegs();
  }

  setRegs(regs: KvmRegs): void {
    this.fd.setRegs(regs);
  }

  getSregs(): KvmSregs {
    return this.fd.getSregs();
  }

  setSregs(sregs: KvmSregs): void {
    this.fd.setSregs(sregs);
  }

  setGuestDebug(debug: GuestDebug): void {
    this.fd.setGuestDebug(debug);
  }

  get state(): VcpuState {
    // The thread's loop says it has begun in the control block, not by a message: a message
    // would wake this thread once more per run for nothing else.
    if (this.currentState === 'starting' && this.control.started) this.currentState = 'running';
    return this.currentState;
  }

  /**
   * Runs the vCPU in a worker thread (or this one: options.thread) until the guest ends the run
   * or stop() is called. The PC board's COM ports (COM1 first) are wired to `serial` (null or
   * missing: to nothing); fw_cfg, when `firmware` is given, tells the guest about the machine.
   */
  async run(serial: readonly (SerialRings | null)[], firmware?: FwCfgConfig, options: VcpuRunOptions = {}): Promise<VcpuRunResult> {
    if (this.running) throw new Error(`vCPU ${this.id} is already running`);
    const control = this.control;
    const onThisThread = options.thread === 'caller' && CallerThread.suits(options);
    if (onThisThread && control.startHeld) throw new Error(`vCPU ${this.id} is held (holdStart): it can only run in a worker thread`);
    this.running = true;
    if (this.currentState === 'created') this.currentState = 'starting';
    const onPaused = (why: DebugStop): void => {
      this.currentState = 'paused';
      for (const resolve of this.pauseWaiters.splice(0)) resolve();
      options.onPaused?.(why);
    };
    const onDevices = (devices: BoardState): void => {
      for (const resolve of this.deviceWaiters.splice(0)) resolve(devices);
    };
    // HLT does not exit under the in-kernel irqchip: ask now and then whether the guest is done
    // (on the caller's thread the slices ask: caller-thread.ts, with no host timer to start).
    let thread: VcpuRunner | undefined;
    let poll: ReturnType<typeof setInterval> | undefined;
    // The board's timers (HPET, RTC, PM timer) publish their next deadline; a kick delivers it on
    // time to a worker. On this thread the slice timer ends a slice at the deadline instead.
    const unwatch = onThisThread ? () => {} : control.watchDeadlines(this.fd.runAddr);
    try {
      thread = onThisThread ? new CallerThread() : VcpuThread.acquire();
      poll =
        this.vm.irqchip && !onThisThread
          ? setInterval(() => control.request('poll-halt', this.fd.runAddr), HALT_POLL_INTERVAL_MS)
          : undefined;
      const job = {
        vcpuId: this.id,
        debug: options.debug,
        remote: options.remote,
        vmFd: this.vm.vmFd,
        irqchip: this.vm.irqchip,
        vcpuFd: this.fd.fd,
        runAddr: this.fd.runAddr,
        runSize: this.fd.runSize,
        memoryAddr: this.vm.memory.hostAddr,
        memorySize: this.vm.memory.size,
        serial: serial.map((rings) => (rings ? { tx: rings.tx.buffer, rx: rings.rx.buffer } : null)),
        firmware,
        ...(options.bios ? { bios: options.bios } : {}),
        ...(options.snapshot ? { snapshot: options.snapshot } : {}),
        control: control.buffer,
      };
      return await thread.run(job, { onPaused, onDevices });
    } finally {
      unwatch();
      clearInterval(poll);
      this.running = false;
      this.currentState = 'stopped';
      this.control = new VcpuControl(); // a later run starts with no requests pending
      for (const resolve of this.pauseWaiters.splice(0)) resolve(); // a pause() in flight ends with the run
      for (const resolve of this.deviceWaiters.splice(0)) resolve({ devices: {}, unsaved: [] });
      thread?.release();
    }
  }

  /**
   * Before run(): its worker thread builds the board, then waits for releaseStart() before it
   * enters KVM_RUN, so that the caller can load the machine meanwhile (a stop releases it too).
   */
  holdStart(): void {
    if (this.currentState !== 'created') throw new Error(`vCPU ${this.id} has already run`);
    this.control.holdStart();
  }

  /** The machine is loaded: a held vCPU may run. */
  releaseStart(): void {
    this.control.releaseStart();
  }

  /** Ends the run (the run() promise then resolves 'stopped'), whatever the state; a later run() ends at once. */
  stop(): void {
    this.control.request('stop', this.fd.runAddr);
  }

  /**
   * Stops the vCPU wherever it is (in KVM_RUN, halted in the kernel, handling an exit, or not
   * yet started) and resolves once it waits, paused; at once if it is paused or stopped.
   */
  pause(): Promise<void> {
    if (this.state === 'paused' || this.state === 'stopped') return Promise.resolve();
    const paused = new Promise<void>((resolve) => this.pauseWaiters.push(resolve));
    this.control.request('pause', this.fd.runAddr);
    return paused;
  }

  /**
   * The device state of this vCPU's own board (a one-vCPU VM; with several, the board thread has
   * the devices): asked of the paused vCPU thread, which stays paused. Empty once the run has ended.
   */
  saveDevices(): Promise<BoardState> {
    if (this.currentState !== 'paused') throw new Error(`vCPU ${this.id} must be paused to save its devices (it is ${this.currentState})`);
    const saved = new Promise<BoardState>((resolve) => this.deviceWaiters.push(resolve));
    this.control.command('save-devices');
    return saved;
  }

  /** Lets a paused vCPU go on (nothing if it is not paused). */
  resume(): void {
    if (this.currentState !== 'paused') return;
    this.currentState = 'running';
    this.control.command('resume');
  }

  /** New host input waits for the guest: the vCPU lets its devices take it (and interrupt) now. */
  pollInput(): void {
    if (this.currentState !== 'stopped') this.control.request('poll-input', this.fd.runAddr);
  }

  /**
   * A pause request waits to be taken. A paused vCPU takes none, so one pending while it is paused
   * was made after it took its last: it will pause the vCPU again as soon as it resumes.
   */
  get pauseRequested(): boolean {
    return this.control.pending('pause');
  }

  /** An application processor that, at its last halt poll, was still waiting for INIT/SIPI. */
  get waitingForSipi(): boolean {
    return this.control.waitingForSipi;
  }

  close(): void {
    this.fd.close();
  }
}
