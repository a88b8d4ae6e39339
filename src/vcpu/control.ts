/**
 * The few words a vCPU's thread and the main thread share (a SharedArrayBuffer): the requests
 * the main thread makes (VcpuRequest), the command that lets a paused vCPU go on, and the vCPU
 * thread's pthread id so the main thread can kick it out of KVM_RUN.
 *
 * The kick protocol: the main thread stores a request, then (if the vCPU thread has published
 * its id) sets kvm_run.immediate_exit and signals the thread. The vCPU thread publishes its id,
 * then looks at the requests once before its first KVM_RUN and again after every kick, so a
 * request is never lost: either the thread sees it, or it is in (or about to enter) KVM_RUN with
 * immediate_exit set and the signal pending. Requests made before the thread runs wait in their
 * words until it does (Firecracker's VcpuEvent queue plays the same part).
 *
 * Timer deadlines: the devices' timers (HPET comparators, the RTC's alarms, the PM timer) have no
 * host timer of their own; a guest that waits for one in `hlt` sits in KVM_RUN and touches
 * nothing. So the vCPU thread publishes when the next one is due (`publishDeadline`, a
 * process.hrtime.bigint() time), and the main thread (`watchDeadlines`) sets a timeout for it
 * that makes a 'poll-timers' request: the kick brings the vCPU out of KVM_RUN, its devices raise
 * the interrupt, and KVM delivers it.
 */
import { native } from '../kvm/native.js';

/** What the main thread asks of a vCPU thread. */
export type VcpuRequest =
  /** End the run (reason 'stopped'). */
  | 'stop'
  /** Stop where it is and wait for a command (pause(), gdb's Ctrl-C, --gdb-wait). */
  | 'pause'
  /** Look at the halt state (in-kernel irqchip: HLT never exits to userspace). */
  | 'poll-halt'
  /** New host input is waiting: let the devices take it and raise their interrupts. */
  | 'poll-input'
  /** The published timer deadline has come: let the timer devices raise what is due. */
  | 'poll-timers';

/** How often a running vCPU is asked whether it has halted for good (in-kernel irqchip only). */
export const HALT_POLL_INTERVAL_MS = 20;

const REQUEST_WORDS: Readonly<Record<VcpuRequest, number>> = { stop: 0, pause: 1, 'poll-halt': 2, 'poll-input': 3, 'poll-timers': 6 };
/** Main → vCPU thread while paused: what to do next (a ResumeCommand). */
const COMMAND = 4;
/** vCPU thread → main: at its last halt poll the vCPU was an AP still waiting for INIT/SIPI. */
const WAITING_FOR_SIPI = 5;
/** vCPU thread → main: bumped each time the deadline is published (the main thread waits on it). */
const DEADLINE_SEQUENCE = 7;
/** vCPU thread → main: its exit loop has begun (what Vcpu.state reads, so no message says it). */
const STARTED = 8;
/** Main → vCPU thread: 1 while the machine is still being loaded (the thread waits before its loop). */
const START_HELD = 9;
const CONTROL_INT32S = 10; // even, so the BigInt64 words after them are 8-byte aligned
const THREAD_OFFSET = CONTROL_INT32S * 4;
/** The next timer deadline (process.hrtime.bigint() ns), NO_DEADLINE when none is armed. */
const DEADLINE_OFFSET = THREAD_OFFSET + 8;
const CONTROL_BYTES = DEADLINE_OFFSET + 8;
const NO_DEADLINE = 0n;
const NS_PER_MS = 1e6;

const COMMAND_NONE = 0;
const COMMAND_RESUME = 1;
const COMMAND_END = 2;
const COMMAND_SAVE_DEVICES = 3;
/** What a paused vCPU is told: go on, or end the run. */
export type ResumeCommand = 'resume' | 'end';
/** ... or, staying paused, report its board's device state (snapshots). */
export type PausedCommand = ResumeCommand | 'save-devices';
const COMMANDS: Readonly<Record<PausedCommand, number>> = {
  resume: COMMAND_RESUME,
  end: COMMAND_END,
  'save-devices': COMMAND_SAVE_DEVICES,
};

