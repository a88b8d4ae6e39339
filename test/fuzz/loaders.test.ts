/**
 * Fuzzing the loaders (src/loader): flat binaries, boot sectors, ELF32/ELF64, multiboot with an
 * ELF or the a.out kludge, and multiboot modules, from random bytes and from valid images with
 * random mutations. Whatever the image, a load either succeeds within guest RAM or throws a
 * UsageError (LoaderError): never another error type, never a write outside guest RAM or outside
 * what the loader says it loaded, and nothing written at all when it refuses.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { pcE820Map } from '../../src/arch/x86/e820.js';
import { BOOT_GDT_SIZE, PAGE_TABLES_SIZE } from '../../src/arch/x86/pc-layout.js';
import { UsageError } from '../../src/errors.js';
import { parseElf } from '../../src/loader/elf.js';
import { GUEST_FORMATS, loadGuest, type GuestFormatChoice, type LoadedGuest } from '../../src/loader/guest.js';
import { BOOT_SECTOR_ADDRESS, BOOT_SECTOR_SIZE, FLAT_LOAD_ADDRESS } from '../../src/loader/image.js';
import { loadMultiboot, type LoadedMultiboot, type MultibootModule } from '../../src/loader/multiboot.js';
import { pcReservedRanges, type AddressRange } from '../../src/loader/placement.js';
import { FUZZ_TIMEOUT_MS, fuzz } from './fuzz-config.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Bytes on either side of guest RAM in the same buffer: a write there is a write outside RAM. */
const GUARD = 64 * KiB;
const CANARY = 0xa5;
const MEMORY_SIZES = [64 * KiB, 1 * MiB, 1 * MiB + 64 * KiB, 2 * MiB] as const;
const LARGEST = Math.max(...MEMORY_SIZES) + 2 * GUARD;
const CANARY_BYTES = Buffer.alloc(LARGEST, CANARY);

const MULTIBOOT_MAGIC = 0x1badb002;
const MULTIBOOT_AOUT_KLUDGE = 1 << 16;
const MULTIBOOT_SEARCH = 8 * KiB;
const U32 = 2 ** 32;

// ---- images ----------------------------------------------------------------------------------

interface SegmentSpec {
  type: number;
  paddr: number;
  filesz: number;
  memsz: number;
}

/** A structurally valid ELF executable (what parseElf accepts, give or take the values drawn). */
function buildElf(cls: 32 | 64, entry: number, segments: SegmentSpec[], fill: number): Uint8Array {
  const is64 = cls === 64;
  const ehsize = is64 ? 64 : 52;
  const phsize = is64 ? 56 : 32;
  const dataStart = ehsize + phsize * segments.length;
  const total = dataStart + segments.reduce((n, s) => n + s.filesz, 0);
  const image = new Uint8Array(total).fill(fill);
  const v = new DataView(image.buffer);
  image.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1]);
  image.fill(0, 7, 16);
  v.setUint16(16, 2, true); // ET_EXEC
  v.setUint16(18, is64 ? 62 : 3, true);
  v.setUint32(20, 1, true);
  let offset = dataStart;
  if (is64) {
    v.setBigUint64(24, BigInt(entry), true);
    v.setBigUint64(32, BigInt(ehsize), true);
    v.setUint16(52, ehsize, true);
    v.setUint16(54, phsize, true);
    v.setUint16(56, segments.length, true);
  } else {
    v.setUint32(24, entry, true);
    v.setUint32(28, ehsize, true);
    v.setUint16(40, ehsize, true);
    v.setUint16(42, phsize, true);
    v.setUint16(44, segments.length, true);
  }
  segments.forEach((s, i) => {
    const ph = ehsize + i * phsize;
    v.setUint32(ph, s.type, true);
    if (is64) {
      v.setBigUint64(ph + 8, BigInt(offset), true);
      v.setBigUint64(ph + 16, BigInt(s.paddr), true);
      v.setBigUint64(ph + 24, BigInt(s.paddr), true);
      v.setBigUint64(ph + 32, BigInt(s.filesz), true);
      v.setBigUint64(ph + 40, BigInt(s.memsz), true);
    } else {
      v.setUint32(ph + 4, offset, true);
      v.setUint32(ph + 8, s.paddr, true);
      v.setUint32(ph + 12, s.paddr, true);
      v.setUint32(ph + 16, s.filesz, true);
      v.setUint32(ph + 20, s.memsz, true);
    }
    offset += s.filesz;
  });
  return image;
}

