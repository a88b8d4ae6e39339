/**
 * The board thread of a multi-vCPU VM: it owns the devices and performs every I/O and MMIO access
 * the vCPU threads leave in their mailboxes (see device-mailbox.ts), until told to quit.
 */
import { parentPort } from 'node:worker_threads';
import { VmFd } from '../kvm/ioctls.js';
import { createPcBoard, ringSerialHost, UNCONNECTED_SERIAL } from './board.js';
import type { BoardJob, BoardThreadMessage } from './board-thread.js';
import { ByteRing } from './byte-ring.js';
import { DeviceMailbox, Doorbell, serveMailbox } from './device-mailbox.js';
import { localDevices } from './dispatch.js';

if (!parentPort) throw new Error('board-worker must run in a worker thread');
const port = parentPort;

/** How long the board thread sleeps between looks when nobody rings (a safety net, not a tick). */
const IDLE_WAIT_MS = 100;

port.once('message', (job: BoardJob) => {
  const vm = VmFd.attach(job.vmFd);
  const board = createPcBoard({
    serial: job.serial.map((rings) => (rings ? ringSerialHost(new ByteRing(rings.tx), new ByteRing(rings.rx)) : UNCONNECTED_SERIAL)),
    irqLine: job.irqchip ? (irq, level) => vm.irqLine(irq, level) : undefined,
    firmware: job.firmware,
  });
  const devices = localDevices(board);
  const names = [...board.pio.entries(), ...board.mmio.entries()].map((slot) => slot.name);
  const index = new Map(names.map((name, i) => [name, i]));
  const mailboxes = job.mailboxes.map((buffer) => new DeviceMailbox(buffer));
  const doorbell = new Doorbell(job.doorbell);
  port.postMessage({ type: 'ready', deviceNames: names } satisfies BoardThreadMessage);
  for (;;) {
    const seen = doorbell.rings;
    if (doorbell.quitting) break;
    let served = false;
    for (const mailbox of mailboxes) {
      if (mailbox.pending) {
        serveMailbox(mailbox, devices, index);
        served = true;
      }
    }
    if (!served) doorbell.wait(seen, IDLE_WAIT_MS);
  }
  port.postMessage({ type: 'done' } satisfies BoardThreadMessage);
});
