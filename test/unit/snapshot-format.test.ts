/**
 * The snapshot file format, without KVM: layout (sections 8-aligned, memory runs page-aligned),
 * atomic writes, and a refusal with the reason for every way a file can be wrong — truncated,
 * extended, a bit flipped anywhere a checksum covers, another format version, another tskvm.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { openSnapshotFile, verifyMemory, writeSnapshotFile, type SnapshotContent } from '../../src/snapshot/file.js';
import {
  MEMORY_ALIGN,
  PREAMBLE_SIZE,
  SECTION_ALIGN,
  SNAPSHOT_FORMAT_VERSION,
  SNAPSHOT_MAGIC,
  validateHeader,
  type SnapshotHeader,
} from '../../src/snapshot/format.js';
import { mergeRuns, type MemoryRange } from '../../src/snapshot/memory.js';
import { tskvmVersion } from '../../src/snapshot/version.js';

const PAGE = 4096;
const dir = mkdtempSync(path.join(os.tmpdir(), 'tskvm-snapshot-format-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const tempPath = (): string => path.join(dir, `s${counter++}.snap`);

/** Guest RAM of `pages` pages with recognisable contents in the pages of `runs`. */
function ramWith(pages: number, runs: readonly MemoryRange[]): Uint8Array {
  const ram = new Uint8Array(pages * PAGE);
  for (const r of runs) for (let i = 0; i < r.length; i++) ram[r.gpa + i] = (r.gpa / PAGE + i * 7 + 1) & 0xff;
  return ram;
}

function content(
  options: { tskvm?: string; pages?: number; runs?: MemoryRange[]; sections?: { name: string; bytes: Uint8Array }[] } = {},
): SnapshotContent {
  const pages = options.pages ?? 16;
  const runs = options.runs ?? [
    { gpa: 0, length: PAGE },
    { gpa: 3 * PAGE, length: 2 * PAGE },
  ];
  return {
    header: {
      tskvm: options.tskvm ?? tskvmVersion(),
      created: new Date(0).toISOString(),
      host: { kernel: 'test', cpu: 'test' },
      machine: { memorySize: pages * PAGE, cpus: 1, irqchip: true, board: { serial: ['COM1'] } },
      cpuid: [{ function: 1, index: 0, flags: 0, eax: 0x806f8, ebx: 0, ecx: 0x80000000, edx: 0x178bfbff }],
      vcpus: [{ id: 0, mpState: 0, tscKhz: 2_000_000 }],
    },
    sections: options.sections ?? [
      { name: 'vcpu0.regs', bytes: Uint8Array.from({ length: 144 }, (_, i) => i) },
      { name: 'vcpu0.events', bytes: Uint8Array.from({ length: 61 }, (_, i) => 255 - i) },
      { name: 'devices', bytes: new TextEncoder().encode('{"COM1":{"ier":1}}') },
    ],
    memory: { ram: ramWith(pages, runs), runs, detection: 'mincore+zero-scan' },
  };
}

/** The message of the UsageError `fn` throws (it must throw one, with code EIMAGE). */
function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).code).toBe('EIMAGE');
    return (err as Error).message;
  }
  throw new Error('expected a UsageError');
}

/** Opens `file` and checks its memory too (against RAM filled from the file, as a mapping would be). */
function openAndVerify(file: string): SnapshotHeader {
  const s = openSnapshotFile(file, tskvmVersion());
  try {
    const bytes = readFileSync(file);
    const ram = new Uint8Array(s.header.memory.size);
    for (const r of s.header.memory.runs) ram.set(bytes.subarray(r.offset, r.offset + r.length), r.gpa);
    verifyMemory(file, s.header, ram);
    return s.header;
  } finally {
    s.close();
  }
}

function flipBit(file: string, byte: number, bit: number): void {
  const bytes = readFileSync(file);
  bytes[byte]! ^= 1 << bit;
  writeFileSync(file, bytes);
}

