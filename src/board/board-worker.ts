/**
 * The board thread of a multi-vCPU VM: it owns the devices and performs every I/O and MMIO access
 * the vCPU threads leave in their mailboxes (see mailbox.ts), until told to quit. It also keeps
 * the timer devices' deadlines: it sleeps no longer than until the next one, then polls them, and
 * their interrupts reach the vCPUs through KVM_IRQ_LINE (KVM wakes a halted vCPU itself).
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
const MIN_TIMER_WAIT_MS = 1;
const NS_PER_MS = 1_000_000n;

port.once('message', async (job: BoardJob) => {
  if (job.bios) await loadBios(); // only BIOS boots import the BIOS
  const board = createPcBoardFromSpec(job);
  let deadline: bigint | undefined;
  const devices = localDevices(board, (next) => (deadline = next));
  devices.pollTimers(); // learns the first deadline (a restored board's timers may be armed)
  const names = [...board.pio.entries(), ...board.mmio.entries()].map((slot) => slot.name);
  const index = new Map(names.map((name, i) => [name, i]));
  const mailboxes = job.mailboxes.map((buffer) => new DeviceMailbox(buffer));
  const doorbell = new Doorbell(job.doorbell);
  port.postMessage({ type: 'ready', deviceNames: names, unassignedPorts: devices.unassignedPorts } satisfies BoardThreadMessage);
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
    // The timers come due whether or not the vCPUs keep the board busy.
    const waitMs = timerWaitMs();
    if (!served) doorbell.wait(seen, waitMs);
  }
  port.postMessage({ type: 'done' } satisfies BoardThreadMessage);

  /** Polls the timers if their deadline has come; how long to sleep until the next one (or the idle wait). */
  function timerWaitMs(): number {
    if (deadline === undefined) return IDLE_WAIT_MS;
    let now = process.hrtime.bigint();
    if (deadline <= now) {
      devices.pollTimers();
      now = process.hrtime.bigint();
      // A device still due right after its poll would make this loop spin: give it a millisecond.
      if (deadline !== undefined && deadline <= now) return MIN_TIMER_WAIT_MS;
    }
    if (deadline === undefined) return IDLE_WAIT_MS;
    // Whole milliseconds, rounded up: a wake-up a little late is delivered late; one early would spin.
    return Math.min(IDLE_WAIT_MS, Number((deadline - now + NS_PER_MS - 1n) / NS_PER_MS));
  }
});
