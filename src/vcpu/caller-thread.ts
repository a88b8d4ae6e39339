/**
 * A vCPU run on the caller's own thread instead of a worker: for a one-vCPU run that should not
 * pay for a thread (a worker is a Node environment of its own: tens of milliseconds to start and
 * ~10 MiB, which is most of what `tskvm run` of a tiny guest cost). kvmtool and Firecracker run
 * a vCPU per thread too, but their threads cost nothing to start.
 *
 * The exit loop runs in slices. A slice timer (src/kvm/slice-timer.ts) ends KVM_RUN every
 * SLICE_MS, or sooner when a device timer is due, and between slices the event loop runs: serial
 * output is pumped, input read, signals and timeouts handled. It runs only when it has something
 * to do (eventLoopHasWork: a timer due, an fd ready, immediates queued), or at least every
 * TURN_GAP_MS: a turn costs ~0.2 ms here, the host having left its code cold, and a guest that
 * computes without a word to the host would pay it every slice (2% of its speed) for nothing.
 * Requests come through the same control block as for a worker (a kick to this thread sets
 * immediate_exit, so the next KVM_RUN returns at once), and a pause or an ACPI sleep waits asynchronously instead of blocking the
 * thread. The slow-reader rule holds as with a worker: output waits in the TX ring, never in a
 * write, so no exit ever blocks on the host.
 *
 * Not for runs that write while the guest runs (--trace, --step: a blocked write would stall the
 * event loop) or that a debugger drives: those keep a worker (CallerThread.suits).
 */
import { s3NapMs, type ConnectedPcChipset } from '../board/chipset.js';
import { native } from '../kvm/native.js';
import { SliceTimer } from '../kvm/slice-timer.js';
import { HALT_POLL_INTERVAL_MS, type VcpuControl } from './control.js';
import {
  finishLoop,
  handleRequests,
  KICK,
  PAUSE,
  runToKick,
  startLoop,
  SUSPEND,
  type LoopRun,
  type VcpuOutcome,
  type VcpuRunResult,
} from './exit-loop.js';
import { attachJob, debugHooks, resumeAfterS3, saveJobDevices, type AttachedJob } from './job.js';
import type { VcpuJob, VcpuRunner, VcpuThreadEvents } from './thread.js';

/** The longest slice: how long the event loop may wait for its turn, once it has work, while the guest runs. */
export const SLICE_MS = 10;
/**
 * The longest the event loop goes without a turn while the guest runs, work or not: a bound for
 * what loopHasWork cannot see (process.nextTick callbacks queued by the exit loop, an unref'd immediate).
 */
export const TURN_GAP_MS = 50;
const NS_PER_MS = 1_000_000;
const SLICE_NS = SLICE_MS * NS_PER_MS;
const SLICE_NS_BIGINT = BigInt(SLICE_NS);
const TURN_GAP_NS = BigInt(TURN_GAP_MS * NS_PER_MS);
const HALT_POLL_NS = BigInt(HALT_POLL_INTERVAL_MS * NS_PER_MS);
const STOPPED: VcpuOutcome = { reason: 'stopped' };

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Whether this thread's event loop has work for a turn: the backend's answer (a timer due, an fd
 * ready), or Node's immediates queued (which the backend cannot see from inside the pass that
 * runs them, where this exit loop resumes). Always, where the backend cannot tell.
 */
export function eventLoopHasWork(): boolean {
  const ask = native().loopHasWork;
  return ask === undefined || ask() || process.getActiveResourcesInfo().includes('Immediate');
}

export class CallerThread implements VcpuRunner {
  /** Whether `job` can run on the caller's thread: one vCPU with its own board, no debugger, nothing written while it runs. */
  static suits(job: { remote?: VcpuJob['remote']; debug?: VcpuJob['debug'] }): boolean {
    const debug = job.debug;
    return job.remote === undefined && !debug?.debugger && !debug?.trace && !debug?.step && SliceTimer.available();
  }

  run(job: VcpuJob, events: VcpuThreadEvents = {}): Promise<VcpuRunResult> {
    return runSliced(job, events);
  }

  /** Nothing to give back: the caller's thread is the caller's. */
  release(): void {}
}