/** How a thread names itself and is kicked: pthread_self and the shim's kick (a fake in unit tests). */
export interface ThreadOps {
  self(): bigint;
  /** Sets kvm_run.immediate_exit at `runAddr` and signals `thread` out of KVM_RUN. */
  kick(runAddr: bigint, thread: bigint): void;
  /** The clock deadlines are in (default process.hrtime.bigint; the same in every thread). */
  nowNs?(): bigint;
}

const NATIVE_THREADS: ThreadOps = {
  self: () => native().threadSelf(),
  kick: (runAddr, thread) => void native().kick(runAddr, thread),
};

const hrtimeNs = (): bigint => process.hrtime.bigint();

export class VcpuControl {
  private readonly words: Int32Array;
  private readonly thread: BigInt64Array;
  private readonly deadline: BigInt64Array;

  constructor(
    readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(CONTROL_BYTES),
    private readonly threads: ThreadOps = NATIVE_THREADS,
  ) {
    this.words = new Int32Array(buffer, 0, CONTROL_INT32S);
    this.thread = new BigInt64Array(buffer, THREAD_OFFSET, 1);
    this.deadline = new BigInt64Array(buffer, DEADLINE_OFFSET, 1);
  }

  /** Main thread: make a request and kick the vCPU out of KVM_RUN (if its thread runs) to see it. */
  request(request: VcpuRequest, runAddr: bigint): void {
    Atomics.store(this.words, REQUEST_WORDS[request], 1);
    if (request === 'stop') {
      this.command('end'); // in case it is paused
      this.releaseStart(); // in case it waits for the load: it then ends at once
    }
    this.kick(runAddr);
  }

  /**
   * Main thread, before the run: the vCPU thread builds its board, then waits for releaseStart()
   * before its loop, while this thread still loads the machine (run.ts). Only for a thread that
   * is not this one.
   */
  holdStart(): void {
    Atomics.store(this.words, START_HELD, 1);
  }

  /** Main thread: the machine is loaded (its RAM and registers written before this store), the vCPU may run. */
  releaseStart(): void {
    Atomics.store(this.words, START_HELD, 0);
    Atomics.notify(this.words, START_HELD);
  }

  get startHeld(): boolean {
    return Atomics.load(this.words, START_HELD) !== 0;
  }

  /** vCPU thread: waits while the start is held (a stop releases it). */
  waitForStart(): void {
    while (Atomics.load(this.words, START_HELD) !== 0) Atomics.wait(this.words, START_HELD, 1);
  }

  /**
   * vCPU thread: a request of its own, seen at its next look at the requests. No kick: the thread
   * is out of KVM_RUN (a vCPU on the caller's thread polls its halt state so between slices).
   */
  note(request: VcpuRequest): void {
    Atomics.store(this.words, REQUEST_WORDS[request], 1);
  }

  /** Either thread: whether a request is pending (a stop stays pending once made). */
  pending(request: VcpuRequest): boolean {
    return Atomics.load(this.words, REQUEST_WORDS[request]) !== 0;
  }

  /** vCPU thread: takes (and clears) a pending request. A stop is never cleared. */
  take(request: VcpuRequest): boolean {
    if (request === 'stop') return this.pending('stop');
    return Atomics.exchange(this.words, REQUEST_WORDS[request], 0) !== 0;
  }

  get stopRequested(): boolean {
    return Atomics.load(this.words, REQUEST_WORDS.stop) !== 0;
  }

  /** vCPU thread: report whether it is an application processor still waiting for INIT/SIPI. */
  setWaitingForSipi(waiting: boolean): void {
    Atomics.store(this.words, WAITING_FOR_SIPI, waiting ? 1 : 0);
  }

  get waitingForSipi(): boolean {
    return Atomics.load(this.words, WAITING_FOR_SIPI) !== 0;
  }

  /** vCPU thread, paused: sleeps until the main thread says what to do. */
  waitForCommand(): PausedCommand {
    for (;;) {
      Atomics.wait(this.words, COMMAND, COMMAND_NONE);
      const command = this.takeCommand();
      if (command) return command;
    }
  }

  /** The same, for a vCPU run on the caller's thread (caller-thread.ts): waits without blocking its event loop. */
  async waitForCommandAsync(): Promise<PausedCommand> {
    for (;;) {
      const wait = Atomics.waitAsync(this.words, COMMAND, COMMAND_NONE);
      if (wait.async) await wait.value;
      const command = this.takeCommand();
      if (command) return command;
    }
  }

