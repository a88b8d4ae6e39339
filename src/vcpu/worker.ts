/**
 * The vCPU thread's entry point. It receives one job at a time (a vCPU created by the main thread,
 * guest memory, the serial rings and the control block), builds the board and runs the exit loop
 * until the run ends, then reports back and waits for the next job: threads are pooled so that a
 * VM per test case stays cheap.
 */
import { parentPort } from 'node:worker_threads';
import { loadBios } from '../bios/lazy.js';
import { saveBoardState } from '../board/board-state.js';
import { COM_PORTS, createPcBoardFromSpec, createVcpuLocalBus, localDevices, type Board } from '../board/pc-board.js';
import { DeviceMailbox, Doorbell, remoteDevices } from '../board/mailbox.js';
import { formatVcpuState } from '../debug/register-dump.js';
import { toErrorMessage } from '../kvm/error.js';
import { VcpuFd } from '../kvm/ioctls.js';
import { native } from '../kvm/native.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { VcpuControl } from './control.js';
import { applyResetState } from '../arch/x86/boot-cpu.js';
import { createExitObserver, LineWriter, startSingleStep } from './exit-observers.js';
import { runVcpu, type LoopHooks, type LoopVcpu } from './exit-loop.js';
import type { CloseFdRequest, VcpuJob, VcpuThreadReply } from './thread.js';

if (!parentPort) throw new Error('vcpu worker must run in a worker thread');
const port = parentPort;

/** The loop's hooks: pausing always; debugging and tracing as the job asks (none: the fast loop). */
function loopHooks(job: VcpuJob, vcpu: VcpuFd, memory: GuestMemory, control: VcpuControl, board: Board | undefined): LoopHooks {
  const hooks: LoopHooks = {
    // Paused for the main thread (pause() or the debugger): report, then sleep until told.
    paused: (why) => {
      port.postMessage({ type: 'paused', why } satisfies VcpuThreadReply);
      for (;;) {
        const command = control.waitForCommand();
        if (command !== 'save-devices') return command;
        // A snapshot: this board's device state, and still paused.
        const devices = board ? saveBoardState(board, COM_PORTS) : { devices: {}, unsaved: [] };
        port.postMessage({ type: 'devices', devices } satisfies VcpuThreadReply);
      }
    },
    describe: () => formatVcpuState(vcpu.getRegs(), vcpu.getSregs(), memory.bytes, (linear) => vcpu.translate(linear)),
    outputErrors: () => LineWriter.takeErrors(),
  };
  const chipset = board?.chipset;
  // ACPI S3 (one vCPU, whose board is here): sleep until the wake event, then resume at the waking vector.
  if (chipset) {
    hooks.suspend = (stopRequested) => {
      const resumed = chipset.resumeFromS3(stopRequested);
      if (resumed === undefined) return { reason: 'stopped' };
      if (resumed.kind === 'reboot') return { reason: 'reset' };
      applyResetState(vcpu, resumed.entry);
      return undefined;
    };
  }
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

/** The vCPU fd as the exit loop sees it. */
function loopVcpu(fd: VcpuFd): LoopVcpu {
  const run = fd.kvmRun;
  return {
    run: () => fd.run(),
    exit: () => run.exit(),
    clearImmediateExit: () => {
      run.immediateExit = false;
    },
    getMpState: () => fd.getMpState(),
    getRegs: () => fd.getRegs(),
    setRegs: (regs) => fd.setRegs(regs),
  };
}

port.on('message', async (job: VcpuJob | CloseFdRequest) => {
  if ('type' in job) {
    // Between jobs: a VM fd to close through the backend (the kernel destroys the VM meanwhile).
    native().close(job.fd);
    port.postMessage({ type: 'closed' } satisfies VcpuThreadReply);
    return;
  }
  let reply: VcpuThreadReply;
  try {
    if (job.bios && !job.remote) await loadBios(); // only BIOS boots import the BIOS
    const vcpu = VcpuFd.attach(job.vcpuFd, job.runAddr, job.runSize);
    const memory = GuestMemory.attach(job.memoryAddr, job.memorySize);
    // One vCPU: its board lives here, so an exit never crosses threads. Several: a board thread's.
    let board: Board | undefined;
    const control = new VcpuControl(job.control);
    const devices = job.remote
      ? remoteDevices(
          new DeviceMailbox(job.remote.mailbox),
          new Doorbell(job.remote.doorbell),
          job.remote.deviceNames,
          createVcpuLocalBus(job.memorySize),
        )
      : localDevices((board = createPcBoardFromSpec(job)), (deadline) => control.publishDeadline(deadline));
    devices.pollTimers(); // publishes the first timer deadline (a restored board's timers may be armed)
    const hooks = loopHooks(job, vcpu, memory, control, board);
    port.postMessage({ type: 'started' } satisfies VcpuThreadReply);
    reply = { type: 'result', result: runVcpu(loopVcpu(vcpu), devices, control, hooks) };
  } catch (err) {
    reply = { type: 'error', error: toErrorMessage(err) };
  }
  port.postMessage(reply);
});
