import { describe, expect, it } from 'vitest';
import {
  BDA_ADDRESS,
  BIOS_AREA_ADDRESS,
  BIOS_AREA_END,
  EBDA_ADDRESS,
  EBDA_SIZE,
  HIGH_MEMORY_ADDRESS,
} from '../../src/arch/x86/pc-layout.js';
import {
  IOAPIC_DEFAULT_ADDRESS,
  LAPIC_DEFAULT_ADDRESS,
  MP_CONFIG_TABLE_ADDRESS,
  MP_ENTRY_BUS,
  MP_ENTRY_IOAPIC,
  MP_ENTRY_IO_INTERRUPT,
  MP_ENTRY_LOCAL_INTERRUPT,
  MP_ENTRY_PROCESSOR,
  MP_FLOATING_POINTER_ADDRESS,
  MP_INT_TYPE_EXTINT,
  MP_INT_TYPE_INT,
  MP_INT_TYPE_NMI,
  MP_MAX_CPUS,
  MP_TABLE_AREA_END,
  writeBiosDataArea,
  writeMpTable,
} from '../../src/arch/x86/pc-tables.js';

const MIB = 1024 * 1024;
const view = (m: Uint8Array) => new DataView(m.buffer, m.byteOffset, m.byteLength);
const ascii = (m: Uint8Array, at: number, n: number) => String.fromCharCode(...m.subarray(at, at + n));
const sum = (m: Uint8Array, at: number, n: number) => m.subarray(at, at + n).reduce((a, b) => a + b, 0) & 0xff;

/** Guest RAM filled with a pattern, so untouched bytes are recognisable. */
function ram(size = 16 * MIB): Uint8Array {
  return new Uint8Array(size).fill(0xcc);
}

/** Every index where `after` differs from the 0xCC fill. */
function touched(after: Uint8Array): [number, number] {
  let lo = -1;
  let hi = -1;
  for (let i = 0; i < after.length; i++) {
    if (after[i] !== 0xcc) {
      if (lo < 0) lo = i;
      hi = i;
    }
  }
  return [lo, hi];
}

describe('writeBiosDataArea', () => {
  it('fills the BDA and EBDA header as a BIOS does', () => {
    const m = ram();
    writeBiosDataArea(m, { memorySize: m.length, com: [0x3f8] });
    const v = view(m);
    expect(v.getUint16(0x400, true)).toBe(0x3f8); // COM1
    for (const at of [0x402, 0x404, 0x406]) expect(v.getUint16(at, true)).toBe(0);
    for (const at of [0x408, 0x40a, 0x40c]) expect(v.getUint16(at, true)).toBe(0); // no LPT
    expect(v.getUint16(0x40e, true)).toBe(0x9fc0); // EBDA segment
    const equipment = v.getUint16(0x410, true);
    expect((equipment >> 9) & 7).toBe(1); // one serial port
    expect((equipment >> 14) & 3).toBe(0); // no parallel ports
    expect(v.getUint16(0x413, true)).toBe(639);
    expect(v.getUint16(0x40e, true) * 16).toBe(EBDA_ADDRESS);
    expect(v.getUint16(EBDA_ADDRESS, true)).toBe(1); // EBDA size in KiB
  });

  it('counts and lists every COM port given', () => {
    const m = ram();
    writeBiosDataArea(m, { memorySize: m.length, com: [0x3f8, 0x2f8, 0x3e8, 0x2e8] });
    const v = view(m);
    expect([0, 2, 4, 6].map((i) => v.getUint16(0x400 + i, true))).toEqual([0x3f8, 0x2f8, 0x3e8, 0x2e8]);
    expect((v.getUint16(0x410, true) >> 9) & 7).toBe(4);

    writeBiosDataArea(m, { memorySize: m.length, com: [] });
    expect(v.getUint16(0x400, true)).toBe(0);
    expect((v.getUint16(0x410, true) >> 9) & 7).toBe(0);
  });

  it('touches only the BDA and the EBDA', () => {
    const m = ram(1 * MIB);
    writeBiosDataArea(m, { memorySize: m.length, com: [0x3f8] });
    const outside = [...m.keys()].filter(
      (i) => m[i] !== 0xcc && !(i >= BDA_ADDRESS && i < BDA_ADDRESS + 0x100) && !(i >= EBDA_ADDRESS && i < EBDA_ADDRESS + EBDA_SIZE),
    );
    expect(outside).toEqual([]);
    expect(m[0x4ff]).toBe(0); // the rest of the BDA is cleared
    expect(m[EBDA_ADDRESS + EBDA_SIZE - 1]).toBe(0);
  });

  it('rejects too little RAM and too many COM ports', () => {
    expect(() => writeBiosDataArea(ram(512 * 1024), { memorySize: 512 * 1024, com: [] })).toThrow(RangeError);
    const m = ram(1 * MIB);
    expect(() => writeBiosDataArea(m, { memorySize: m.length, com: [1, 2, 3, 4, 5] })).toThrow(RangeError);
  });
});

