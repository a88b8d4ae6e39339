/**
 * The map of ports no device decodes, which the addon's exit loop uses to take those exits without
 * JavaScript: each bit must say what handleIo would do with an access starting at that port.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DeviceMailbox, Doorbell, remoteDevices } from '../../src/board/mailbox.js';
import { createPcBoard, createVcpuLocalBus, localDevices, UNCONNECTED_SERIAL } from '../../src/board/pc-board.js';
import { VMPORT_PORT } from '../../src/devices/vmport.js';
import { Bus, PIO_ADDRESS_SPACE_SIZE } from '../../src/devices/bus.js';
import type { PioDevice } from '../../src/devices/device.js';
import { PORT_MAP_BYTES, unassignedPortMap } from '../../src/devices/dispatch.js';

const unassigned = (map: Uint8Array, port: number): boolean => (map[port >>> 3]! & (1 << (port & 7))) !== 0;
const device: PioDevice = { pioRead: () => 0, pioWrite: () => {} };

/** Every port of the map against the bus's own lookup. */
function expectMatches(map: Uint8Array, pio: Bus<PioDevice>): void {
  expect(map.length).toBe(PORT_MAP_BYTES);
  const wrong: number[] = [];
  for (let port = 0; port < PIO_ADDRESS_SPACE_SIZE; port++) if (unassigned(map, port) !== (pio.find(port) === undefined)) wrong.push(port);
  expect(wrong).toEqual([]);
}

describe('unassignedPortMap', () => {
  it('marks exactly the ports no range covers, for any set of ranges (byte edges, whole bytes, the last port)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 1, max: 40 })), { maxLength: 12 }), (ranges) => {
        const pio = new Bus<PioDevice>(PIO_ADDRESS_SPACE_SIZE);
        for (const [base, length] of ranges) {
          try {
            pio.register(base, Math.min(length, PIO_ADDRESS_SPACE_SIZE - base), device, `d${base}`);
          } catch {
            // an overlap: the bus refuses it, and the map must not show it either
          }
        }
        expectMatches(unassignedPortMap(pio), pio);
      }),
      { numRuns: 60 },
    );
  });

  it("matches the PC board's buses, and is made again when a device is registered later", () => {
    const board = createPcBoard({ serial: [UNCONNECTED_SERIAL] });
    const devices = localDevices(board);
    const first = devices.unassignedPorts!;
    expectMatches(first, board.pio);
    expect(unassigned(first, 0x80)).toBe(true);
    expect(unassigned(first, 0x3f8)).toBe(false);
    expect(devices.unassignedPorts).toBe(first);
    board.pio.register(0x80, 1, device, 'post codes');
    const second = devices.unassignedPorts!;
    expect(unassigned(second, 0x80)).toBe(false);
    expectMatches(second, board.pio);
  });

  it("takes the board thread's map on a vCPU thread, less the ports that thread decodes itself (vmport)", () => {
    const boardMap = new Uint8Array(PORT_MAP_BYTES).fill(0xff);
    const local = createVcpuLocalBus(2 ** 20);
    const devices = remoteDevices(new DeviceMailbox(), new Doorbell(), [], local, boardMap);
    const map = devices.unassignedPorts!;
    expect(unassigned(map, VMPORT_PORT)).toBe(false);
    expect(unassigned(map, 0x80)).toBe(true);
    expect(unassigned(boardMap, VMPORT_PORT)).toBe(true); // the board's own map is left as it was
    expect(remoteDevices(new DeviceMailbox(), new Doorbell(), [], local).unassignedPorts).toBeUndefined();
  });
});
