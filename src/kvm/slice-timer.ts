/**
 * A slice timer: a POSIX timer (CLOCK_MONOTONIC, SIGEV_THREAD_ID) that sends the kick signal to
 * the thread that made it, with its vCPU's kvm_run as the signal's value, so the handler sets
 * immediate_exit there. An exit loop on a thread that also runs an event loop (Node's main
 * thread) arms it for the length of a slice, so that KVM_RUN returns in time even when the guest
 * makes no exit (halted, or spinning in registers) and the thread gets back to its event loop.
 */
import { KvmError } from './error.js';
import { native } from './native.js';

export class SliceTimer {
  private deleted = false;

  private constructor(private readonly id: number) {}

  /** Whether this thread's backend has slice timers (the addon does, ffi-rs does not). */
  static available(): boolean {
    return native().sliceTimerCreate !== undefined;
  }

  /** A disarmed timer for the kvm_run at `runAddr`, kicking the calling thread. */
  static create(runAddr: bigint): SliceTimer {
    const create = native().sliceTimerCreate;
    if (!create) throw new Error('this backend has no slice timers: run the vCPU in a worker thread');
    const id = create(runAddr);
    if (id < 0) throw KvmError.fromErrno('timer_create', id);
    return new SliceTimer(id);
  }

  /** First tick after `firstNs`, then one every `periodNs`; (0, 0) disarms. */
  set(firstNs: number, periodNs: number): void {
    if (this.deleted) return;
    // timer_settime takes 0 as "disarm": a tick that is due now is made 1 ns away instead.
    const first = periodNs === 0 && firstNs === 0 ? 0 : Math.max(1, Math.round(firstNs));
    const r = native().sliceTimerSet!(this.id, first, Math.round(periodNs));
    if (r < 0) throw KvmError.fromErrno('timer_settime', r);
  }

  disarm(): void {
    this.set(0, 0);
  }

  /** Deletes the timer (before its kvm_run is unmapped); a later set() does nothing. */
  delete(): void {
    if (this.deleted) return;
    this.deleted = true;
    native().sliceTimerDelete!(this.id);
  }
}
