/**
 * The SMP mailbox without KVM: a vCPU-side access crosses to a board thread (a real worker
 * running serveMailbox over a real PC board) and back, with its data, the device's name and the
 * stop it caused; and the devices a vCPU thread keeps for itself (vmport) never cross.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceMailbox, Doorbell, remoteDevices } from '../../src/board/mailbox.js';
import { createVcpuLocalBus } from '../../src/board/pc-board.js';
import type { IoCpu, IoCpuRegister } from '../../src/devices/device.js';
import { VMPORT_CMD_GETVERSION, VMPORT_MAGIC, VMPORT_PORT, VMPORT_VERSION } from '../../src/devices/vmport.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const distMailbox = path.join(root, 'dist', 'board', 'mailbox.js');
const distBoard = path.join(root, 'dist', 'board', 'pc-board.js');

/** The board thread: a PC board whose COM1 transmits into `tx` and receives 'K', served until quit. */
const BOARD_THREAD = `
const { workerData, parentPort } = require('node:worker_threads');
(async () => {
  const { DeviceMailbox, Doorbell, serveMailbox } = await import(workerData.mailboxUrl);
  const { createPcBoard, localDevices, UNCONNECTED_SERIAL } = await import(workerData.boardUrl);
  const tx = new Int32Array(workerData.tx);
  let input = [0x4b];
  const board = createPcBoard({ serial: [{ transmit: (b) => { tx[1 + tx[0]] = b; tx[0]++; }, txBacklog: () => 0, receive: () => input.shift() ?? -1 }, UNCONNECTED_SERIAL] });
  const devices = localDevices(board);
  const names = [...board.pio.entries(), ...board.mmio.entries()].map((s) => s.name);
  const index = new Map(names.map((n, i) => [n, i]));
  const mailbox = new DeviceMailbox(workerData.mailbox);
  const doorbell = new Doorbell(workerData.doorbell);
  parentPort.postMessage(names);
  for (;;) {
    const seen = doorbell.rings;
    if (doorbell.quitting) break;
    if (mailbox.pending) serveMailbox(mailbox, devices, index);
    else doorbell.wait(seen, 100);
  }
  parentPort.postMessage('done');
})();
`;

describe.runIf(existsSync(distMailbox))('the device mailbox between a vCPU thread and the board thread', () => {
  const mailbox = new DeviceMailbox();
  const doorbell = new Doorbell();
  const tx = new SharedArrayBuffer(64);
  let worker: Worker;
  let names: string[];

  beforeAll(async () => {
    worker = new Worker(BOARD_THREAD, {
      eval: true,
      workerData: {
        mailboxUrl: pathToFileURL(distMailbox).href,
        boardUrl: pathToFileURL(distBoard).href,
        mailbox: mailbox.buffer,
        doorbell: doorbell.buffer,
        tx,
      },
    });
    names = await new Promise((resolve) => worker.once('message', resolve));
  });

  afterAll(async () => {
    doorbell.quit();
    await worker.terminate();
  });

  it('carries a port write, a read with its answer, string I/O and a debug-exit stop', () => {
    const devices = remoteDevices(mailbox, doorbell, names);
    expect(devices.io({ direction: 'out', size: 1, port: 0x3f8, count: 1, data: Uint8Array.of(0x48) })).toBe('COM1 (16550A)');
    const rbr = new Uint8Array(1);
    expect(devices.io({ direction: 'in', size: 1, port: 0x3f8, count: 1, data: rbr })).toBe('COM1 (16550A)');
    expect(rbr[0]).toBe(0x4b);
    devices.io({ direction: 'out', size: 1, port: 0x3f8, count: 2, data: Uint8Array.of(0x69, 0x21) });
    expect([...new Int32Array(tx).slice(0, 4)]).toEqual([3, 0x48, 0x69, 0x21]);
    const unassigned = new Uint8Array(2);
    expect(devices.io({ direction: 'in', size: 2, port: 0x1234, count: 1, data: unassigned })).toBeUndefined();
    expect([...unassigned]).toEqual([0xff, 0xff]);
    expect(devices.stop).toBeUndefined();
    devices.io({ direction: 'out', size: 4, port: 0xf4, count: 1, data: Uint8Array.of(0x2a, 0, 0, 0x80) });
    expect(devices.stop).toEqual({ reason: 'debug-exit', exitCode: 0x8000002a });
  });

  it('carries MMIO: an unassigned read is all ones', () => {
    const devices = remoteDevices(mailbox, doorbell, names);
    const data = new Uint8Array(4);
    expect(devices.mmio({ physAddr: 2 ** 33 + 8, isWrite: false, data })).toBeUndefined();
    expect([...data]).toEqual([0xff, 0xff, 0xff, 0xff]);
  });
});

describe('the mailbox built', () => {
  it('dist/board/mailbox.js exists (npm run build:ts), so the round trip above ran', () => {
    expect(existsSync(distMailbox), `${distMailbox} is missing: run npm run build:ts`).toBe(true);
  });
});

describe("the vCPU thread's own devices (vmport) with a shared board", () => {
  it('performs an access to a local port in the vCPU thread, with its registers, and never rings the board', () => {
    const mailbox = new DeviceMailbox();
    const doorbell = new Doorbell();
    const devices = remoteDevices(mailbox, doorbell, [], createVcpuLocalBus(0x1000_0000));
    const regs: Record<IoCpuRegister, bigint> = {
      rax: BigInt(VMPORT_MAGIC),
      rbx: 0n,
      rcx: BigInt(VMPORT_CMD_GETVERSION),
      rdx: 0n,
      rsi: 0n,
      rdi: 0n,
    };
    const cpu: IoCpu = { get: (r) => regs[r], set: (r, v) => void (regs[r] = v) };
    const data = new Uint8Array(4);
    expect(devices.io({ direction: 'in', size: 4, port: VMPORT_PORT, count: 1, data }, cpu)).toBe('vmport');
    expect([regs.rax, regs.rbx]).toEqual([BigInt(VMPORT_VERSION), BigInt(VMPORT_MAGIC)]);
    expect(doorbell.rings).toBe(0);
    expect(mailbox.pending).toBe(false);
  });
});
