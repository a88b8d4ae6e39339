/**
 * The board thread of a multi-vCPU VM: it owns the devices and performs every I/O and MMIO access
 * the vCPU threads leave in their mailboxes (see device-mailbox.ts), until told to quit.
 */
import { parentPort } from 'node:worker_threads';
import { loadBios } from '../bios/lazy.js';
import { saveBoardState } from './board-state.js';
import { COM_PORTS, createPcBoardFromSpec, localDevices } from './pc-board.js';
import type { BoardJob, BoardThreadMessage } from './board-thread.js';
import { DeviceMailbox, Doorbell, serveMailbox } from './mailbox.js';

if (!parentPort) throw new Error('board-worker must run in a worker thread');
const port = parentPort;

/** How long the board thread sleeps between looks when nobody rings (a safety net, not a tick). */
const IDLE_WAIT_MS = 100;

port.once('message', async (job: BoardJob) => {
  if (job.bios) await loadBios(); // only BIOS boots import the BIOS
  const board = createPcBoardFromSpec(job);
  const devices = localDevices(board);
  const names = [...board.pio.entries(), ...board.mmio.entries()].map((slot) => slot.name);
  const index = new Map(names.map((name, i) => [name, i]));
  const mailboxes = job.mailboxes.map((buffer) => new DeviceMailbox(buffer));
  const doorbell = new Doorbell(job.doorbell);
  port.postMessage({ type: 'ready', deviceNames: names } satisfies BoardThreadMessage);
  for (;;) {
    const seen = doorbell.rings;
    if (doorbell.quitting) break;
    if (doorbell.takeInput()) devices.pollInput();
    if (doorbell.takeSave()) port.postMessage({ type: 'devices', devices: saveBoardState(board, COM_PORTS) } satisfies BoardThreadMessage);
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
