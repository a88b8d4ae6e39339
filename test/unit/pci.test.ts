/**
 * The PCI host bridge: configuration mechanism #1 at 0xCF8/0xCFC, enumeration of QEMU's PC
 * functions (i440FX, PIIX3, PIIX4 PM) and pci-testdev, BAR sizing and decoding, and the 0xCF9
 * byte inside CONFIG_ADDRESS. pci-testdev is driven the way kvm-unit-tests' lib/pci-testdev.c does.
 */
import { describe, expect, it } from 'vitest';
import { Bus, PIO_ADDRESS_SPACE_SIZE } from '../../src/devices/bus.js';
import type { MmioDevice, PioDevice } from '../../src/devices/device.js';
import { handleIo, handleMmio } from '../../src/devices/dispatch.js';
import { PCI_COMMAND, PCI_COMMAND_IO, PCI_COMMAND_MEMORY } from '../../src/devices/pci/function.js';
import {
  PCI_CONFIG_ADDRESS_PORT,
  PCI_CONFIG_PORT_COUNT,
  PciHostBridge,
  PciIoWindow,
  PciMmioWindow,
  type PciHostBridgeState,
} from '../../src/devices/pci/host.js';
import { i440fxHostBridge, Piix4Pm, piix3IsaBridge } from '../../src/devices/pci/i440fx.js';
import { PciTestdev } from '../../src/devices/pci/testdev.js';
import { ResetControlRegister, type ResetKind } from '../../src/devices/reset-control.js';
import { UsageError } from '../../src/errors.js';

const IO_WINDOW = 0xc000;
const MMIO_WINDOW = 0xe0000000;

function machine() {
  const resets: ResetKind[] = [];
  const host = new PciHostBridge(new ResetControlRegister({ reset: (k) => resets.push(k) }));
  host.attach(0, 0, i440fxHostBridge());
  host.attach(1, 0, piix3IsaBridge());
  host.attach(1, 3, new Piix4Pm(0x600, 9));
  const testdev = new PciTestdev();
  host.attach(host.freeSlot(), 0, testdev);
  testdev.assignBar(0, 0xfebff000);
  testdev.assignBar(1, 0xc000);
  testdev.enableDecoding();
  const pio = new Bus<PioDevice>(PIO_ADDRESS_SPACE_SIZE);
  pio.register(PCI_CONFIG_ADDRESS_PORT, PCI_CONFIG_PORT_COUNT, host, 'pci');
  pio.register(IO_WINDOW, 0x10000 - IO_WINDOW, new PciIoWindow(host, IO_WINDOW), 'pci-io');
  const mmio = new Bus<MmioDevice>();
  mmio.register(MMIO_WINDOW, 0xfec00000 - MMIO_WINDOW, new PciMmioWindow(host, MMIO_WINDOW), 'pci-mmio');
  const io = (direction: 'in' | 'out', port: number, size: 1 | 2 | 4, value = 0): number => {
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, value >>> 0, true);
    handleIo({ direction, port, size, count: 1, data: data.subarray(0, size) }, pio);
    return (new DataView(data.buffer).getUint32(0, true) & (size === 4 ? 0xffffffff : (1 << (size * 8)) - 1)) >>> 0;
  };
  const mem = (isWrite: boolean, physAddr: number, size: number, value = 0): number => {
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = (value >>> (8 * i)) & 0xff;
    handleMmio({ physAddr, isWrite, data }, mmio);
    let out = 0;
    for (let i = 0; i < size; i++) out |= data[i]! << (8 * i);
    return out >>> 0;
  };
  const cfg = (dev: number, fn: number, reg: number): number => (0x80000000 | (dev << 11) | (fn << 8) | reg) >>> 0;
  const readConfig = (dev: number, fn: number, reg: number, size: 1 | 2 | 4 = 4): number => {
    io('out', 0xcf8, 4, cfg(dev, fn, reg & ~3));
    return io('in', 0xcfc + (reg & 3), size);
  };
  const writeConfig = (dev: number, fn: number, reg: number, value: number, size: 1 | 2 | 4 = 4): void => {
    io('out', 0xcf8, 4, cfg(dev, fn, reg & ~3));
    io('out', 0xcfc + (reg & 3), size, value);
  };
  return { host, testdev, io, mem, readConfig, writeConfig, resets };
}

