/**
 * What a vCPU job turns into, whichever thread runs it (a worker of its own, worker.ts, or the
 * caller's thread, caller-thread.ts): the vCPU and guest memory attached, the board built (or a
 * board thread's devices reached through the mailbox), and the exit loop's hooks for debugging
 * and tracing. How a pause or an ACPI sleep waits is the running thread's own business.
 */
import { applyResetState } from '../arch/x86/boot-cpu.js';
import { loadBios } from '../bios/lazy.js';
import { COM_PORTS, createPcBoardFromSpec, createVcpuLocalBus, localDevices, type Board } from '../board/pc-board.js';
import { DeviceMailbox, Doorbell, remoteDevices } from '../board/mailbox.js';
import { saveBoardState, type BoardState } from '../board/board-state.js';
import type { ResumeFromS3 } from '../board/chipset.js';
import { formatVcpuState } from '../debug/register-dump.js';
import type { ExitDevices } from '../devices/dispatch.js';
import { VcpuFd } from '../kvm/ioctls.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { VcpuControl } from './control.js';
import { createExitObserver, LineWriter, startSingleStep } from './exit-observers.js';
import type { LoopHooks, LoopVcpu, VcpuOutcome } from './exit-loop.js';
import type { VcpuJob } from './thread.js';

export interface AttachedJob {
  readonly vcpu: VcpuFd;
  readonly memory: GuestMemory;
  readonly control: VcpuControl;
  /** The board, when it lives in this thread (one vCPU); undefined with a board thread's devices. */
  readonly board: Board | undefined;
  readonly devices: ExitDevices;
  readonly loopVcpu: LoopVcpu;
}

/**
 * Attaches the job's vCPU, memory and devices in this thread. `onDeadline` hears each timer
 * deadline the board publishes, after the control block has it.
 */
export async function attachJob(job: VcpuJob, onDeadline?: (deadlineNs: bigint | undefined) => void): Promise<AttachedJob> {
  if (job.bios && !job.remote) await loadBios(); // only BIOS boots import the BIOS
  const vcpu = VcpuFd.attach(job.vcpuFd, job.runAddr, job.runSize);
  const memory = GuestMemory.attach(job.memoryAddr, job.memorySize);
  const control = new VcpuControl(job.control);
  // One vCPU: its board lives here, so an exit never crosses threads. Several: a board thread's.
  let board: Board | undefined;
  const devices = job.remote
    ? remoteDevices(
        new DeviceMailbox(job.remote.mailbox),
        new Doorbell(job.remote.doorbell),
        job.remote.deviceNames,
        createVcpuLocalBus(job.memorySize),
        job.remote.unassignedPorts,
      )
    : localDevices((board = createPcBoardFromSpec(job)), (deadline) => {
        control.publishDeadline(deadline);
        onDeadline?.(deadline);
      });
  devices.pollTimers(); // publishes the first timer deadline (a restored board's timers may be armed)
  return { vcpu, memory, control, board, devices, loopVcpu: loopVcpu(vcpu) };
}

/** The device state of the board in this thread (none with a board thread: that one saves its own). */
export function saveJobDevices(job: AttachedJob): BoardState {
  return job.board ? saveBoardState(job.board, COM_PORTS) : { devices: {}, unsaved: [] };
}

/** The run after an ACPI S3 wake: a reboot ends it (reset); else the vCPU goes on at the waking vector. */
export function resumeAfterS3(vcpu: VcpuFd, resumed: ResumeFromS3): VcpuOutcome | undefined {
  if (resumed.kind === 'reboot') return { reason: 'reset' };
  applyResetState(vcpu, resumed.entry);
  return undefined;
}

/** The loop's hooks for debugging and tracing, as the job asks (none: the fast loop). */
export function debugHooks(job: VcpuJob, attached: AttachedJob): LoopHooks {
  const { vcpu, memory } = attached;
  const hooks: LoopHooks = {
    describe: () => formatVcpuState(vcpu.getRegs(), vcpu.getSregs(), memory.bytes, (linear) => vcpu.translate(linear)),
    outputErrors: () => LineWriter.takeErrors(),
  };
  const debug = job.debug;
  if (!debug) return hooks;
  hooks.observer = createExitObserver(debug, vcpu, job.vcpuId);
  hooks.dumpOnExit = debug.dumpOnExit;
  if (debug.step) hooks.onStep = startSingleStep(vcpu, memory, debug.step.fd);
  if (debug.debugger) {
    hooks.debugger = true;
    hooks.waitAtStart = debug.debugger.waitAtStart;
  }
  return hooks;
}

/** The vCPU fd as the exit loop sees it (bench/create-stages.mjs runs the loop with it too). */
export function loopVcpu(fd: VcpuFd): LoopVcpu {
  const run = fd.kvmRun;
  return {
    run: () => fd.run(),
    ...(fd.runsPastUnassigned
      ? { runPastUnassigned: (unassigned: Uint8Array, handled: Float64Array) => fd.runPastUnassigned(unassigned, handled) }
      : {}),
    exit: () => run.exit(),
    clearImmediateExit: () => {
      run.immediateExit = false;
    },
    getMpState: () => fd.getMpState(),
    getRegs: () => fd.getRegs(),
    setRegs: (regs) => fd.setRegs(regs),
  };
}
