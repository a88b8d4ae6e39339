import { describe, expect, it } from 'vitest';
import {
  E820_ENTRY_SIZE,
  FW_CFG_CMDLINE_DATA,
  FW_CFG_CMDLINE_SIZE,
  FW_CFG_E820_FILE,
  FW_CFG_FILE_DIR,
  FW_CFG_FILE_ENTRY_SIZE,
  FW_CFG_FILE_FIRST,
  FW_CFG_ID,
  FW_CFG_IO_BASE,
  FW_CFG_IO_SIZE,
  FW_CFG_MAX_CPUS,
  FW_CFG_MAX_FILE_PATH,
  FW_CFG_NB_CPUS,
  FW_CFG_NOGRAPHIC,
  FW_CFG_PORT_DATA,
  FW_CFG_PORT_SEL,
  FW_CFG_RAM_SIZE,
  FW_CFG_SIGNATURE,
  FW_CFG_UUID,
  FW_CFG_VERSION,
  FW_CFG_VERSION_DMA,
  FwCfg,
  type FwCfgConfig,
} from '../../src/devices/fw-cfg.js';

const SEL = FW_CFG_PORT_SEL - FW_CFG_IO_BASE;
const DATA = FW_CFG_PORT_DATA - FW_CFG_IO_BASE;
const E820_RAM = 1;
const E820_RESERVED = 2;
const MIB = 1024 * 1024;

const base: FwCfgConfig = { ramSize: 16 * MIB, cpus: 2 };