describe('PCI configuration mechanism #1', () => {
  it('enumerates QEMU PC functions: 00:00.0 i440FX, 00:01.0 PIIX3 (multi-function), 00:01.3 PIIX4 PM, 00:02.0 pci-testdev', () => {
    const { readConfig } = machine();
    const found: string[] = [];
    for (let dev = 0; dev < 32; dev++) {
      if (readConfig(dev, 0, 0) === 0xffffffff) continue; // no device
      const fns = readConfig(dev, 0, 0x0c) & 0x800000 ? 8 : 1; // header type bit 7: multi-function
      for (let fn = 0; fn < fns; fn++) {
        const id = readConfig(dev, fn, 0);
        if (id === 0xffffffff) continue;
        const cls = readConfig(dev, fn, 8) >>> 8;
        found.push(`${dev}.${fn} ${(id & 0xffff).toString(16)}:${(id >>> 16).toString(16)} class ${cls.toString(16).padStart(6, '0')}`);
      }
    }
    expect(found).toEqual([
      '0.0 8086:1237 class 060000',
      '1.0 8086:7000 class 060100',
      '1.3 8086:7113 class 068000',
      '2.0 1b36:5 class ff0000',
    ]);
  });

  it('reads all ones without the enable bit, off bus 0, or for an empty slot, and ignores writes there', () => {
    const { io, readConfig } = machine();
    io('out', 0xcf8, 4, 0x00000000); // enable bit clear
    expect(io('in', 0xcfc, 4)).toBe(0xffffffff);
    io('out', 0xcf8, 4, 0x80010000); // bus 1
    expect(io('in', 0xcfc, 4)).toBe(0xffffffff);
    expect(readConfig(5, 0, 0)).toBe(0xffffffff);
    // CONFIG_ADDRESS reads back, reserved bits 30-24 clear.
    io('out', 0xcf8, 4, 0xff00_1003);
    expect(io('in', 0xcf8, 4)).toBe(0x80001003);
  });

  it("ORs CONFIG_ADDRESS bits 1-0 into the data port's offset, as QEMU does (kvm-unit-tests' pci_find_dev relies on it)", () => {
    const { io } = machine();
    // pci_config_readw(dev, PCI_DEVICE_ID): CONFIG_ADDRESS ends in 2, then a word read of 0xCFC.
    io('out', 0xcf8, 4, 0x80001002); // 00:02.0, register 2
    expect(io('in', 0xcfc, 2)).toBe(0x0005); // pci-testdev's device ID
    io('out', 0xcf8, 4, 0x80001000);
    expect(io('in', 0xcfc, 2)).toBe(0x1b36); // its vendor ID
    io('out', 0xcf8, 4, 0x80001002);
    expect(io('in', 0xcfe, 2)).toBe(0x0005); // 2 | 2
  });

  it('sizes and moves BARs: all ones read back as the size mask, with the space bits', () => {
    const { readConfig, writeConfig } = machine();
    expect(readConfig(2, 0, 0x10)).toBe(0xfebff000); // memory, 32-bit
    expect(readConfig(2, 0, 0x14)).toBe(0xc001); // I/O
    writeConfig(2, 0, 0x10, 0xffffffff);
    expect(readConfig(2, 0, 0x10)).toBe(0xfffff000); // 4 KiB
    writeConfig(2, 0, 0x14, 0xffffffff);
    expect(readConfig(2, 0, 0x14)).toBe(0xffffff01); // 256 ports
    writeConfig(2, 0, 0x10, 0xfebfe000);
    expect(readConfig(2, 0, 0x10)).toBe(0xfebfe000);
    // Read-only fields stay: the vendor ID and class.
    writeConfig(2, 0, 0, 0);
    expect(readConfig(2, 0, 0) & 0xffff).toBe(0x1b36);
    // Byte and word accesses to CONFIG_DATA.
    expect(readConfig(2, 0, 2, 2)).toBe(0x0005);
    expect(readConfig(1, 3, 0x40, 4)).toBe(0x601); // PIIX4 PMBA: 0x600, I/O
    expect(readConfig(1, 3, 0x3c, 1)).toBe(9); // SCI on IRQ 9
  });

  it('passes a byte write to 0xCF9 to the reset control register, not CONFIG_ADDRESS', () => {
    const { io, resets } = machine();
    io('out', 0xcf8, 4, 0x80000000);
    io('out', 0xcf9, 1, 0x06);
    expect(resets).toEqual(['hard']);
    expect(io('in', 0xcf8, 4)).toBe(0x80000000);
    expect(io('in', 0xcf9, 1)).toBe(0x02);
  });
});

