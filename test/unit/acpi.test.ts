/**
 * The ACPI tables, parsed back the way a guest finds them: scan 0xE0000-0xFFFFF for the RSDP,
 * follow the RSDT and XSDT, check every checksum, and read the fields kvm-unit-tests and Linux use.
 */
import { describe, expect, it } from 'vitest';
import {
  ACPI_RESET_PORT,
  ACPI_RESET_VALUE,
  amlInteger,
  amlPkgLength,
  dsdtAml,
  eisaId,
  FADT_F_FORCE_APIC_PHYSICAL_DESTINATION_MODE,
  FADT_F_RESET_REG_SUP,
  FADT_F_TMR_VAL_EXT,
  writeAcpiTables,
} from '../../src/arch/x86/acpi.js';
import { ACPI_AREA_ADDRESS, ACPI_AREA_END } from '../../src/arch/x86/pc-layout.js';
import { writeMpTable } from '../../src/arch/x86/pc-tables.js';
import { registerPcChipset } from '../../src/board/chipset.js';
import { PM1_CNT_SLP_EN, PM1_TMR, type SleepState } from '../../src/devices/acpi-pm.js';
import { Bus, PIO_ADDRESS_SPACE_SIZE } from '../../src/devices/bus.js';
import type { MmioDevice, PioDevice } from '../../src/devices/device.js';
import { handleIo, handleMmio } from '../../src/devices/dispatch.js';
import { Hpet } from '../../src/devices/hpet.js';
import { PORT_A_FAST_RESET, type ResetKind } from '../../src/devices/reset-control.js';

const MiB = 2 ** 20;
const ram = (): Uint8Array => new Uint8Array(2 * MiB).fill(0xcc);
const dv = (m: Uint8Array): DataView => new DataView(m.buffer, m.byteOffset, m.byteLength);
const ascii = (m: Uint8Array, at: number, n: number): string => String.fromCharCode(...m.subarray(at, at + n));
const sum = (m: Uint8Array, at: number, n: number): number => m.subarray(at, at + n).reduce((a, b) => a + b, 0) & 0xff;

interface Parsed {
  rsdp: number;
  tables: Map<string, number>;
  viaRsdt: string[];
}

/** What a guest does: find the RSDP on a 16-byte boundary, then walk the XSDT (and check the RSDT agrees). */
function parse(m: Uint8Array): Parsed {
  const v = dv(m);
  let rsdp = -1;
  for (let at = 0xe0000; at < 0x100000; at += 16) {
    if (ascii(m, at, 8) === 'RSD PTR ') {
      rsdp = at;
      break;
    }
  }
  expect(rsdp).toBeGreaterThan(0);
  expect(sum(m, rsdp, 20)).toBe(0);
  expect(m[rsdp + 15]).toBe(2);
  expect(v.getUint32(rsdp + 20, true)).toBe(36);
  expect(sum(m, rsdp, 36)).toBe(0);
  const rsdt = v.getUint32(rsdp + 16, true);
  const xsdt = Number(v.getBigUint64(rsdp + 24, true));
  const checkTable = (at: number, signature?: string): number => {
    const length = v.getUint32(at + 4, true);
    if (signature) expect(ascii(m, at, 4)).toBe(signature);
    expect(sum(m, at, length)).toBe(0);
    expect(ascii(m, at + 10, 6)).toBe('TSKVM ');
    return length;
  };
  const rsdtLength = checkTable(rsdt, 'RSDT');
  const xsdtLength = checkTable(xsdt, 'XSDT');
  expect((rsdtLength - 36) / 4).toBe((xsdtLength - 36) / 8);
  const tables = new Map<string, number>();
  const viaRsdt: string[] = [];
  for (let i = 0; i < (xsdtLength - 36) / 8; i++) {
    const at = Number(v.getBigUint64(xsdt + 36 + 8 * i, true));
    expect(v.getUint32(rsdt + 36 + 4 * i, true)).toBe(at);
    checkTable(at);
    tables.set(ascii(m, at, 4), at);
    viaRsdt.push(ascii(m, at, 4));
  }
  return { rsdp, tables, viaRsdt };
}

