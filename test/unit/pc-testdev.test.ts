/** QEMU's pc-testdev ports as kvm-unit-tests uses them (emulator: 0xE0; eventinj: 0xE4; ioapic/apic: 0x2000+n; iomem). */
import { describe, expect, it } from 'vitest';
import { Bus, PIO_ADDRESS_SPACE_SIZE } from '../../src/devices/bus.js';
import type { PioDevice } from '../../src/devices/device.js';
import { handleIo } from '../../src/devices/dispatch.js';
import {
  PC_TESTDEV_IOMEM_SIZE,
  PC_TESTDEV_IOPORT,
  PC_TESTDEV_IRQ_LINES,
  PC_TESTDEV_IRQ_PORT,
  PC_TESTDEV_PORTS_SIZE,
  PcTestdevIomem,
  PcTestdevIrqLines,
  PcTestdevPorts,
} from '../../src/devices/pc-testdev.js';
import { UsageError } from '../../src/errors.js';

function rig() {
  const lines: [number, boolean][] = [];
  const flushed: number[] = [];
  const host = { setIrqLine: (line: number, level: boolean) => lines.push([line, level]), flushPage: (page: number) => flushed.push(page) };
  const pio = new Bus<PioDevice>(PIO_ADDRESS_SPACE_SIZE);
  pio.register(PC_TESTDEV_IOPORT, PC_TESTDEV_PORTS_SIZE, new PcTestdevPorts(host), 'pc-testdev');
  pio.register(PC_TESTDEV_IRQ_PORT, PC_TESTDEV_IRQ_LINES, new PcTestdevIrqLines(host), 'pc-testdev-irq');
  const io = (direction: 'in' | 'out', port: number, size: 1 | 2 | 4, value = 0, count = 1) => {
    const data = new Uint8Array(Math.max(4, size * count));
    for (let i = 0; i < size; i++) data[i] = (value >>> (8 * i)) & 0xff;
    handleIo({ direction, port, size, count, data: data.subarray(0, size * count) }, pio);
    return new DataView(data.buffer).getUint32(0, true) >>> 0;
  };
  return { lines, flushed, io };
}

