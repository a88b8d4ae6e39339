import { describe, expect, it } from 'vitest';
import { Bus, BusError, PIO_ADDRESS_SPACE_SIZE } from '../../src/devices/bus.js';

function caught(fn: () => void): BusError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BusError);
    return e as BusError;
  }
  throw new Error('expected a BusError');
}

describe('Bus', () => {
  it('finds a device at both edges of its range and nothing just outside', () => {
    const bus = new Bus<string>();
    bus.register(0x3f8, 8, 'uart', 'serial');
    expect(bus.find(0x3f7)).toBeUndefined();
    expect(bus.find(0x3f8)).toEqual({ base: 0x3f8, length: 8, device: 'uart', name: 'serial' });
    expect(bus.find(0x3ff)?.device).toBe('uart');
    expect(bus.find(0x400)).toBeUndefined();
  });

  it('accepts adjacent ranges and routes each address to the right one', () => {
    const bus = new Bus<string>(PIO_ADDRESS_SPACE_SIZE);
    bus.register(0x64, 1, 'b', 'b');
    bus.register(0x60, 4, 'a', 'a');
    bus.register(0x65, 3, 'c', 'c');
    expect(bus.find(0x63)?.device).toBe('a');
    expect(bus.find(0x64)?.device).toBe('b');
    expect(bus.find(0x65)?.device).toBe('c');
    expect(bus.find(0x67)?.device).toBe('c');
    expect(bus.find(0x68)).toBeUndefined();
    expect(bus.find(0x5f)).toBeUndefined();
    // Repeated lookups (the last-hit cache) stay correct when the address moves around.
    for (const addr of [0x60, 0x60, 0x64, 0x61, 0x67, 0x68, 0x60]) {
      const slot = bus.find(addr);
      const expected = addr < 0x64 ? 'a' : addr === 0x64 ? 'b' : addr < 0x68 ? 'c' : undefined;
      expect(slot?.device).toBe(expected);
    }
    expect(bus.entries().map((s) => s.name)).toEqual(['a', 'b', 'c']);
  });

  it('rejects an overlap, naming both devices and ranges in hex', () => {
    const bus = new Bus<string>();
    bus.register(0x3f8, 8, 'uart', 'serial');
    const inside = caught(() => bus.register(0x3fc, 1, 'x', 'probe'));
    expect(inside.code).toBe('EBUSOVERLAP');
    expect(inside.message).toContain('probe');
    expect(inside.message).toContain('0x3fc');
    expect(inside.message).toContain('serial');
    expect(inside.message).toContain('0x3f8-0x3ff');
    // Straddling the start, straddling the end, and covering the whole range.
    expect(caught(() => bus.register(0x3f0, 9, 'x', 'x')).code).toBe('EBUSOVERLAP');
    expect(caught(() => bus.register(0x3ff, 2, 'x', 'x')).code).toBe('EBUSOVERLAP');
    expect(caught(() => bus.register(0x300, 0x200, 'x', 'x')).code).toBe('EBUSOVERLAP');
    // A rejected registration leaves the bus unchanged.
    expect(bus.entries()).toHaveLength(1);
    expect(bus.find(0x3f0)).toBeUndefined();
  });

  it('rejects empty, negative, fractional and out-of-space ranges', () => {
    const bus = new Bus<string>(PIO_ADDRESS_SPACE_SIZE);
    expect(caught(() => bus.register(0x80, 0, 'x', 'x')).code).toBe('EBUSRANGE');
    expect(caught(() => bus.register(0x80, -1, 'x', 'x')).code).toBe('EBUSRANGE');
    expect(caught(() => bus.register(-1, 1, 'x', 'x')).code).toBe('EBUSRANGE');
    expect(caught(() => bus.register(1.5, 1, 'x', 'x')).code).toBe('EBUSRANGE');
    expect(caught(() => bus.register(0xffff, 2, 'x', 'x')).code).toBe('EBUSRANGE');
    bus.register(0xffff, 1, 'top', 'top');
    expect(bus.find(0xffff)?.device).toBe('top');
  });

  it('handles large MMIO addresses', () => {
    const bus = new Bus<string>();
    bus.register(0xfee00000, 0x1000, 'lapic', 'lapic');
    bus.register(2 ** 40, 0x1000, 'high', 'high');
    expect(bus.find(0xfee00fff)?.device).toBe('lapic');
    expect(bus.find(0xfee01000)).toBeUndefined();
    expect(bus.find(2 ** 40 + 0xfff)?.device).toBe('high');
  });

  it('returns a snapshot from entries()', () => {
    const bus = new Bus<string>();
    bus.register(0, 1, 'a', 'a');
    const list = bus.entries();
    bus.register(1, 1, 'b', 'b');
    expect(list).toHaveLength(1);
    expect(bus.entries()).toHaveLength(2);
  });
});