describe('writeAcpiTables', () => {
  const config = { cpus: 2, hpet: { eventTimerBlockId: Hpet.eventTimerBlockId } };

  it('puts an RSDP where a guest scans for it, with RSDT and XSDT listing FADT, MADT and HPET', () => {
    const m = ram();
    const t = writeAcpiTables(m, config);
    const p = parse(m);
    expect(p.rsdp).toBe(t.rsdp);
    expect(p.viaRsdt).toEqual(['FACP', 'APIC', 'HPET']);
    // Everything inside the ACPI area, nothing written outside it.
    expect(t.end).toBeLessThanOrEqual(ACPI_AREA_END);
    expect(m.subarray(0, ACPI_AREA_ADDRESS).every((b) => b === 0xcc)).toBe(true);
    expect(m.subarray(t.end).every((b) => b === 0xcc)).toBe(true);
  });

  it('describes the PM block at 0x600, the SCI, the reset register, FACS and DSDT in the FADT', () => {
    const m = ram();
    writeAcpiTables(m, config);
    const fadt = parse(m).tables.get('FACP')!;
    const v = dv(m);
    expect(v.getUint32(fadt + 4, true)).toBe(244);
    expect(m[fadt + 8]).toBe(3);
    expect(v.getUint16(fadt + 46, true)).toBe(9); // SCI_INT
    expect(v.getUint32(fadt + 48, true)).toBe(0); // SMI_CMD: always in ACPI mode
    expect(v.getUint32(fadt + 56, true)).toBe(0x600); // PM1a_EVT_BLK
    expect(v.getUint32(fadt + 64, true)).toBe(0x604); // PM1a_CNT_BLK
    expect(v.getUint32(fadt + 76, true)).toBe(0x608); // PM_TMR_BLK
    expect(v.getUint32(fadt + 80, true)).toBe(0x60c); // GPE0_BLK
    expect([m[fadt + 88], m[fadt + 89], m[fadt + 91], m[fadt + 92]]).toEqual([4, 2, 4, 4]);
    expect(m[fadt + 108]).toBe(0x32); // CENTURY
    const flags = v.getUint32(fadt + 112, true);
    expect(flags & FADT_F_RESET_REG_SUP).toBeTruthy();
    expect(flags & FADT_F_TMR_VAL_EXT).toBe(0); // 24-bit timer by default
    expect(flags & FADT_F_FORCE_APIC_PHYSICAL_DESTINATION_MODE).toBe(0);
    // RESET_REG: system I/O, 8 bits, byte access, 0xCF9; RESET_VALUE 6.
    expect([m[fadt + 116], m[fadt + 117], m[fadt + 118], m[fadt + 119]]).toEqual([1, 8, 0, 1]);
    expect(v.getBigUint64(fadt + 120, true)).toBe(BigInt(ACPI_RESET_PORT));
    expect(m[fadt + 128]).toBe(ACPI_RESET_VALUE);
    // 32- and 64-bit pointers agree; X_PM1a blocks are system I/O.
    const facs = v.getUint32(fadt + 36, true);
    const dsdt = v.getUint32(fadt + 40, true);
    expect(v.getBigUint64(fadt + 132, true)).toBe(BigInt(facs));
    expect(v.getBigUint64(fadt + 140, true)).toBe(BigInt(dsdt));
    expect([m[fadt + 148], m[fadt + 149], Number(v.getBigUint64(fadt + 152, true))]).toEqual([1, 32, 0x600]);
    expect([m[fadt + 172], m[fadt + 173], Number(v.getBigUint64(fadt + 176, true))]).toEqual([1, 16, 0x604]);
    expect([m[fadt + 208], m[fadt + 209], Number(v.getBigUint64(fadt + 212, true))]).toEqual([1, 32, 0x608]);
    // FACS: 64 bytes, 64-byte aligned, waking vector 0 for the OS to fill, version 2.
    expect(ascii(m, facs, 4)).toBe('FACS');
    expect(facs % 64).toBe(0);
    expect(v.getUint32(facs + 4, true)).toBe(64);
    expect(v.getUint32(facs + 12, true)).toBe(0);
    expect(m[facs + 32]).toBe(2);
    // DSDT: a valid table holding the AML.
    expect(ascii(m, dsdt, 4)).toBe('DSDT');
    expect(sum(m, dsdt, v.getUint32(dsdt + 4, true))).toBe(0);
    expect([...m.subarray(dsdt + 36, dsdt + v.getUint32(dsdt + 4, true))]).toEqual([...dsdtAml({ address: 0xfed00000 })]);
  });

  it('sets TMR_VAL_EXT for a 32-bit PM timer and physical destination mode above 8 CPUs', () => {
    const m = ram();
    writeAcpiTables(m, { ...config, cpus: 9, pmTimer32: true, pmBase: 0xb000 });
    const fadt = parse(m).tables.get('FACP')!;
    const flags = dv(m).getUint32(fadt + 112, true);
    expect(flags & FADT_F_TMR_VAL_EXT).toBeTruthy();
    expect(flags & FADT_F_FORCE_APIC_PHYSICAL_DESTINATION_MODE).toBeTruthy();
    expect(dv(m).getUint32(fadt + 76, true)).toBe(0xb008);
  });

  it('lists a LAPIC per vCPU, the IOAPIC, the IRQ0→GSI2 and SCI overrides and the LINT1 NMI in the MADT', () => {
    const m = ram();
    writeAcpiTables(m, { ...config, cpus: 4 });
    const madt = parse(m).tables.get('APIC')!;
    const v = dv(m);
    expect(v.getUint32(madt + 36, true)).toBe(0xfee00000);
    expect(v.getUint32(madt + 40, true)).toBe(1); // PCAT_COMPAT
    const entries: number[][] = [];
    for (let at = madt + 44; at < madt + v.getUint32(madt + 4, true); at += m[at + 1]!) entries.push([...m.subarray(at, at + m[at + 1]!)]);
    expect(entries).toEqual([
      [0, 8, 0, 0, 1, 0, 0, 0],
      [0, 8, 1, 1, 1, 0, 0, 0],
      [0, 8, 2, 2, 1, 0, 0, 0],
      [0, 8, 3, 3, 1, 0, 0, 0],
      [1, 12, 4, 0, 0x00, 0x00, 0xc0, 0xfe, 0, 0, 0, 0], // IOAPIC ID 4 (as the MP table), 0xFEC00000, GSI base 0
      [2, 10, 0, 0, 2, 0, 0, 0, 0, 0], // ISA IRQ0 → GSI 2, conforming
      [2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0], // IRQ9 → GSI 9, level, active high
      [4, 6, 0xff, 0, 0, 1], // NMI on LINT1, all processors
    ]);
  });

  it('gives the HPET table its block ID and address', () => {
    const m = ram();
    writeAcpiTables(m, config);
    const hpet = parse(m).tables.get('HPET')!;
    const v = dv(m);
    expect(v.getUint32(hpet + 4, true)).toBe(56);
    expect(v.getUint32(hpet + 36, true)).toBe(0x8086a201); // vendor 8086, legacy-capable, 64-bit, 3 timers, rev 1
    expect([m[hpet + 40], m[hpet + 41]]).toEqual([0, 64]); // system memory, 64 bits
    expect(v.getBigUint64(hpet + 44, true)).toBe(0xfed00000n);
    expect(m[hpet + 52]).toBe(0);
  });

  it('leaves the HPET out when the machine has none', () => {
    const m = ram();
    writeAcpiTables(m, { cpus: 1 });
    expect(parse(m).viaRsdt).toEqual(['FACP', 'APIC']);
  });

  it('coexists with the MP table', () => {
    const m = ram();
    writeMpTable(m, { cpus: 2 });
    writeAcpiTables(m, config);
    expect(ascii(m, 0xf0000, 4)).toBe('_MP_');
    expect(sum(m, 0xf0000, 16)).toBe(0);
    parse(m);
  });

  it('rejects what it cannot describe', () => {
    expect(() => writeAcpiTables(ram(), { cpus: 0 })).toThrow(RangeError);
    expect(() => writeAcpiTables(ram(), { cpus: 255 })).toThrow(RangeError);
    expect(() => writeAcpiTables(new Uint8Array(0xf0000), { cpus: 1 })).toThrow(/need guest RAM up to 0xfe000/);
  });
});