async function runSliced(job: VcpuJob, events: VcpuThreadEvents): Promise<VcpuRunResult> {
  const timer = SliceTimer.create(job.runAddr);
  let inSlice = false;
  let sliceEndNs = 0n;
  /** Arms the slice timer: the end of the slice, or the next device timer if sooner. */
  const arm = (deadlineNs: bigint | undefined): void => {
    const end = deadlineNs !== undefined && deadlineNs < sliceEndNs ? deadlineNs : sliceEndNs;
    timer.set(Number(end - process.hrtime.bigint()), SLICE_NS);
  };
  /** Out of the slice: no tick may interrupt what the thread does next (the event loop's syscalls). */
  const endSlice = (): void => {
    inSlice = false;
    timer.disarm();
  };
  try {
    // A device timer armed during a slice (the guest programmed the HPET) shortens the slice.
    const attached = await attachJob(job, (deadline) => {
      if (inSlice && deadline !== undefined) arm(deadline);
    });
    const { control } = attached;
    const hooks = debugHooks(job, attached);
    const ctx = startLoop(attached.loopVcpu, attached.devices, control, hooks);
    let outcome: VcpuOutcome | undefined;
    // The halt poll (see Vcpu.run) is made here between slices, as often as a worker is asked,
    // instead of by an interval timer: a short run then starts no host timer at all.
    const startNs = process.hrtime.bigint();
    let haltPollNs = startNs + HALT_POLL_NS;
    let turnByNs = startNs + TURN_GAP_NS;
    try {
      outcome = await requests(ctx, attached, events);
      while (outcome === undefined) {
        if (!inSlice) {
          inSlice = true;
          sliceEndNs = process.hrtime.bigint() + SLICE_NS_BIGINT;
          arm(control.deadlineNs);
        }
        const step = runToKick(ctx);
        if (step === KICK) {
          let now = process.hrtime.bigint();
          // A pause is waited out with the event loop running, and with no ticks to interrupt it.
          if (now >= turnByNs || control.pending('pause') || eventLoopHasWork()) {
            endSlice();
            await nextTurn();
            now = process.hrtime.bigint();
            turnByNs = now + TURN_GAP_NS;
          } else {
            // The timer ticks on, every SLICE_MS; a device deadline before its next tick re-arms it.
            sliceEndNs = now + SLICE_NS_BIGINT;
            const deadline = control.deadlineNs;
            if (deadline !== undefined && deadline < sliceEndNs) arm(deadline);
          }
          if (job.irqchip && now >= haltPollNs) {
            control.note('poll-halt');
            haltPollNs = now + HALT_POLL_NS;
          }
          // A slice that ended at a device timer's deadline: its interrupt is raised now, not
          // when the deadline watcher's millisecond timeout comes round (a worker waits for that).
          const due = control.deadlineNs;
          if (due !== undefined && due <= now) attached.devices.pollTimers();
          outcome = await requests(ctx, attached, events);
        } else if (step === SUSPEND) {
          endSlice();
          outcome = await sleepInS3(attached, control);
        } else {
          endSlice();
          outcome = step;
        }
      }
    } catch (err) {
      control.retractThread();
      throw err;
    }
    return finishLoop(ctx, outcome);
  } finally {
    timer.delete();
  }
}

/** The main thread's requests, with a pause waited out here without blocking the event loop. */
async function requests(ctx: LoopRun, attached: AttachedJob, events: VcpuThreadEvents): Promise<VcpuOutcome | undefined> {
  // Between slices this thread is out of KVM_RUN, and the kick of a request made meanwhile (the
  // halt poll's) would only end the next slice at once: its immediate_exit is cleared before the
  // requests are looked at, so that one made after that (during a pause) still ends the slice.
  attached.loopVcpu.clearImmediateExit();
  const outcome = handleRequests(ctx);
  if (outcome !== PAUSE) return outcome;
  const { control } = attached;
  control.take('pause'); // pausing anyway: a pause asked for meanwhile is answered by this one
  events.onPaused?.({ kind: 'interrupt' });
  for (;;) {
    const command = await control.waitForCommandAsync();
    // A snapshot: this board's device state, and still paused.
    if (command === 'save-devices') {
      events.onDevices?.(saveJobDevices(attached));
      continue;
    }
    return command === 'end' || control.stopRequested ? STOPPED : undefined;
  }
}

/**
 * ACPI S3 on this thread: the wake event is waited for with timers (as resumeFromS3 does with
 * Atomics.wait in a worker), then the vCPU resumes at the waking vector, or the machine reboots.
 */
async function sleepInS3(attached: AttachedJob, control: VcpuControl): Promise<VcpuOutcome | undefined> {
  const chipset: ConnectedPcChipset | undefined = attached.board?.chipset;
  if (!chipset) return undefined; // a board without sleep states: the guest runs on
  const wakeAt = chipset.s3WakeAtNs();
  for (;;) {
    if (control.stopRequested) return STOPPED;
    const napMs = s3NapMs(wakeAt);
    if (napMs === undefined) break;
    await sleep(napMs);
  }
  return resumeAfterS3(attached.vcpu, chipset.wakeFromS3());
}