  /** The command the main thread left, cleared; undefined when there is none (a spurious wake). */
  private takeCommand(): PausedCommand | undefined {
    const command = Atomics.exchange(this.words, COMMAND, COMMAND_NONE);
    if (command === COMMAND_RESUME) return 'resume';
    if (command === COMMAND_END) return 'end';
    if (command === COMMAND_SAVE_DEVICES) return 'save-devices';
    return undefined;
  }

  /** Main thread: let a paused vCPU go on (or end the run, or report its devices' state). */
  command(command: PausedCommand): void {
    // An end (a stop) wins over a state request still waiting to be taken.
    if (command === 'save-devices') Atomics.compareExchange(this.words, COMMAND, COMMAND_NONE, COMMAND_SAVE_DEVICES);
    else Atomics.store(this.words, COMMAND, COMMANDS[command]);
    Atomics.notify(this.words, COMMAND);
  }

  /**
   * vCPU thread: the next timer interrupt is due at `deadlineNs` (undefined: none armed). The
   * main thread's watchDeadlines() hears of it; call it only when the deadline changed, and after
   * every 'poll-timers' (the watcher has spent its timeout then).
   */
  publishDeadline(deadlineNs: bigint | undefined): void {
    // 0 means none: a deadline at time 0 (long past) is as due as one at 1.
    Atomics.store(this.deadline, 0, deadlineNs === undefined ? NO_DEADLINE : deadlineNs > NO_DEADLINE ? deadlineNs : 1n);
    Atomics.add(this.words, DEADLINE_SEQUENCE, 1);
    Atomics.notify(this.words, DEADLINE_SEQUENCE);
  }

  /** The published deadline (undefined: none). */
  get deadlineNs(): bigint | undefined {
    const at = Atomics.load(this.deadline, 0);
    return at === NO_DEADLINE ? undefined : at;
  }

  /**
   * Main thread: keeps a timeout set for the published deadline; when it passes, requests
   * 'poll-timers' (kicking the vCPU out of KVM_RUN). Returns the function that stops watching.
   * The wait on the sequence word is asynchronous and the timeout unref'd: neither keeps the
   * process alive.
   */
  watchDeadlines(runAddr: bigint): () => void {
    const now = this.threads.nowNs ?? hrtimeNs;
    let watching = true;
    let timeout: ReturnType<typeof setTimeout> | undefined;
    const arm = (): void => {
      clearTimeout(timeout);
      timeout = undefined;
      const at = this.deadlineNs;
      if (at === undefined || !watching) return;
      // setTimeout rounds to whole milliseconds and may fire a little early: fire() checks.
      timeout = setTimeout(fire, Math.max(0, Math.ceil(Number(at - now()) / NS_PER_MS)));
      timeout.unref();
    };
    const fire = (): void => {
      timeout = undefined;
      const at = this.deadlineNs;
      if (!watching || at === undefined) return;
      if (at > now()) return arm();
      this.request('poll-timers', runAddr);
    };
    const watch = async (): Promise<void> => {
      let seen = Atomics.load(this.words, DEADLINE_SEQUENCE);
      arm();
      while (watching) {
        const wait = Atomics.waitAsync(this.words, DEADLINE_SEQUENCE, seen);
        if (wait.async) await wait.value;
        seen = Atomics.load(this.words, DEADLINE_SEQUENCE);
        arm();
      }
    };
    void watch();
    return () => {
      watching = false;
      clearTimeout(timeout);
      Atomics.notify(this.words, DEADLINE_SEQUENCE);
    };
  }

  /** Called by the vCPU thread before it looks at the requests for the first time. */
  publishThread(): void {
    Atomics.store(this.thread, 0, this.threads.self());
    Atomics.store(this.words, STARTED, 1);
  }

  /** Either thread: the exit loop has begun (publishThread), whether or not it still runs. */
  get started(): boolean {
    return Atomics.load(this.words, STARTED) !== 0;
  }

  /** Called by the vCPU thread once it no longer runs this vCPU. */
  retractThread(): void {
    Atomics.store(this.thread, 0, 0n);
  }

  private kick(runAddr: bigint): void {
    const thread = Atomics.load(this.thread, 0);
    if (thread !== 0n) this.threads.kick(runAddr, thread);
  }
}