/** Mostly `usual`, sometimes something else: valid images should mostly load, so the checks after a load run. */
function mostly<T>(usual: fc.Arbitrary<T>, other: fc.Arbitrary<T>, weight = 4): fc.Arbitrary<T> {
  return fc.oneof({ weight, arbitrary: usual }, { weight: 1, arbitrary: other });
}

/** Segments laid out upwards from a base with gaps (sometimes none, sometimes overlapping), types mostly PT_LOAD. */
const segmentsArb = fc
  .record({
    base: mostly(fc.constantFrom(0x100000, 0x8000, 0x10000), fc.oneof(fc.integer({ min: 0, max: 3 * MiB }), fc.constant(0xfffff000))),
    segments: fc.array(
      fc.record({
        type: mostly(fc.constant(1), fc.constantFrom(0, 2, 4, 6, 0x6474e551)),
        gap: mostly(fc.integer({ min: 0, max: 64 * KiB }), fc.integer({ min: -4 * KiB, max: 0 })),
        filesz: fc.integer({ min: 0, max: 3 * KiB }),
        bss: mostly(fc.integer({ min: 0, max: 16 * KiB }), fc.constantFrom(MiB, 0xffffffff), 12),
      }),
      { minLength: 1, maxLength: 4 },
    ),
  })
  .map(({ base, segments }) => {
    let at = base;
    return segments.map((s) => {
      const paddr = Math.max(0, at + s.gap);
      const memsz = Math.min(s.filesz + s.bss, 0xffffffff);
      at = paddr + memsz;
      return { type: s.type, paddr, filesz: s.filesz, memsz };
    });
  });

function elfArbOf(classes: readonly (32 | 64)[]): fc.Arbitrary<Uint8Array> {
  return fc
    .record({
      cls: fc.constantFrom(...classes),
      entry: mostly(fc.integer({ min: 0, max: 2 * MiB }), fc.constantFrom(0xffffffff, 2 ** 40)),
      segments: segmentsArb,
      fill: fc.integer({ min: 0, max: 255 }),
    })
    .map(({ cls, entry, segments, fill }) => buildElf(cls, cls === 32 ? entry % U32 : entry, segments, fill));
}

const elfArb = elfArbOf([32, 64]);

/** magic, flags, checksum (right unless `badChecksum`), then the a.out kludge's address fields. */
function multibootHeader(flags: number, aout: number[] | undefined, badChecksum: boolean): Uint8Array {
  const header = new Uint8Array(aout ? 32 : 12);
  const v = new DataView(header.buffer);
  v.setUint32(0, MULTIBOOT_MAGIC, true);
  v.setUint32(4, flags >>> 0, true);
  v.setUint32(8, ((U32 - ((MULTIBOOT_MAGIC + (flags >>> 0)) % U32)) % U32) ^ (badChecksum ? 1 : 0), true);
  aout?.forEach((field, i) => v.setUint32(12 + 4 * i, field >>> 0, true));
  return header;
}

/** An a.out-kludge kernel: header_addr/load_addr/load_end/bss_end/entry around a sane layout, often wrong. */
const aoutArb = fc
  .record({
    length: fc.integer({ min: 32, max: 12 * KiB }),
    headerSlot: fc.integer({ min: 0, max: MULTIBOOT_SEARCH / 4 }),
    loadAddr: mostly(
      fc.constantFrom(0x100000, 0x8000, 0x10000),
      fc.oneof(fc.constantFrom(0, 0x1ff000, 0xfffff000), fc.integer({ min: 0, max: 3 * MiB })),
    ),
    headerDelta: mostly(fc.constant(undefined), fc.integer({ min: -64, max: 16 * KiB })),
    loadEnd: mostly(fc.constant(0), fc.oneof(fc.integer({ min: -64, max: 16 * KiB }), fc.constant(0xffffffff))),
    bssEnd: mostly(fc.constant(0), fc.oneof(fc.integer({ min: -64, max: 256 * KiB }), fc.constant(0xffffffff))),
    entry: fc.integer({ min: 0, max: 0xffffffff }),
    flags: mostly(fc.constantFrom(0, 1, 2, 3, 4, 7), fc.integer({ min: 0, max: 0xffff })),
    badChecksum: mostly(fc.constant(false), fc.constant(true)),
    fill: fc.integer({ min: 0, max: 255 }),
  })
  .map((k) => {
    const offset = Math.min(k.headerSlot * 4, k.length - 32) & ~3;
    const image = new Uint8Array(k.length).fill(k.fill);
    // Consistent by default: the header sits `offset` bytes into the text, loaded at loadAddr.
    const headerAddr = k.loadAddr + (k.headerDelta ?? offset);
    const field = (n: number, base: number): number => (n === 0 || n === 0xffffffff ? n : base + n);
    const aout = [
      headerAddr,
      k.loadAddr,
      field(k.loadEnd, k.loadAddr + k.length - offset),
      field(k.bssEnd, k.loadAddr + k.length),
      k.entry,
    ];
    image.set(multibootHeader(k.flags | MULTIBOOT_AOUT_KLUDGE, aout, k.badChecksum), offset);
    return image;
  });

