/**
 * The vCPU thread's entry point. It receives one job at a time (a vCPU created by the main thread,
 * guest memory, the serial rings and the control block), builds the board and runs the exit loop
 * until the run ends, then reports back and waits for the next job: threads are pooled so that a
 * VM per test case stays cheap.
 */
import { parentPort } from 'node:worker_threads';
import { VcpuFd } from '../kvm/ioctls.js';
import { createPcBoardFromSpec } from './board.js';
import { DeviceMailbox, Doorbell, remoteDevices } from './device-mailbox.js';
import { GuestMemory } from './guest-memory.js';
import { DEBUG_COMMAND_RESUME, VcpuControl } from './vcpu-control.js';
import { createExitObserver, startSingleStep } from './exit-observers.js';
import { runVcpu, type LoopHooks } from './vcpu-loop.js';
import { localDevices } from './dispatch.js';
import type { VcpuJob, VcpuThreadReply } from './vcpu-thread.js';

if (!parentPort) throw new Error('vcpu-worker must run in a worker thread');
const port = parentPort;

/** The loop's hooks: pausing always; debugging and tracing as the job asks (none: the fast loop). */
function loopHooks(job: VcpuJob, vcpu: VcpuFd, memory: GuestMemory, control: VcpuControl): LoopHooks {
  const hooks: LoopHooks = {
    // Stopped for the main thread (pause() or the debugger): report, then sleep until told.
    debugStop: (why) => {
      control.takePause(); // stopping anyway: a pause asked for meanwhile is answered by this stop
      port.postMessage({ type: 'debug-stop', why } satisfies VcpuThreadReply);
      return control.waitForCommand() === DEBUG_COMMAND_RESUME;
    },
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

port.on('message', (job: VcpuJob) => {
  let reply: VcpuThreadReply;
  try {
    const vcpu = VcpuFd.attach(job.vcpuFd, job.runAddr, job.runSize);
    const memory = GuestMemory.attach(job.memoryAddr, job.memorySize);
    // One vCPU: its board lives here, so an exit never crosses threads. Several: a board thread's.
    const devices = job.remote ? remoteDevices(new DeviceMailbox(job.remote.mailbox), new Doorbell(job.remote.doorbell), job.remote.deviceNames) : localDevices(createPcBoardFromSpec(job));
    const control = new VcpuControl(job.control);
    reply = { type: 'result', result: runVcpu(vcpu, memory, devices, control, loopHooks(job, vcpu, memory, control)) };
  } catch (err) {
    const e = err as Error & { code?: string };
    reply = { type: 'error', message: e.message, code: e.code, stack: e.stack };
  }
  port.postMessage(reply);
});
