/**
 * The vCPU thread's entry point. It receives one job at a time (a vCPU created by the main thread,
 * guest memory, the serial rings and the control block), builds the board and runs the exit loop
 * until the run ends, then reports back and waits for the next job: threads are pooled so that a
 * VM per test case stays cheap. Here a pause or an ACPI sleep simply blocks the thread.
 */
import { parentPort } from 'node:worker_threads';
import { toErrorMessage } from '../kvm/error.js';
import { native } from '../kvm/native.js';
import { runVcpu, type LoopHooks } from './exit-loop.js';
import { attachJob, debugHooks, resumeAfterS3, saveJobDevices, type AttachedJob } from './job.js';
import type { CloseFdRequest, VcpuJob, VcpuThreadReply } from './thread.js';

if (!parentPort) throw new Error('vcpu worker must run in a worker thread');
const port = parentPort;

/** The loop's hooks: pausing (blocking this thread until told), ACPI S3, and what the job asks for debugging. */
function loopHooks(job: VcpuJob, attached: AttachedJob): LoopHooks {
  const { control, board, vcpu } = attached;
  const hooks = debugHooks(job, attached);
  // Paused for the main thread (pause() or the debugger): report, then sleep until told.
  hooks.paused = (why) => {
    port.postMessage({ type: 'paused', why } satisfies VcpuThreadReply);
    for (;;) {
      const command = control.waitForCommand();
      if (command !== 'save-devices') return command;
      // A snapshot: this board's device state, and still paused.
      port.postMessage({ type: 'devices', devices: saveJobDevices(attached) } satisfies VcpuThreadReply);
    }
  };
  const chipset = board?.chipset;
  // ACPI S3 (one vCPU, whose board is here): sleep until the wake event, then resume at the waking vector.
  if (chipset) {
    hooks.suspend = (stopRequested) => {
      const resumed = chipset.resumeFromS3(stopRequested);
      return resumed === undefined ? { reason: 'stopped' } : resumeAfterS3(vcpu, resumed);
    };
  }
  return hooks;
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
    const attached = await attachJob(job);
    const hooks = loopHooks(job, attached);
    attached.control.waitForStart(); // the main thread may still be loading the machine
    reply = { type: 'result', result: runVcpu(attached.loopVcpu, attached.devices, attached.control, hooks) };
  } catch (err) {
    reply = { type: 'error', error: toErrorMessage(err) };
  }
  port.postMessage(reply);
});