describe('AML encoding', () => {
  it('encodes PkgLength in one byte up to 63 and in 2-4 bytes beyond', () => {
    expect([...amlPkgLength(10)]).toEqual([11]);
    expect([...amlPkgLength(62)]).toEqual([63]);
    // 63 bytes of content: 65 with a 2-byte PkgLength: 0x41 low nibble 1, then 65 >> 4 = 4.
    expect([...amlPkgLength(63)]).toEqual([0x41, 0x04]);
    // Two following bytes hold at most 12 bits: 4000 bytes fit (4002 total), 5000 need three bytes (5003 total).
    expect([...amlPkgLength(4000)]).toEqual([0x40 | (4002 & 0xf), 4002 >> 4]);
    expect([...amlPkgLength(5000)]).toEqual([0x80 | (5003 & 0xf), (5003 >> 4) & 0xff, 5003 >> 12]);
    expect(amlPkgLength(2 ** 20).length).toBe(4);
  });

  it('encodes integers as the shortest constant', () => {
    expect([...amlInteger(0)]).toEqual([0x00]);
    expect([...amlInteger(1)]).toEqual([0x01]);
    expect([...amlInteger(0x80)]).toEqual([0x0a, 0x80]);
    expect([...amlInteger(0x1234)]).toEqual([0x0b, 0x34, 0x12]);
    expect([...amlInteger(0xfed00000)]).toEqual([0x0c, 0x00, 0x00, 0xd0, 0xfe]);
  });

  it('compresses EISA IDs as EISAID() does', () => {
    expect(eisaId('PNP0A03')).toBe(0x030ad041);
    expect(eisaId('PNP0103')).toBe(0x0301d041);
  });

  it('names \\_S3_ with SLP_TYP 1 and \\_S5_ with 0', () => {
    const aml = dsdtAml();
    // NameOp '\' "_S3_" PackageOp PkgLength(6) NumElements(4) One One Zero Zero
    expect([...aml.subarray(0, 13)]).toEqual([0x08, 0x5c, 0x5f, 0x53, 0x33, 0x5f, 0x12, 0x06, 0x04, 0x01, 0x01, 0x00, 0x00]);
    expect([...aml.subarray(13, 26)]).toEqual([0x08, 0x5c, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00]);
  });
});

