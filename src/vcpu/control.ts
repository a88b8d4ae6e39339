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
  | 'poll-input';

const REQUEST_WORDS: Readonly<Record<VcpuRequest, number>> = { stop: 0, pause: 1, 'poll-halt': 2, 'poll-input': 3 };
/** Main → vCPU thread while paused: what to do next (a ResumeCommand). */
const COMMAND = 4;
/** vCPU thread → main: at its last halt poll the vCPU was an AP still waiting for INIT/SIPI. */
const WAITING_FOR_SIPI = 5;
const CONTROL_INT32S = 6; // even, so the BigInt64 thread id after them is 8-byte aligned
const THREAD_OFFSET = CONTROL_INT32S * 4;

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
}

const NATIVE_THREADS: ThreadOps = {
  self: () => native().threadSelf(),
  kick: (runAddr, thread) => void native().kick(runAddr, thread),
};

export class VcpuControl {
  private readonly words: Int32Array;
  private readonly thread: BigInt64Array;

  constructor(
    readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(THREAD_OFFSET + 8),
    private readonly threads: ThreadOps = NATIVE_THREADS,
  ) {
    this.words = new Int32Array(buffer, 0, CONTROL_INT32S);
    this.thread = new BigInt64Array(buffer, THREAD_OFFSET, 1);
  }

  /** Main thread: make a request and kick the vCPU out of KVM_RUN (if its thread runs) to see it. */
  request(request: VcpuRequest, runAddr: bigint): void {
    Atomics.store(this.words, REQUEST_WORDS[request], 1);
    if (request === 'stop') this.command('end'); // in case it is paused
    this.kick(runAddr);
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
      const command = Atomics.exchange(this.words, COMMAND, COMMAND_NONE);
      if (command === COMMAND_RESUME) return 'resume';
      if (command === COMMAND_END) return 'end';
      if (command === COMMAND_SAVE_DEVICES) return 'save-devices';
    }
  }

  /** Main thread: let a paused vCPU go on (or end the run, or report its devices' state). */
  command(command: PausedCommand): void {
    // An end (a stop) wins over a state request still waiting to be taken.
    if (command === 'save-devices') Atomics.compareExchange(this.words, COMMAND, COMMAND_NONE, COMMAND_SAVE_DEVICES);
    else Atomics.store(this.words, COMMAND, COMMANDS[command]);
    Atomics.notify(this.words, COMMAND);
  }

  /** Called by the vCPU thread before it looks at the requests for the first time. */
  publishThread(): void {
    Atomics.store(this.thread, 0, this.threads.self());
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