/** A multiboot kernel that is an ELF32 (or not, when the header lands in a random file). */
const multibootElfArb = fc
  .record({ elf: mostly(elfArbOf([32]), elfArbOf([64])), slot: fc.integer({ min: 0, max: 256 }), flags: fc.constantFrom(0, 1, 2, 3, 4) })
  .map(({ elf, slot, flags }) => {
    const header = multibootHeader(flags, undefined, false);
    const at = Math.min(slot * 4, Math.max(0, elf.length - header.length)) & ~3;
    const image = new Uint8Array(Math.max(elf.length, at + header.length));
    image.set(elf);
    image.set(header, at);
    return image;
  });

const bootSectorArb = fc.uint8Array({ minLength: BOOT_SECTOR_SIZE, maxLength: BOOT_SECTOR_SIZE }).map((b) => (b.set([0x55, 0xaa], 510), b));

/** Byte-level damage: overwrite fields with edge values, flip bits, truncate or extend. */
type Mutation =
  | { kind: 'set8'; at: number; value: number }
  | { kind: 'set32'; at: number; value: number }
  | { kind: 'set64'; at: number; value: bigint }
  | { kind: 'truncate'; at: number }
  | { kind: 'append'; bytes: Uint8Array };

const edge32 = fc.constantFrom(0, 1, 2, 0x7c00, 0x10000, 0x100000, 0x200000, 0x7fffffff, 0x80000000, 0xfffff000, 0xffffffff);
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('set8' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('set32' as const), at: fc.nat(), value: fc.oneof(edge32, fc.integer({ min: 0, max: 0xffffffff })) }),
  fc.record({
    kind: fc.constant('set64' as const),
    at: fc.nat(),
    value: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constant(2n ** 63n)),
  }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ maxLength: 64 }) }),
);

/** Header fields are where mutations matter: aim most of them at the first 256 bytes. */
function mutate(image: Uint8Array, mutations: Mutation[]): Uint8Array {
  let out = image.slice();
  for (const m of mutations) {
    if (out.length === 0) break;
    const at = 'at' in m ? (m.at % 4 === 0 ? m.at % Math.min(out.length, 256) : m.at % out.length) : 0;
    const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
    if (m.kind === 'set8') out[at] = m.value;
    else if (m.kind === 'set32' && at + 4 <= out.length) v.setUint32(at, m.value, true);
    else if (m.kind === 'set64' && at + 8 <= out.length) v.setBigUint64(at, m.value, true);
    else if (m.kind === 'truncate') out = out.slice(0, at);
    else if (m.kind === 'append') out = Uint8Array.from([...out, ...m.bytes]);
  }
  return out;
}

const validImageArb = fc.oneof(
  elfArb,
  aoutArb,
  multibootElfArb,
  bootSectorArb,
  fc.uint8Array({ minLength: 1, maxLength: 4 * KiB }), // a flat binary: any bytes
);

const imageArb = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.tuple(validImageArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 })).map(([image, ms]) => mutate(image, ms)),
  },
  { weight: 3, arbitrary: validImageArb },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 8 * KiB }) },
  // Random bytes behind a magic number, so the parsers get past their first check.
  {
    weight: 1,
    arbitrary: fc.uint8Array({ minLength: 48, maxLength: 2 * KiB }).map((b) => Uint8Array.from([0x7f, 0x45, 0x4c, 0x46, ...b])),
  },
);

/** Mostly 2 MiB (room for kernels linked at 1 MiB), sometimes too small for what is loaded. */
const memorySizeArb = mostly(fc.constant(2 * MiB), fc.constantFrom(...MEMORY_SIZES), 2);