interface ParsedMp {
  fp: number;
  config: number;
  length: number;
  entries: { type: number; at: number }[];
}

/** Finds and walks the MP table as Linux's mpparse.c does. */
function parseMp(m: Uint8Array): ParsedMp {
  let fp = -1;
  // smp_scan_config(0xF0000, 0x10000): 16-byte steps, signature, length 1, checksum 0.
  for (let at = 0xf0000; at < 0x100000; at += 16) {
    if (ascii(m, at, 4) === '_MP_' && m[at + 8] === 1 && sum(m, at, 16) === 0) {
      fp = at;
      break;
    }
  }
  expect(fp).toBeGreaterThanOrEqual(0);
  const v = view(m);
  expect(m[fp + 9]).toBe(4); // spec rev 1.4
  expect(m[fp + 11]).toBe(0); // table present, not a default config
  expect(m[fp + 12]).toBe(0); // virtual-wire mode
  const config = v.getUint32(fp + 4, true);
  expect(ascii(m, config, 4)).toBe('PCMP');
  const length = v.getUint16(config + 4, true);
  expect(sum(m, config, length)).toBe(0);
  expect(m[config + 6]).toBe(4);
  const count = v.getUint16(config + 34, true);
  const sizes: Record<number, number> = { 0: 20, 1: 8, 2: 8, 3: 8, 4: 8 };
  const entries: { type: number; at: number }[] = [];
  let at = config + 44;
  for (let i = 0; i < count; i++) {
    const type = m[at] as number;
    const size = sizes[type];
    expect(size).toBeDefined();
    entries.push({ type, at });
    at += size ?? 0;
  }
  expect(at - config).toBe(length); // entry count and length agree
  return { fp, config, length, entries };
}