describe('snapshot file layout', () => {
  it('writes a preamble, a JSON header, aligned sections and page-aligned memory runs, and reads them back', async () => {
    const file = tempPath();
    const c = content();
    const size = await writeSnapshotFile(file, c);
    expect(statSync(file).size).toBe(size);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const bytes = readFileSync(file);
    expect(bytes.subarray(0, 8).toString('latin1')).toBe(SNAPSHOT_MAGIC);
    expect(bytes.readUInt32LE(8)).toBe(SNAPSHOT_FORMAT_VERSION);
    expect(Number(bytes.readBigUInt64LE(24))).toBe(size);
    const headerLength = bytes.readUInt32LE(12);
    expect(bytes.readUInt32LE(16)).toBe(crc32(bytes.subarray(PREAMBLE_SIZE, PREAMBLE_SIZE + headerLength)));

    const s = openSnapshotFile(file, tskvmVersion());
    try {
      expect(s.header.machine).toEqual(c.header.machine);
      expect(s.header.cpuid).toEqual(c.header.cpuid);
      expect(s.header.tskvm).toBe(tskvmVersion());
      for (const sec of c.sections) expect(s.section(sec.name)).toEqual(sec.bytes);
      for (const entry of s.header.sections) expect(entry.offset % SECTION_ALIGN).toBe(0);
      expect(s.header.memory.runs.map((r) => ({ gpa: r.gpa, length: r.length }))).toEqual(c.memory.runs);
      for (const r of s.header.memory.runs) {
        expect(r.offset % MEMORY_ALIGN).toBe(0);
        expect(bytes.subarray(r.offset, r.offset + r.length)).toEqual(Buffer.from(c.memory.ram.subarray(r.gpa, r.gpa + r.length)));
      }
      // Only the runs: 3 pages of a 16-page guest.
      expect(size).toBeLessThan(s.header.memory.runs[0]!.offset + 3 * PAGE + 1);
    } finally {
      s.close();
    }
    expect(openAndVerify(file).memory.runs).toHaveLength(2);
  });

  it('a guest with no saved pages and one with all its pages in one run', async () => {
    for (const runs of [[], [{ gpa: 0, length: 16 * PAGE }]]) {
      const file = tempPath();
      await writeSnapshotFile(file, content({ runs }));
      expect(openAndVerify(file).memory.runs).toHaveLength(runs.length);
    }
  });

  it('any content round-trips (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.integer({ min: 0, max: 31 }), { maxLength: 12 }),
        fc.array(fc.record({ name: fc.string({ minLength: 1, maxLength: 12 }), bytes: fc.uint8Array({ maxLength: 300 }) }), {
          maxLength: 6,
        }),
        async (pageList, rawSections) => {
          const pages = [...pageList].sort((a, b) => a - b);
          const runs = mergeRuns(
            pages.map((p) => ({ gpa: p * PAGE, length: PAGE })),
            64,
          ).reduce<MemoryRange[]>((out, r) => {
            const last = out.at(-1);
            if (last && last.gpa + last.length === r.gpa) last.length += r.length;
            else out.push({ ...r });
            return out;
          }, []);
          const sections = [...new Map(rawSections.map((s) => [s.name, s])).values()];
          const file = tempPath();
          await writeSnapshotFile(file, content({ pages: 32, runs, sections }));
          const s = openSnapshotFile(file, tskvmVersion());
          try {
            for (const sec of sections) expect(s.section(sec.name)).toEqual(sec.bytes);
          } finally {
            s.close();
          }
          openAndVerify(file);
          rmSync(file);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('atomic writes', () => {
  it('replaces an existing file whole, and leaves no temporary file behind', async () => {
    const file = tempPath();
    writeFileSync(file, 'old contents');
    await writeSnapshotFile(file, content());
    openAndVerify(file);
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('a write that fails midway leaves the old file as it was and removes its temporary file', async () => {
    const file = tempPath();
    writeFileSync(file, 'old contents');
    const c = content();
    // Guest RAM that fails once its pages are being written (after the sections are in the temporary file).
    class FailingRam extends Uint8Array {
      override subarray(): never {
        throw new Error('the disk went away');
      }
    }
    const ram = new FailingRam(c.memory.ram.length);
    await expect(writeSnapshotFile(file, { ...c, memory: { ...c.memory, ram } })).rejects.toThrow(
      /cannot write snapshot .*: the disk went away/,
    );
    expect(readFileSync(file, 'utf8')).toBe('old contents');
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('a directory that does not exist is a UsageError naming the file', async () => {
    const file = path.join(dir, 'no', 'such', 'dir', 'x.snap');
    await expect(writeSnapshotFile(file, content())).rejects.toThrow(new RegExp(`cannot write snapshot ${file}`));
  });
});

describe('refusing bad snapshot files, with the reason', () => {
  async function good(): Promise<string> {
    const file = tempPath();
    await writeSnapshotFile(file, content());
    return file;
  }

  it('a file that does not exist', () => {
    expect(refusal(() => openSnapshotFile(path.join(dir, 'missing.snap'), tskvmVersion()))).toMatch(
      /cannot read snapshot .*missing\.snap: no such file/,
    );
  });

  it('not a snapshot: empty, or without the magic', async () => {
    const empty = tempPath();
    writeFileSync(empty, '');
    expect(refusal(() => openSnapshotFile(empty, tskvmVersion()))).toMatch(/is not a tskvm snapshot \(it does not start with "TSKVMSNP"\)/);
    const file = await good();
    flipBit(file, 0, 0);
    expect(refusal(() => openSnapshotFile(file, tskvmVersion()))).toMatch(/is not a tskvm snapshot/);
  });

  it('truncated anywhere, or with bytes appended', async () => {
    const file = await good();
    const bytes = readFileSync(file);
    for (const keep of [8, 20, PREAMBLE_SIZE + 10, bytes.length - PAGE, bytes.length - 1]) {
      writeFileSync(file, bytes.subarray(0, keep));
      expect(
        refusal(() => openSnapshotFile(file, tskvmVersion())),
        `${keep} bytes`,
      ).toMatch(/is truncated/);
    }
    writeFileSync(file, Buffer.concat([bytes, Buffer.from([0])]));
    expect(refusal(() => openSnapshotFile(file, tskvmVersion()))).toMatch(/has 1 bytes more than the \d+ it was written with/);
  });

  it('another format version', async () => {
    const file = await good();
    const bytes = readFileSync(file);
    bytes.writeUInt32LE(SNAPSHOT_FORMAT_VERSION + 1, 8);
    writeFileSync(file, bytes);
    expect(refusal(() => openSnapshotFile(file, tskvmVersion()))).toMatch(
      new RegExp(`snapshot format ${SNAPSHOT_FORMAT_VERSION + 1}; this tskvm reads format ${SNAPSHOT_FORMAT_VERSION} only`),
    );
  });

  it('made by another tskvm version', async () => {
    const file = tempPath();
    await writeSnapshotFile(file, content({ tskvm: '0.0.1-other' }));
    expect(refusal(() => openSnapshotFile(file, tskvmVersion()))).toMatch(
      new RegExp(`made by tskvm 0\\.0\\.1-other; this is tskvm ${tskvmVersion().replace(/\./g, '\\.')}`),
    );
  });

  it('a bit flipped in the header, in a section, in a memory run', async () => {
    const file = await good();
    const header = openAndVerify(file);
    const regs = header.sections.find((s) => s.name === 'vcpu0.regs')!;
    const run = header.memory.runs[1]!;
    const cases: [number, RegExp][] = [
      [PREAMBLE_SIZE + 3, /its header fails its CRC-32 check/],
      [regs.offset + 100, /section "vcpu0\.regs" fails its CRC-32 check/],
      [run.offset + PAGE + 5, /memory run 1 \(guest-physical 0x3000, 8192 bytes\) fails its CRC-32 check/],
    ];
    for (const [byte, reason] of cases) {
      const copy = tempPath();
      writeFileSync(copy, readFileSync(file));
      flipBit(copy, byte, 6);
      expect(refusal(() => openAndVerify(copy))).toMatch(reason);
    }
  });

  it('any single bit flipped where a checksum covers it is caught (fast-check)', async () => {
    const file = await good();
    const header = openAndVerify(file);
    const original = readFileSync(file);
    // Every byte some check covers: preamble, header, sections, memory runs (alignment gaps are unused).
    const covered: [number, number][] = [
      [0, PREAMBLE_SIZE + original.readUInt32LE(12)],
      ...header.sections.map((s): [number, number] => [s.offset, s.offset + s.length]),
      ...header.memory.runs.map((r): [number, number] => [r.offset, r.offset + r.length]),
    ];
    const positions = covered.flatMap(([from, to]) => [from, to - 1, Math.floor((from + to) / 2)]);
    const copy = tempPath();
    fc.assert(
      fc.property(
        fc.oneof(
          fc.constantFrom(...positions),
          fc.integer({ min: 0, max: original.length - 1 }).filter((b) => covered.some(([f, t]) => b >= f && b < t)),
        ),
        fc.integer({ min: 0, max: 7 }),
        (byte, bit) => {
          const bytes = Buffer.from(original);
          bytes[byte]! ^= 1 << bit;
          writeFileSync(copy, bytes);
          expect(() => openAndVerify(copy)).toThrow(UsageError);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a header with a valid checksum but an impossible layout', () => {
    const h = (changes: (header: Record<string, unknown>) => void): unknown => {
      const header = JSON.parse(
        JSON.stringify({
          format: 1,
          tskvm: 'x',
          created: 'now',
          host: { kernel: 'k', cpu: 'c' },
          machine: { memorySize: 8 * PAGE, cpus: 1, irqchip: true, board: {} },
          cpuid: [],
          vcpus: [{ id: 0, mpState: 0, tscKhz: 1 }],
          sections: [{ name: 'a', offset: 4096, length: 10, crc32: '00000000' }],
          memory: { size: 8 * PAGE, pageSize: PAGE, detection: 'd', runs: [{ gpa: 0, length: PAGE, offset: 8192, crc32: '00000000' }] },
        }),
      ) as Record<string, unknown>;
      changes(header);
      return header;
    };
    const ok = h(() => {});
    expect(() => validateHeader(ok, 3 * PAGE)).not.toThrow();
    const memory = (x: Record<string, unknown>): Record<string, unknown> => x.memory as Record<string, unknown>;
    const runs = (x: Record<string, unknown>): Record<string, unknown>[] => memory(x).runs as Record<string, unknown>[];
    const bad: [(x: Record<string, unknown>) => void, RegExp][] = [
      [(x) => (runs(x)[0]!.offset = 8193), /not page-aligned/],
      [(x) => (runs(x)[0]!.gpa = 8 * PAGE), /outside guest RAM|not an integer/],
      [(x) => (runs(x)[0]!.offset = 4096), /overlaps/],
      [(x) => (runs(x)[0]!.length = 2 * PAGE), /past the end of the file/],
      [(x) => ((x.sections as Record<string, unknown>[])[0]!.offset = 4097), /not a multiple of 8/],
      [(x) => (x.vcpus = []), /lists 0 vCPUs for a 1-vCPU machine/],
      [(x) => (memory(x).size = 4 * PAGE), /is not machine.memorySize/],
      [(x) => ((x.machine as Record<string, unknown>).cpus = 0), /machine.cpus is 0/],
      [(x) => (runs(x)[0]!.crc32 = 'zz'), /not a CRC-32/],
      [(x) => delete x.cpuid, /cpuid is not an array/],
    ];
    for (const [change, reason] of bad) expect(() => validateHeader(h(change), 3 * PAGE)).toThrow(reason);
  });
});

describe('mergeRuns', () => {
  it('merges across the smallest gaps until at most the limit remain, covering every page', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: 500 }), { maxLength: 200 }),
        fc.integer({ min: 1, max: 20 }),
        (pageList, max) => {
          const pages = [...pageList].sort((a, b) => a - b);
          const runs = pages.map((p) => ({ gpa: p * PAGE, length: PAGE }));
          const merged = mergeRuns(runs, max);
          expect(merged.length).toBe(Math.min(runs.length, max));
          for (const p of pages) expect(merged.some((r) => r.gpa <= p * PAGE && p * PAGE < r.gpa + r.length)).toBe(true);
          for (let i = 1; i < merged.length; i++) expect(merged[i]!.gpa).toBeGreaterThan(merged[i - 1]!.gpa + merged[i - 1]!.length - 1);
        },
      ),
    );
  });
});
