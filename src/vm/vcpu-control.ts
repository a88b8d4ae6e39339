/**
 * The few words a vCPU's thread and the main thread share: a stop request, and the vCPU thread's
 * pthread id so the main thread can kick it out of KVM_RUN.
 *
 * The kick protocol: the main thread stores STOP, then (if the vCPU thread has published its id)
 * sets kvm_run.immediate_exit and signals the thread. The vCPU thread publishes its id before its
 * first KVM_RUN and checks STOP before every KVM_RUN, so a stop is never lost: either it sees STOP,
 * or it is in (or about to enter) KVM_RUN with immediate_exit set and the signal pending.
 */
import { native } from '../kvm/native.js';

const STOP = 0;
/** The main thread wants the vCPU to look at its halt state (in-kernel irqchip: HLT never exits). */
const POLL = 1;
/** The main thread (gdb's Ctrl-C) wants the vCPU stopped for the debugger. */
const PAUSE = 2;
/** Main → vCPU thread while stopped for the debugger: what to do next (DebugCommand). */
const COMMAND = 3;
/** vCPU thread → main: at its last poll the vCPU was an AP still waiting for INIT/SIPI. */
const WAITING_FOR_SIPI = 4;
const CONTROL_INT32S = 6; // even, so the BigInt64 thread id after them is 8-byte aligned

export const DEBUG_COMMAND_NONE = 0;
export const DEBUG_COMMAND_RESUME = 1;
export const DEBUG_COMMAND_END = 2;
export type DebugCommand = typeof DEBUG_COMMAND_RESUME | typeof DEBUG_COMMAND_END;
const THREAD_OFFSET = CONTROL_INT32S * 4; // BigInt64 after the int32 words

export class VcpuControl {
  private readonly words: Int32Array;
  private readonly thread: BigInt64Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(THREAD_OFFSET + 8)) {
    this.words = new Int32Array(buffer, 0, CONTROL_INT32S);
    this.thread = new BigInt64Array(buffer, THREAD_OFFSET, 1);
  }

  get stopRequested(): boolean {
    return Atomics.load(this.words, STOP) !== 0;
  }

  /** vCPU thread: takes (and clears) a pending poll request. */
  takePoll(): boolean {
    return Atomics.exchange(this.words, POLL, 0) !== 0;
  }

  /** vCPU thread: report whether it is an application processor still waiting for INIT/SIPI. */
  setWaitingForSipi(waiting: boolean): void {
    Atomics.store(this.words, WAITING_FOR_SIPI, waiting ? 1 : 0);
  }

  get waitingForSipi(): boolean {
    return Atomics.load(this.words, WAITING_FOR_SIPI) !== 0;
  }

  /** vCPU thread: takes (and clears) a pending pause request. */
  takePause(): boolean {
    return Atomics.exchange(this.words, PAUSE, 0) !== 0;
  }

  /** vCPU thread, stopped for the debugger: sleeps until the main thread says what to do. */
  waitForCommand(): DebugCommand {
    for (;;) {
      Atomics.wait(this.words, COMMAND, DEBUG_COMMAND_NONE);
      const command = Atomics.exchange(this.words, COMMAND, DEBUG_COMMAND_NONE);
      if (command === DEBUG_COMMAND_RESUME || command === DEBUG_COMMAND_END) return command;
    }
  }

  /** Main thread: let a vCPU stopped for the debugger go on (or end the run). */
  command(command: DebugCommand): void {
    Atomics.store(this.words, COMMAND, command);
    Atomics.notify(this.words, COMMAND);
  }

  /** Main thread: stop a running vCPU for the debugger (it reports back when stopped). */
  requestPause(runAddr: bigint): void {
    Atomics.store(this.words, PAUSE, 1);
    this.kick(runAddr);
  }

  /** Called by the vCPU thread before its first KVM_RUN. */
  publishThread(): void {
    Atomics.store(this.thread, 0, native().threadSelf());
  }

  /** Called by the vCPU thread once it no longer runs this vCPU. */
  retractThread(): void {
    Atomics.store(this.thread, 0, 0n);
  }

  /** Main thread: ask the vCPU to stop and kick it out of KVM_RUN. Safe to call repeatedly. */
  requestStop(runAddr: bigint): void {
    Atomics.store(this.words, STOP, 1);
    this.command(DEBUG_COMMAND_END); // in case it is stopped for the debugger
    this.kick(runAddr);
  }

  /** Main thread: kick the vCPU out of KVM_RUN so it checks whether it is halted for good. */
  requestPoll(runAddr: bigint): void {
    Atomics.store(this.words, POLL, 1);
    this.kick(runAddr);
  }

  private kick(runAddr: bigint): void {
    const thread = Atomics.load(this.thread, 0);
    if (thread !== 0n) native().kick(runAddr, thread);
  }
}