const moduleArb: fc.Arbitrary<MultibootModule> = fc.record(
  {
    name: fc.string({ maxLength: 20 }),
    bytes: fc.oneof(
      fc.uint8Array({ maxLength: 4 * KiB }),
      fc.integer({ min: 0, max: 3 * MiB }).map((n) => new Uint8Array(n)),
    ),
    cmdline: fc.string({ maxLength: 20 }),
  },
  { requiredKeys: ['name', 'bytes'] },
);

// ---- guest memory with guards ------------------------------------------------------------------

interface GuardedMemory {
  whole: Uint8Array;
  memory: Uint8Array;
}

function guardedMemory(size: number): GuardedMemory {
  const whole = new Uint8Array(size + 2 * GUARD).fill(CANARY);
  return { whole, memory: whole.subarray(GUARD, GUARD + size) };
}

/** Whether bytes [start, end) of `bytes` still hold the canary. */
function untouched(bytes: Uint8Array, start: number, end: number): boolean {
  if (end <= start) return true;
  return Buffer.compare(Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start), CANARY_BYTES.subarray(0, end - start)) === 0;
}

/** Every byte of `whole` outside `regions` (guest-physical, relative to RAM) still holds the canary. */
function onlyWrote(g: GuardedMemory, regions: AddressRange[]): void {
  const inWhole = regions
    .filter((r) => r.end > r.start)
    .map((r) => ({ start: r.start + GUARD, end: r.end + GUARD }))
    .sort((a, b) => a.start - b.start);
  let at = 0;
  for (const r of inWhole) {
    expect(r.start).toBeGreaterThanOrEqual(GUARD); // a declared region outside RAM is itself a bug
    expect(r.end).toBeLessThanOrEqual(GUARD + g.memory.length);
    expect(untouched(g.whole, at, r.start), `bytes written below 0x${(r.start - GUARD).toString(16)}, outside what was loaded`).toBe(true);
    at = Math.max(at, r.end);
  }
  expect(untouched(g.whole, at, g.whole.length), 'bytes written outside what was loaded').toBe(true);
}

/** Runs a load that must either succeed or throw a UsageError having written nothing. */
function loadOrRefuse<T>(g: GuardedMemory, load: () => T): T | undefined {
  try {
    return load();
  } catch (err) {
    if (!(err instanceof UsageError)) throw new Error(`not a UsageError: ${String(err)}`, { cause: err });
    expect(err.code).toBe('EIMAGE');
    expect(untouched(g.whole, 0, g.whole.length), 'a refused image wrote to guest memory').toBe(true);
    return undefined;
  }
}

function within(range: AddressRange, size: number): boolean {
  return range.start >= 0 && range.end <= size && range.start <= range.end;
}

function overlaps(a: AddressRange, b: AddressRange): boolean {
  return a.start < b.end && b.start < a.end;
}

/** The boot GDT and page tables lie in RAM, clear of what was loaded and of the PC's own areas. */
function checkBootTables(loaded: LoadedGuest | LoadedMultiboot, loadedRanges: AddressRange[], size: number): void {
  const tables = loaded.bootTables;
  if (!tables) return;
  const placed = [{ start: tables.gdtAddress, end: tables.gdtAddress + BOOT_GDT_SIZE }];
  if (tables.pageTablesAddress !== undefined)
    placed.push({ start: tables.pageTablesAddress, end: tables.pageTablesAddress + PAGE_TABLES_SIZE });
  for (const t of placed) {
    expect(within(t, size)).toBe(true);
    for (const r of [...loadedRanges, ...pcReservedRanges()]) expect(overlaps(t, r)).toBe(false);
  }
}

function multibootRanges(mb: LoadedMultiboot): AddressRange[] {
  return [{ start: mb.kernelStart, end: mb.kernelEnd }, ...mb.modules, { start: mb.infoAddress, end: mb.infoEnd }];
}

/** What a successful loadGuest wrote, found again by re-running the format's own loader on scratch memory. */
function loadedRanges(loaded: LoadedGuest, image: Uint8Array, size: number, options: Parameters<typeof loadGuest>[2]): AddressRange[] {
  switch (loaded.format) {
    case 'flat':
      return [{ start: FLAT_LOAD_ADDRESS, end: FLAT_LOAD_ADDRESS + image.length }];
    case 'bootsector':
      return [{ start: BOOT_SECTOR_ADDRESS, end: BOOT_SECTOR_ADDRESS + BOOT_SECTOR_SIZE }];
    case 'elf':
      return parseElf(image, size, options.name).segments.map((s) => ({ start: s.paddr, end: s.paddr + s.memsz }));
    case 'multiboot':
      return multibootRanges(loadMultiboot(image, new Uint8Array(size), { ...options, e820: options.e820 }));
  }
}