describe('the tables describe the chipset the board builds', () => {
  /** The chipset on its own buses, driven through the addresses the parsed tables give. */
  function chipset() {
    const pio = new Bus<PioDevice>(PIO_ADDRESS_SPACE_SIZE);
    const mmio = new Bus<MmioDevice>();
    const resets: ResetKind[] = [];
    const sleeps: SleepState[] = [];
    const c = registerPcChipset(
      { pio, mmio },
      { connectIrq: () => () => {}, memorySize: 64 * MiB, cpus: 2, reset: (k) => resets.push(k), sleep: (s) => sleeps.push(s) },
    );
    const io = (direction: 'in' | 'out', port: number, size: 1 | 2 | 4, value = 0): number => {
      const data = new Uint8Array(4);
      new DataView(data.buffer).setUint32(0, value >>> 0, true);
      handleIo({ direction, port, size, count: 1, data: data.subarray(0, size) }, pio);
      return new DataView(data.buffer).getUint32(0, true) & (size === 4 ? 0xffffffff : (1 << (size * 8)) - 1);
    };
    const mem32 = (address: number): number => {
      const data = new Uint8Array(4);
      handleMmio({ physAddr: address, isWrite: false, data }, mmio);
      return new DataView(data.buffer).getUint32(0, true);
    };
    return { c, io, mem32, resets, sleeps };
  }

  it("answers at the FADT's PM1a, PM timer and reset register, and the HPET table's address", () => {
    const m = ram();
    writeAcpiTables(m, { cpus: 2, hpet: { eventTimerBlockId: Hpet.eventTimerBlockId } });
    const { tables } = parse(m);
    const v = dv(m);
    const fadt = tables.get('FACP')!;
    const { io, mem32, resets, sleeps } = chipset();
    // The PM timer runs at its port.
    const pmTimer = v.getUint32(fadt + 76, true);
    expect(io('in', pmTimer, 4)).toBeLessThan(2 ** 24);
    // PM1a status and enable at the event block: write 1 to clear, enable bits read back.
    const pm1a = v.getUint32(fadt + 56, true);
    io('out', pm1a + 2, 2, PM1_TMR);
    expect(io('in', pm1a + 2, 2)).toBe(PM1_TMR);
    // \_S5's SLP_TYP (from the DSDT's package) with SLP_EN at PM1a_CNT powers off.
    const dsdt = v.getUint32(fadt + 40, true);
    const aml = m.subarray(dsdt + 36, dsdt + v.getUint32(dsdt + 4, true));
    const s5 = [...aml].findIndex((_, i) => ascii(aml, i, 4) === '_S5_');
    expect(s5).toBeGreaterThan(0);
    const slpTyp = aml[s5 + 7]!; // NameString, PackageOp, PkgLength, NumElements, then SLP_TYPa
    const pm1aCnt = v.getUint32(fadt + 64, true);
    io('out', pm1aCnt, 2, (slpTyp << 10) | PM1_CNT_SLP_EN);
    expect(sleeps).toEqual(['S5']);
    // RESET_REG / RESET_VALUE: a hard reset, through the PCI host bridge's 0xCF9 byte.
    const resetPort = Number(v.getBigUint64(fadt + 120, true));
    io('out', resetPort, 1, m[fadt + 128]!);
    expect(resets).toEqual(['hard']);
    // The HPET table's block ID is GCAP_ID's low half at the table's address.
    const hpet = tables.get('HPET')!;
    const hpetAddress = Number(v.getBigUint64(hpet + 44, true));
    expect(mem32(hpetAddress)).toBe(v.getUint32(hpet + 36, true));
  });

  it('resets on port 0x92 and 0xCF9 as kvm-unit-tests init.c drives them', () => {
    const { io, resets } = chipset();
    io('out', 0x92, 1, io('in', 0x92, 1) | PORT_A_FAST_RESET);
    expect(resets).toEqual(['soft']);
    expect(io('in', 0x92, 1) & PORT_A_FAST_RESET).toBe(PORT_A_FAST_RESET); // kept across the INIT
    io('out', 0xcf9, 1, 0);
    io('out', 0xcf9, 1, 4); // RST_CPU: soft
    io('out', 0xcf9, 1, 6); // SYS_RST | RST_CPU: hard, which clears port 0x92's FAST_RESET
    expect(resets).toEqual(['soft', 'soft', 'hard']);
    expect(io('in', 0x92, 1) & PORT_A_FAST_RESET).toBe(0);
  });
});
