/**
 * Guest memory in snapshots, on real mappings (the native addon, no KVM needed): which pages
 * capture saves (mincore, then a zero-page scan), and how restore maps them back from the file
 * copy-on-write — the file's pages shared until the guest writes one.
 */
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { native } from '../../src/kvm/native.js';
import { openSnapshotFile, writeSnapshotFile } from '../../src/snapshot/file.js';
import {
  DETECTION_FULL,
  DETECTION_MINCORE,
  fileBackedRanges,
  mapFromFile,
  touchedRuns,
  type RamMapping,
} from '../../src/snapshot/memory.js';
import { tskvmVersion } from '../../src/snapshot/version.js';

const PAGE = 4096;
const dir = mkdtempSync(path.join(os.tmpdir(), 'tskvm-snapshot-memory-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const mapped: RamMapping[] = [];
afterEach(() => {
  while (mapped.length) {
    const m = mapped.pop()!;
    native().munmap(m.hostAddr, m.size);
  }
});

/** Anonymous RAM as tskvm maps guest memory (MAP_SHARED|MAP_NORESERVE, or private). */
function ram(pages: number, shared = true): RamMapping {
  const size = pages * PAGE;
  const hostAddr = native().mmapAnonymous(size, shared);
  expect(hostAddr > 0n).toBe(true);
  const m = { hostAddr, size, bytes: new Uint8Array(native().externalBuffer(hostAddr, size)) };
  mapped.push(m);
  return m;
}

/** /proc/self/smaps fields (kB) of the mapping that starts at `addr`. */
function smaps(addr: bigint): Record<string, number> {
  const text = readFileSync('/proc/self/smaps', 'utf8');
  const start = addr.toString(16);
  const blocks = text.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
  const block = blocks.find((b) => b.startsWith(`${start}-`));
  if (!block) throw new Error(`no mapping at 0x${start}`);
  return Object.fromEntries([...block.matchAll(/^(\w+):\s+(\d+) kB$/gm)].map((m) => [m[1]!, Number(m[2])]));
}

describe('which pages a snapshot saves', () => {
  it.each([[true], [false]])('only pages that exist and are not all zeros (shared mapping: %s)', (shared) => {
    const m = ram(64, shared);
    expect(touchedRuns(m, DETECTION_MINCORE)).toEqual([]);
    m.bytes[5 * PAGE + 17] = 1; // pages 5 and 6: data
    m.bytes[6 * PAGE + PAGE - 1] = 2;
    m.bytes[10 * PAGE] = 0; // touched, but zeros: not saved
    m.bytes.fill(0, 20 * PAGE, 40 * PAGE); // a whole zero block, resident
    m.bytes[47 * PAGE + 3] = 0xff;
    m.bytes[63 * PAGE + 100] = 9; // the last page
    const expected = [
      { gpa: 5 * PAGE, length: 2 * PAGE },
      { gpa: 47 * PAGE, length: PAGE },
      { gpa: 63 * PAGE, length: PAGE },
    ];
    expect(touchedRuns(m, DETECTION_MINCORE)).toEqual(expected);
    // Scanning every page finds the same ones.
    expect(touchedRuns(m, DETECTION_FULL)).toEqual(expected);
  });

  it('does not make RAM resident to find out (mincore first)', () => {
    const m = ram(4096); // 16 MiB, untouched
    m.bytes[PAGE * 100] = 1;
    touchedRuns(m, DETECTION_MINCORE);
    expect(smaps(m.hostAddr).Rss).toBeLessThanOrEqual(16);
  });
});

describe('restoring memory from the file, copy-on-write', () => {
  async function snapshotOf(m: RamMapping): Promise<string> {
    const file = path.join(dir, `${m.hostAddr.toString(16)}.snap`);
    const runs = touchedRuns(m, DETECTION_MINCORE);
    await writeSnapshotFile(file, {
      header: {
        tskvm: tskvmVersion(),
        created: new Date().toISOString(),
        host: { kernel: os.release(), cpu: 'test' },
        machine: { memorySize: m.size, cpus: 1, irqchip: false, board: {} },
        cpuid: [],
        vcpus: [{ id: 0, mpState: 0, tscKhz: 1 }],
      },
      sections: [],
      memory: { ram: m.bytes, runs, detection: DETECTION_MINCORE },
    });
    return file;
  }

  function restore(file: string, target: RamMapping): void {
    const s = openSnapshotFile(file, tskvmVersion());
    try {
      for (const r of s.header.memory.runs) mapFromFile(target, r.gpa, r.length, s.fd, r.offset);
    } finally {
      s.close(); // the mappings outlive the fd
    }
  }

  it('brings back every byte, leaves the rest zero, and a write changes neither the file nor the original', async () => {
    const a = ram(256);
    for (let p = 0; p < 256; p += 3) a.bytes.fill(p & 0xff || 1, p * PAGE, p * PAGE + 64);
    const file = await snapshotOf(a);
    const before = readFileSync(file);
    const b = ram(256);
    restore(file, b);
    expect(Buffer.compare(Buffer.from(b.bytes), Buffer.from(a.bytes))).toBe(0);
    expect(fileBackedRanges(b).length).toBeGreaterThan(0);
    b.bytes[0] = b.bytes[0]! ^ 0xff;
    b.bytes[3 * PAGE] = 0x5a;
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(a.bytes[0]).toBe(1);
    expect(a.bytes[3 * PAGE]).toBe(3);
  });

  it("pages stay the file's (page cache, shared) until written; a write makes one private page", async () => {
    const a = ram(64);
    a.bytes.fill(7, 0, 64 * PAGE);
    const file = await snapshotOf(a);
    const b = ram(64);
    restore(file, b);
    let sum = 0;
    for (let p = 0; p < 64; p++) sum += b.bytes[p * PAGE]!; // read every page
    expect(sum).toBe(7 * 64);
    const readOnly = smaps(b.hostAddr);
    expect(readOnly.Rss).toBe(64 * 4);
    expect(readOnly.Anonymous).toBe(0);
    b.bytes[5 * PAGE] = 8;
    const afterWrite = smaps(b.hostAddr);
    expect(afterWrite.Anonymous).toBe(4);
    expect(afterWrite.Private_Dirty).toBe(4);
  });

  it('a snapshot of a restored guest saves its file-backed pages too', async () => {
    const a = ram(32);
    a.bytes.fill(1, 4 * PAGE, 6 * PAGE);
    const b = ram(32);
    restore(await snapshotOf(a), b);
    b.bytes[20 * PAGE] = 2;
    expect(touchedRuns(b, DETECTION_MINCORE)).toEqual([
      { gpa: 4 * PAGE, length: 2 * PAGE },
      { gpa: 20 * PAGE, length: PAGE },
    ]);
  });

  it('refuses a run that is not page-aligned or lies outside RAM', async () => {
    const a = ram(8);
    a.bytes[0] = 1;
    const file = await snapshotOf(a);
    const fd = openSync(file, 'r');
    try {
      const b = ram(8);
      expect(() => mapFromFile(b, 100, PAGE, fd, 0)).toThrow(RangeError);
      expect(() => mapFromFile(b, 7 * PAGE, 2 * PAGE, fd, 0)).toThrow(RangeError);
    } finally {
      closeSync(fd);
    }
  });
});