// ---- properties --------------------------------------------------------------------------------

describe('loader fuzzing', () => {
  it(
    'loadGuest: loads within RAM or throws a UsageError, and writes only what it loaded',
    () =>
      fuzz(
        fc.record({
          image: imageArb,
          size: memorySizeArb,
          format: mostly(fc.constant<GuestFormatChoice>('auto'), fc.constantFrom<GuestFormatChoice>(...GUEST_FORMATS)),
          cmdline: mostly(fc.constant(undefined), fc.string({ maxLength: 40 }), 10),
          modules: mostly(fc.constant(undefined), fc.array(moduleArb, { maxLength: 3 }), 10),
          longMode: mostly(fc.constant(undefined), fc.boolean(), 10),
        }),
        ({ image, size, ...extra }) => {
          const g = guardedMemory(size);
          const options = { name: 'fuzz.img', e820: pcE820Map(size), ...extra };
          const loaded = loadOrRefuse(g, () => loadGuest(image, g.memory, options));
          if (!loaded) return;
          const ranges = loadedRanges(loaded, image, size, options);
          for (const r of ranges) expect(within(r, size)).toBe(true);
          onlyWrote(g, ranges);
          checkBootTables(loaded, ranges, size);
          if (loaded.bootState.mode !== 'real') expect(loaded.bootTables).toBeDefined();
        },
        400,
      ),
    FUZZ_TIMEOUT_MS,
  );

  it(
    'parseElf: accepts only segments inside RAM that do not overlap, or throws a LoaderError',
    () =>
      fuzz(
        fc.record({ elf: elfArb, mutations: fc.array(mutationArb, { maxLength: 4 }), size: memorySizeArb }),
        ({ elf, mutations, size }) => {
          const image = mutate(elf, mutations);
          let parsed;
          try {
            parsed = parseElf(image, size, 'fuzz.elf');
          } catch (err) {
            expect(err).toBeInstanceOf(UsageError);
            return;
          }
          const sorted = [...parsed.segments].sort((a, b) => a.paddr - b.paddr);
          expect(sorted.length).toBeGreaterThan(0);
          sorted.forEach((s, i) => {
            expect(within({ start: s.paddr, end: s.paddr + s.memsz }, size)).toBe(true);
            expect(s.offset + s.filesz).toBeLessThanOrEqual(image.length);
            expect(s.filesz).toBeLessThanOrEqual(s.memsz);
            if (i > 0) expect(s.paddr).toBeGreaterThanOrEqual(sorted[i - 1]!.paddr + sorted[i - 1]!.memsz);
          });
          expect(parsed.lowest).toBe(sorted[0]!.paddr);
          expect(parsed.entry).toBeLessThan(U32);
        },
        600,
      ),
    FUZZ_TIMEOUT_MS,
  );

  it(
    'loadMultiboot (ELF and a.out kludge, with modules): kernel, modules and boot information inside RAM, disjoint, and all that is written',
    () =>
      fuzz(
        fc.record({
          image: fc.oneof(
            aoutArb,
            multibootElfArb,
            fc.tuple(aoutArb, fc.array(mutationArb, { maxLength: 3 })).map(([i, ms]) => mutate(i, ms)),
          ),
          size: memorySizeArb,
          modules: fc.array(moduleArb, { maxLength: 3 }),
          cmdline: fc.string({ maxLength: 60 }),
        }),
        ({ image, size, modules, cmdline }) => {
          const g = guardedMemory(size);
          const mb = loadOrRefuse(g, () => loadMultiboot(image, g.memory, { name: 'fuzz.mb', cmdline, modules, e820: pcE820Map(size) }));
          if (!mb) return;
          const ranges = multibootRanges(mb);
          ranges.forEach((r, i) => {
            expect(within(r, size)).toBe(true);
            expect(r.end).toBeLessThanOrEqual(U32);
            for (const other of ranges.slice(i + 1)) if (r.end > r.start && other.end > other.start) expect(overlaps(r, other)).toBe(false);
          });
          expect(mb.modules.length).toBe(modules.length);
          mb.modules.forEach((m, i) => expect(m.end - m.start).toBe(modules[i]!.bytes.length));
          onlyWrote(g, ranges);
          checkBootTables(mb, ranges, size);
          expect(mb.bootState.mode === 'protected' && mb.bootState.regs.rbx).toBe(mb.infoAddress);
        },
        400,
      ),
    FUZZ_TIMEOUT_MS,
  );
});