describe('pc-testdev', () => {
  it('keeps a 32-bit register at 0xE0 that byte, word and dword accesses see in place', () => {
    const { io } = rig();
    io('out', 0xe0, 4, 0x12345678);
    expect(io('in', 0xe0, 4)).toBe(0x12345678);
    expect(io('in', 0xe1, 1) & 0xff).toBe(0x56);
    expect(io('in', 0xe2, 2) & 0xffff).toBe(0x1234);
    io('out', 0xe1, 1, 0xab);
    expect(io('in', 0xe0, 4)).toBe(0x1234ab78);
    io('out', 0xe2, 2, 0xcdef);
    expect(io('in', 0xe0, 4)).toBe(0xcdefab78);
  });

  it('shows the same register byte-wise at 0xE8', () => {
    const { io } = rig();
    io('out', 0xe8, 4, 0xdeadbeef);
    expect(io('in', 0xe0, 4)).toBe(0xdeadbeef);
    expect(io('in', 0xeb, 1) & 0xff).toBe(0xde);
  });

  it('takes string I/O (rep outsb/insb) through the register', () => {
    const data = new Uint8Array([1, 2, 3]);
    const pio = new Bus<PioDevice>(PIO_ADDRESS_SPACE_SIZE);
    const dev = new PcTestdevPorts({ setIrqLine: () => {} });
    pio.register(0xe0, PC_TESTDEV_PORTS_SIZE, dev, 'pc-testdev');
    handleIo({ direction: 'out', port: 0xe0, size: 1, count: 3, data }, pio);
    expect(dev.pioRead(0, 1)).toBe(3); // the last element written stays
    const back = new Uint8Array(2);
    handleIo({ direction: 'in', port: 0xe0, size: 1, count: 2, data: back }, pio);
    expect([...back]).toEqual([3, 3]);
  });

  it('reports a 4-byte write to 0xE4 as a page flush and reads 0 there', () => {
    const { io, flushed } = rig();
    io('out', 0xe4, 4, 0x12345);
    io('out', 0xe4, 1, 0x1); // not a valid access size: dropped
    expect(flushed).toEqual([0x12000]);
    expect(io('in', 0xe4, 4)).toBe(0);
  });

  it('drives IRQ lines 0-23 with byte writes at 0x2000 + n', () => {
    const { io, lines } = rig();
    io('out', 0x2000 + 0x0e, 1, 1);
    io('out', 0x2000 + 0x0e, 1, 0);
    io('out', 0x2000 + 23, 1, 0x80);
    expect(lines).toEqual([
      [14, true],
      [14, false],
      [23, true],
    ]);
    // realmode.flat's `outl %eax, %dx` to 0x200B with EAX = 1: split into bytes, as QEMU's memory core does.
    lines.length = 0;
    io('out', 0x200b, 4, 1);
    expect(lines).toEqual([
      [11, true],
      [12, false],
      [13, false],
      [14, false],
    ]);
    lines.length = 0;
    io('out', 0x2000 + 22, 4, 0x0101); // past line 23: dropped
    expect(lines).toEqual([
      [22, true],
      [23, true],
    ]);
  });

  it('has 64 KiB of iomem that reads back what was written', () => {
    const mem = new PcTestdevIomem();
    mem.mmioWrite(0x100, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    const out = new Uint8Array(4);
    mem.mmioRead(0x102, out);
    expect([...out]).toEqual([3, 4, 5, 6]);
    mem.mmioWrite(PC_TESTDEV_IOMEM_SIZE - 1, new Uint8Array([9, 9]));
    const last = new Uint8Array(1);
    mem.mmioRead(PC_TESTDEV_IOMEM_SIZE - 1, last);
    expect(last[0]).toBe(9);
  });
});

describe('pc-testdev: state and restore', () => {
  it('round-trips the register, the line levels (driven again) and the iomem through JSON', () => {
    const host = { setIrqLine: () => {} };
    const ports = new PcTestdevPorts(host);
    ports.pioWrite(0, 4, 0xdeadbeef);
    const lines = new PcTestdevIrqLines(host);
    lines.pioWrite(11, 1, 1);
    lines.pioWrite(3, 1, 1);
    lines.pioWrite(3, 1, 0);
    const iomem = new PcTestdevIomem();
    iomem.mmioWrite(0xfff0, Uint8Array.of(1, 2, 3));

    const json = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
    const driven: [number, boolean][] = [];
    const ports2 = new PcTestdevPorts(host);
    ports2.restore(json(ports.state()));
    expect(ports2.pioRead(0, 4)).toBe(0xdeadbeef);
    const lines2 = new PcTestdevIrqLines({ setIrqLine: (line, level) => driven.push([line, level]) });
    lines2.restore(json(lines.state()));
    expect(driven).toEqual([[11, true]]);
    const iomem2 = new PcTestdevIomem();
    iomem2.restore(json(iomem.state()));
    const back = new Uint8Array(3);
    iomem2.mmioRead(0xfff0, back);
    expect([...back]).toEqual([1, 2, 3]);
  });

  it('refuses malformed state with a UsageError', () => {
    const host = { setIrqLine: () => {} };
    expect(() => new PcTestdevPorts(host).restore({ data: [1, 2, 3] })).toThrow(UsageError);
    expect(() => new PcTestdevPorts(host).restore({ data: [1, 2, 3, 300] })).toThrow(UsageError);
    expect(() => new PcTestdevIrqLines(host).restore({ levels: [true] })).toThrow(UsageError);
    expect(() => new PcTestdevIrqLines(host).restore({ levels: new Array<number>(24).fill(1) as unknown as boolean[] })).toThrow(
      UsageError,
    );
    expect(() => new PcTestdevIomem().restore({ data: 'AAAA' })).toThrow(UsageError); // 3 bytes, not 64 KiB
    expect(() => new PcTestdevIomem().restore({ data: '!'.repeat(PC_TESTDEV_IOMEM_SIZE) })).toThrow(UsageError);
    expect(() => new PcTestdevIomem().restore(null as unknown as { data: string })).toThrow(UsageError);
  });
});