/** What a guest does: outw key to 0x510, then inb 0x511 `length` times. */
function read(dev: FwCfg, key: number, length: number): Uint8Array {
  dev.pioWrite(SEL, 2, key);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = dev.pioRead(DATA, 1);
  return out;
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
const u16 = (dev: FwCfg, key: number) => view(read(dev, key, 2)).getUint16(0, true);
const u32 = (dev: FwCfg, key: number) => view(read(dev, key, 4)).getUint32(0, true);
const u64 = (dev: FwCfg, key: number) => view(read(dev, key, 8)).getBigUint64(0, true);

interface DirEntry {
  name: string;
  size: number;
  select: number;
}

/** Parses FW_CFG_FILE_DIR as Linux's qemu_fw_cfg driver and SeaBIOS do. */
function readDirectory(dev: FwCfg): DirEntry[] {
  const count = view(read(dev, FW_CFG_FILE_DIR, 4)).getUint32(0, false);
  const entries: DirEntry[] = [];
  // Keep reading from where the count left off (no reselect), as a guest does.
  for (let i = 0; i < count; i++) {
    const raw = new Uint8Array(FW_CFG_FILE_ENTRY_SIZE);
    for (let j = 0; j < raw.length; j++) raw[j] = dev.pioRead(DATA, 1);
    const v = view(raw);
    const nameBytes = raw.subarray(8, 8 + FW_CFG_MAX_FILE_PATH);
    const nul = nameBytes.indexOf(0);
    entries.push({
      size: v.getUint32(0, false),
      select: v.getUint16(4, false),
      name: new TextDecoder().decode(nameBytes.subarray(0, nul)),
    });
    expect(v.getUint16(6, false)).toBe(0); // reserved
  }
  return entries;
}

describe('FwCfg', () => {
  it('sits at 0x510-0x511', () => {
    expect(FW_CFG_PORT_SEL).toBe(0x510);
    expect(FW_CFG_PORT_DATA).toBe(0x511);
    expect(FW_CFG_IO_BASE).toBe(0x510);
    expect(FW_CFG_IO_SIZE).toBe(2);
  });

  it('reads the signature "QEMU" byte by byte, selected after reset', () => {
    const dev = new FwCfg(base);
    const bytes = [0, 1, 2, 3].map(() => dev.pioRead(DATA, 1));
    expect(String.fromCharCode(...bytes)).toBe('QEMU');
    expect(new TextDecoder().decode(read(dev, FW_CFG_SIGNATURE, 4))).toBe('QEMU');
  });

  it('reports the traditional interface and no DMA in FW_CFG_ID', () => {
    const id = u32(new FwCfg(base), FW_CFG_ID);
    expect(id & FW_CFG_VERSION).toBe(FW_CFG_VERSION);
    expect(id & FW_CFG_VERSION_DMA).toBe(0);
    expect(id).toBe(1);
  });

  it('decodes RAM size, CPU counts, UUID and nographic', () => {
    const dev = new FwCfg({ ramSize: 6 * 1024 * MIB, cpus: 3, maxCpus: 8 });
    expect(u64(dev, FW_CFG_RAM_SIZE)).toBe(6n * 1024n * 1024n * 1024n); // above 4 GiB
    expect(u16(dev, FW_CFG_NB_CPUS)).toBe(3);
    expect(u16(dev, FW_CFG_MAX_CPUS)).toBe(8);
    expect(u16(dev, FW_CFG_NOGRAPHIC)).toBe(1);
    expect([...read(dev, FW_CFG_UUID, 16)]).toEqual(new Array(16).fill(0));
    expect(u16(new FwCfg(base), FW_CFG_MAX_CPUS)).toBe(2); // defaults to cpus
  });

  it('gives the command line size (with its NUL) and data', () => {
    const dev = new FwCfg({ ...base, cmdline: 'console=ttyS0 quiet' });
    const size = u32(dev, FW_CFG_CMDLINE_SIZE);
    expect(size).toBe('console=ttyS0 quiet'.length + 1);
    const data = read(dev, FW_CFG_CMDLINE_DATA, size);
    expect(data[size - 1]).toBe(0);
    expect(new TextDecoder().decode(data.subarray(0, size - 1))).toBe('console=ttyS0 quiet');

    const none = new FwCfg(base);
    expect(u32(none, FW_CFG_CMDLINE_SIZE)).toBe(0);
    expect(read(none, FW_CFG_CMDLINE_DATA, 1)[0]).toBe(0);
  });

  it('lists files sorted by name and serves etc/e820 as QEMU e820_entry records', () => {
    const e820 = [
      { base: 0, length: 0x9fc00, type: E820_RAM },
      { base: 0x9fc00, length: 0x400, type: E820_RESERVED },
      { base: 0xf0000, length: 0x10000, type: E820_RESERVED },
      { base: 0x100000, length: 0x1_4000_0000 - 0x100000, type: E820_RAM }, // past 4 GiB
    ];
    const files = {
      'opt/zzz': new Uint8Array([7, 8, 9]),
      bootorder: new TextEncoder().encode('/pci@i0cf8/*@1\n'),
      'etc/boot-fail-wait': new Uint8Array([0xff, 0xff, 0xff, 0xff]),
    };
    const dev = new FwCfg({ ...base, e820, files });
    const dir = readDirectory(dev);
    expect(dir.map((f) => f.name)).toEqual(['bootorder', 'etc/boot-fail-wait', 'etc/e820', 'opt/zzz']);
    expect(dir.map((f) => f.select)).toEqual([0, 1, 2, 3].map((i) => FW_CFG_FILE_FIRST + i));

    const entry = dir.find((f) => f.name === FW_CFG_E820_FILE);
    expect(entry?.size).toBe(e820.length * E820_ENTRY_SIZE);
    const raw = read(dev, entry?.select ?? -1, entry?.size ?? 0);
    const v = view(raw);
    const decoded = e820.map((_, i) => ({
      base: Number(v.getBigUint64(i * 20, true)),
      length: Number(v.getBigUint64(i * 20 + 8, true)),
      type: v.getUint32(i * 20 + 16, true),
    }));
    expect(decoded).toEqual(e820);

    const zzz = dir.find((f) => f.name === 'opt/zzz');
    expect([...read(dev, zzz?.select ?? -1, 3)]).toEqual([7, 8, 9]);
  });

  it('has an empty directory without files, and no etc/e820 unless given', () => {
    const dev = new FwCfg(base);
    expect(readDirectory(dev)).toEqual([]);
    expect(u32(dev, FW_CFG_FILE_DIR)).toBe(0);
    // An empty memory map is still a file, of size 0.
    expect(readDirectory(new FwCfg({ ...base, e820: [] }))).toEqual([{ name: 'etc/e820', size: 0, select: FW_CFG_FILE_FIRST }]);
  });

  it('snapshots files at construction', () => {
    const data = new Uint8Array([1, 2]);
    const dev = new FwCfg({ ...base, files: { 'opt/a': data } });
    data[0] = 9;
    expect([...read(dev, FW_CFG_FILE_FIRST, 2)]).toEqual([1, 2]);
  });

  it('returns 0 past the end of an item', () => {
    const dev = new FwCfg(base);
    const bytes = read(dev, FW_CFG_SIGNATURE, 10);
    expect([...bytes.subarray(4)]).toEqual([0, 0, 0, 0, 0, 0]);
    expect(dev.pioRead(DATA, 1)).toBe(0);
  });

  it('returns 0 for an unknown key', () => {
    const dev = new FwCfg(base);
    for (const key of [0x06, 0x07, 0x1a, FW_CFG_FILE_FIRST, 0x3fff, 0x8000, 0xffff]) {
      expect([...read(dev, key, 4)]).toEqual([0, 0, 0, 0]);
    }
  });

  it('rewinds to the start of the item on every selector write', () => {
    const dev = new FwCfg(base);
    read(dev, FW_CFG_SIGNATURE, 2); // 'Q', 'E'
    dev.pioWrite(SEL, 2, FW_CFG_SIGNATURE);
    expect(dev.pioRead(DATA, 1)).toBe('Q'.charCodeAt(0));
    dev.pioWrite(SEL, 2, FW_CFG_NB_CPUS);
    dev.pioWrite(SEL, 2, FW_CFG_SIGNATURE);
    expect(dev.pioRead(DATA, 1)).toBe('Q'.charCodeAt(0));
    dev.reset();
    expect(dev.selector).toBe(FW_CFG_SIGNATURE);
  });

  it('takes 16-bit selector writes whole and 8-bit ones as the low byte', () => {
    const dev = new FwCfg({ ...base, files: { 'opt/a': new Uint8Array([0x5a]) } });
    dev.pioWrite(SEL, 2, FW_CFG_FILE_FIRST);
    expect(dev.selector).toBe(0x20);
    expect(dev.pioRead(DATA, 1)).toBe(0x5a);

    dev.pioWrite(SEL, 2, 0x1234); // a key with a high byte: unknown here
    expect(dev.selector).toBe(0x1234);
    expect(dev.pioRead(DATA, 1)).toBe(0);

    dev.pioWrite(SEL, 1, 0x1205); // only the low byte counts: FW_CFG_NB_CPUS
    expect(dev.selector).toBe(FW_CFG_NB_CPUS);
    expect(dev.pioRead(DATA, 1)).toBe(2);
  });

  it('ignores writes to the data port', () => {
    const dev = new FwCfg(base);
    dev.pioWrite(SEL, 2, FW_CFG_NB_CPUS);
    dev.pioWrite(DATA, 1, 0x77);
    dev.pioWrite(DATA, 2, 0x7777);
    expect(dev.selector).toBe(FW_CFG_NB_CPUS);
    expect(dev.pioRead(DATA, 1)).toBe(2); // neither reselected nor advanced nor changed
    expect(u16(dev, FW_CFG_NB_CPUS)).toBe(2);
  });

  it('packs wide data reads first byte lowest, so a store keeps the byte order', () => {
    const dev = new FwCfg(base);
    dev.pioWrite(SEL, 2, FW_CFG_SIGNATURE);
    expect(dev.pioRead(DATA, 2)).toBe(0x4551); // 'Q' 'E'
    expect(dev.pioRead(DATA, 4)).toBe(0x554d); // 'M' 'U' then two bytes past the end
    dev.pioWrite(SEL, 2, FW_CFG_ID);
    expect(dev.pioRead(DATA, 4)).toBe(FW_CFG_VERSION);
  });

  it("reads data at the selector port too, as QEMU's combined x86 port does", () => {
    const dev = new FwCfg(base);
    dev.pioWrite(SEL, 2, FW_CFG_SIGNATURE);
    expect(dev.pioRead(SEL, 1)).toBe('Q'.charCodeAt(0));
    expect(dev.pioRead(DATA, 1)).toBe('E'.charCodeAt(0));
  });

  it('hands out copies of items to the host side', () => {
    const dev = new FwCfg(base);
    const sig = dev.item(FW_CFG_SIGNATURE);
    expect(new TextDecoder().decode(sig)).toBe('QEMU');
    sig?.fill(0);
    expect(new TextDecoder().decode(read(dev, FW_CFG_SIGNATURE, 4))).toBe('QEMU');
    expect(dev.item(0x1234)).toBeUndefined();
  });

  it('rejects bad descriptions', () => {
    expect(() => new FwCfg({ ramSize: -1, cpus: 1 })).toThrow(RangeError);
    expect(() => new FwCfg({ ramSize: 0, cpus: 0 })).toThrow(RangeError);
    expect(() => new FwCfg({ ramSize: 0, cpus: 4, maxCpus: 2 })).toThrow(RangeError);
    const long = 'x'.repeat(FW_CFG_MAX_FILE_PATH);
    expect(() => new FwCfg({ ...base, files: { [long]: new Uint8Array(1) } })).toThrow(/too long/);
    const longest = long.slice(1); // 55 bytes + NUL fills the name field exactly
    expect(() => new FwCfg({ ...base, files: { [longest]: new Uint8Array(1) } })).not.toThrow();
    expect(() => new FwCfg({ ...base, e820: [], files: { 'etc/e820': new Uint8Array(0) } })).toThrow(/twice/);
  });
});