describe('pci-testdev', () => {
  /** lib/pci-testdev.c's pci_testdev_one over either BAR. */
  function runTests(read: (off: number, size: number) => number, write: (off: number, size: number, v: number) => void): string[] {
    const names: string[] = [];
    for (let n = 0; ; n++) {
      write(0, 1, n);
      if (read(12, 4) !== 0) break;
      const width = read(1, 1);
      if (![1, 2, 4].includes(width)) break;
      const sig = read(8, 4);
      const off = read(4, 4);
      for (let i = 0; i < 16; i++) write(off, width, sig);
      const count = read(12, 4);
      if (count !== 0 && count !== 16) break;
      let name = '';
      for (let i = 0; ; i++) {
        const c = read(16 + i, 1);
        if (c === 0) break;
        name += String.fromCharCode(c);
      }
      names.push(`${name}:${count}`);
    }
    return names;
  }

  it('runs its three memory tests and three port tests, counting each write to the test offset', () => {
    const { mem, io } = machine();
    const memBar = 0xfebff000;
    expect(
      runTests(
        (o, s) => mem(false, memBar + o, s),
        (o, s, v) => void mem(true, memBar + o, s, v),
      ),
    ).toEqual(['mmio-no-eventfd:16', 'mmio-wildcard-eventfd:16', 'mmio-datamatch-eventfd:16']);
    expect(
      runTests(
        (o, s) => io('in', 0xc000 + o, s as 1 | 2 | 4),
        (o, s, v) => void io('out', 0xc000 + o, s as 1 | 2 | 4, v),
      ),
    ).toEqual(['portio-no-eventfd:16', 'portio-wildcard-eventfd:16', 'portio-datamatch-eventfd:16']);
  });

  it('counts only matching writes in a datamatch test, and reads 0 past the header or with no test', () => {
    const { io } = machine();
    io('out', 0xc000, 1, 2); // portio-datamatch-eventfd
    const off = io('in', 0xc004, 4);
    io('out', 0xc000 + off, 1, 0x11); // wrong data
    io('out', 0xc000 + off, 1, 0xfa);
    expect(io('in', 0xc00c, 4)).toBe(1);
    expect(io('in', 0xc000 + 100, 1)).toBe(0);
    io('out', 0xc000, 1, 7); // no such test
    expect(io('in', 0xc001, 1)).toBe(0);
  });

  it('stops decoding a BAR when its space is disabled in COMMAND', () => {
    const { io, mem, writeConfig, readConfig } = machine();
    io('out', 0xc000, 1, 0);
    expect(io('in', 0xc001, 1)).toBe(1);
    const command = readConfig(2, 0, PCI_COMMAND, 2);
    writeConfig(2, 0, PCI_COMMAND, command & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY), 2);
    expect(io('in', 0xc001, 1)).toBe(0xff);
    expect(mem(false, 0xfebff001, 1)).toBe(0xff);
  });
});

describe('PCI host bridge: state and restore', () => {
  it('round-trips CONFIG_ADDRESS, every function (moved BARs, pci-testdev counts) and 0xCF9 through JSON', () => {
    const a = machine();
    a.writeConfig(2, 0, 0x14, 0xc100); // move pci-testdev's I/O BAR
    a.writeConfig(0, 0, 0x0d, 0x40, 1); // the host bridge's latency timer
    a.io('out', 0xc100, 1, 1); // select portio-wildcard-eventfd
    const offset = a.io('in', 0xc104, 4);
    a.io('out', 0xc100 + offset, 1, 0x55);
    a.io('out', 0xc100 + offset, 1, 0x66);
    a.io('out', 0xcf9, 1, 0x08); // FULL_RST kept, no reset
    a.io('out', 0xcf8, 4, 0x80001010);
    const saved = JSON.parse(JSON.stringify(a.host.state())) as PciHostBridgeState;
    expect(Object.keys(saved.functions)).toEqual(['00.0', '01.0', '01.3', '02.0']);

    const b = machine();
    b.host.restore(saved);
    expect(b.io('in', 0xcf8, 4)).toBe(0x80001010);
    expect(b.readConfig(2, 0, 0x14)).toBe(0xc101);
    expect(b.readConfig(0, 0, 0x0d, 1)).toBe(0x40);
    expect(b.io('in', 0xcf9, 1)).toBe(0x08);
    expect(b.io('in', 0xc100 + 12, 4)).toBe(2); // the test's count went on
    expect(b.resets).toEqual([]);
  });

  it("refuses another machine's bridge, a changed identity and malformed state, changing nothing", () => {
    const a = machine();
    const good = a.host.state();
    const withFn = (name: string, config: number[]): PciHostBridgeState => ({
      ...good,
      functions: { ...good.functions, [name]: { config } },
    });
    const changedId = [...good.functions['00.0']!.config];
    changedId[2] = 0x38; // device ID 0x1238
    const bad: unknown[] = [
      null,
      { ...good, address: 0x40000000 }, // reserved bits
      { ...good, functions: { '00.0': good.functions['00.0'] } }, // functions missing
      withFn('03.0', good.functions['02.0']!.config), // one this machine lacks
      withFn('00.0', changedId),
      withFn('00.0', good.functions['00.0']!.config.slice(1)),
      { ...good, functions: { ...good.functions, '02.0': { ...good.functions['02.0'], current: [7, -1] } } },
      { ...good, resetControl: { value: 4 } },
      { ...good, resetControl: undefined },
    ];
    a.writeConfig(0, 0, 0x0d, 0x20, 1);
    for (const state of bad)
      expect(() => a.host.restore(state as PciHostBridgeState), JSON.stringify(state)?.slice(0, 80)).toThrow(UsageError);
    expect(a.readConfig(0, 0, 0x0d, 1)).toBe(0x20);
  });
});