describe('writeMpTable', () => {
  it('writes a floating pointer a kernel finds, with valid checksums and header', () => {
    const m = ram();
    const loc = writeMpTable(m, { cpus: 1 });
    const p = parseMp(m);
    expect(p.fp).toBe(loc.floatingPointerAddress);
    expect(p.fp).toBe(MP_FLOATING_POINTER_ADDRESS);
    expect(p.config).toBe(loc.configTableAddress);
    expect(p.length).toBe(loc.length);
    expect(sum(m, p.fp, 16)).toBe(0);
    expect(sum(m, p.config, p.length)).toBe(0);
    const v = view(m);
    expect(ascii(m, p.config + 8, 8)).toBe('TSKVM   ');
    expect(ascii(m, p.config + 16, 12)).toBe('PC          ');
    expect(v.getUint32(p.config + 28, true)).toBe(0); // no OEM table
    expect(v.getUint32(p.config + 36, true)).toBe(LAPIC_DEFAULT_ADDRESS);
    expect(v.getUint16(p.config + 40, true)).toBe(0); // no extended table
    expect([...m.subarray(p.fp + 12, p.fp + 16)]).toEqual([0, 0, 0, 0]);
  });

  it('lists entries in type order: CPUs, bus, I/O APIC, I/O and local interrupts', () => {
    const m = ram();
    writeMpTable(m, { cpus: 2 });
    const p = parseMp(m);
    const types = p.entries.map((e) => e.type);
    expect(types).toEqual([
      ...Array<number>(2).fill(MP_ENTRY_PROCESSOR),
      MP_ENTRY_BUS,
      MP_ENTRY_IOAPIC,
      ...Array<number>(15).fill(MP_ENTRY_IO_INTERRUPT),
      MP_ENTRY_LOCAL_INTERRUPT,
      MP_ENTRY_LOCAL_INTERRUPT,
    ]);
    const bus = p.entries.find((e) => e.type === MP_ENTRY_BUS)?.at ?? -1;
    expect(m[bus + 1]).toBe(0);
    expect(ascii(m, bus + 2, 6)).toBe('ISA   ');
  });

  for (const cpus of [1, 2, 8]) {
    it(`has one enabled processor entry per CPU, BP only on CPU 0 (cpus=${cpus})`, () => {
      const m = ram();
      writeMpTable(m, { cpus });
      const p = parseMp(m);
      const v = view(m);
      const procs = p.entries.filter((e) => e.type === MP_ENTRY_PROCESSOR);
      expect(procs).toHaveLength(cpus);
      procs.forEach(({ at }, i) => {
        expect(m[at + 1]).toBe(i); // APIC ID
        expect(m[at + 2]).toBe(0x14); // LAPIC version
        expect(m[at + 3]).toBe(i === 0 ? 0x03 : 0x01); // EN, plus BP on CPU 0
        expect(v.getUint32(at + 4, true)).toBe(0x600);
        expect(v.getUint32(at + 8, true)).toBe(0x201);
        expect([...m.subarray(at + 12, at + 20)]).toEqual(new Array(8).fill(0));
      });
      const ioapic = p.entries.find((e) => e.type === MP_ENTRY_IOAPIC)?.at ?? -1;
      expect(m[ioapic + 1]).toBe(cpus); // ID after the CPUs'
      expect(v.getUint16(p.config + 34, true)).toBe(cpus + 1 + 1 + 15 + 2);
    });
  }

  it('describes the I/O APIC', () => {
    const m = ram();
    writeMpTable(m, { cpus: 4 });
    const p = parseMp(m);
    const at = p.entries.find((e) => e.type === MP_ENTRY_IOAPIC)?.at ?? -1;
    expect(m[at + 1]).toBe(4);
    expect(m[at + 2]).toBe(0x11);
    expect(m[at + 3]).toBe(0x01); // EN
    expect(view(m).getUint32(at + 4, true)).toBe(IOAPIC_DEFAULT_ADDRESS);

    writeMpTable(m, { cpus: 4, ioapicId: 9, ioapicAddress: 0xfec01000, lapicAddress: 0xfee10000 });
    const q = parseMp(m);
    const at2 = q.entries.find((e) => e.type === MP_ENTRY_IOAPIC)?.at ?? -1;
    expect(m[at2 + 1]).toBe(9);
    expect(view(m).getUint32(at2 + 4, true)).toBe(0xfec01000);
    expect(view(m).getUint32(q.config + 36, true)).toBe(0xfee10000);
    const irqs = q.entries.filter((e) => e.type === MP_ENTRY_IO_INTERRUPT);
    for (const { at: irq } of irqs) expect(m[irq + 6]).toBe(9); // routed to that I/O APIC
  });

  it('routes ISA IRQ0 to pin 2 and the others to their own pin, skipping the cascade', () => {
    const m = ram();
    writeMpTable(m, { cpus: 2 });
    const p = parseMp(m);
    const v = view(m);
    const irqs = p.entries
      .filter((e) => e.type === MP_ENTRY_IO_INTERRUPT)
      .map(({ at }) => ({
        type: m[at + 1],
        flags: v.getUint16(at + 2, true),
        bus: m[at + 4],
        irq: m[at + 5],
        apic: m[at + 6],
        pin: m[at + 7],
      }));
    expect(irqs.map((e) => [e.irq, e.pin])).toEqual([[0, 2], [1, 1], ...[3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15].map((i) => [i, i])]);
    // Every I/O APIC pin is claimed at most once.
    expect(new Set(irqs.map((e) => e.pin)).size).toBe(irqs.length);
    for (const e of irqs) {
      expect(e.type).toBe(MP_INT_TYPE_INT);
      expect(e.flags).toBe(0); // conforming polarity and trigger
      expect(e.bus).toBe(0); // ISA
      expect(e.apic).toBe(2);
    }
  });

  it('wires ExtINT to LINT0 and NMI to LINT1 of every local APIC', () => {
    const m = ram();
    writeMpTable(m, { cpus: 2 });
    const p = parseMp(m);
    const lints = p.entries
      .filter((e) => e.type === MP_ENTRY_LOCAL_INTERRUPT)
      .map(({ at }) => [m[at + 1], view(m).getUint16(at + 2, true), m[at + 4], m[at + 6], m[at + 7]]);
    expect(lints).toEqual([
      [MP_INT_TYPE_EXTINT, 0, 0, 0xff, 0],
      [MP_INT_TYPE_NMI, 0, 0, 0xff, 1],
    ]);
  });

  it('stays inside its part of the BIOS area', () => {
    for (const cpus of [1, 8, MP_MAX_CPUS]) {
      const m = ram(2 * MIB);
      const loc = writeMpTable(m, { cpus });
      parseMp(m);
      const [lo, hi] = touched(m);
      expect(lo).toBe(loc.floatingPointerAddress);
      expect(hi).toBeLessThan(MP_TABLE_AREA_END);
      expect(lo).toBeGreaterThanOrEqual(BIOS_AREA_ADDRESS);
      expect(MP_TABLE_AREA_END).toBeLessThanOrEqual(BIOS_AREA_END);
      expect(loc.configTableAddress + loc.length - 1).toBe(hi);
      // Clear of the EBDA, the BDA and high memory, and 16-byte aligned.
      expect(hi).toBeLessThan(HIGH_MEMORY_ADDRESS);
      expect(lo).toBeGreaterThanOrEqual(EBDA_ADDRESS + EBDA_SIZE);
      expect(loc.floatingPointerAddress % 16).toBe(0);
      expect(MP_CONFIG_TABLE_ADDRESS).toBe(loc.configTableAddress);
    }
  });

  it('rejects impossible configurations', () => {
    expect(() => writeMpTable(ram(), { cpus: 0 })).toThrow(RangeError);
    expect(() => writeMpTable(ram(), { cpus: MP_MAX_CPUS + 1 })).toThrow(RangeError);
    expect(() => writeMpTable(ram(), { cpus: 1, ioapicId: 0xff })).toThrow(RangeError);
    expect(() => writeMpTable(ram(), { cpus: 1, ioapicAddress: 2 ** 32 })).toThrow(RangeError);
    expect(() => writeMpTable(ram(512 * 1024), { cpus: 1 })).toThrow(RangeError);
  });
});
