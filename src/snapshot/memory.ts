/**
 * Guest memory in a snapshot: which pages to save, and how restore brings them back.
 *
 * Which pages: those the guest (or the loader) touched and that are not all zeros. mincore(2)
 * says which pages of the anonymous RAM mapping exist at all (a page never touched has none, and
 * reading it to find out would allocate it); each resident page is then compared with a zero
 * page. Ranges that a restore mapped from a snapshot file are scanned whole: their pages live in
 * that file, and mincore would only say whether the page cache holds them now. On a host with
 * swap, a swapped-out page is not resident either, so there every page is scanned.
 *
 * How they come back: each run is mapped MAP_PRIVATE|MAP_FIXED from the file over the anonymous
 * RAM mapping, at the same addresses, so every view of guest RAM stays valid. Reads come from the
 * page cache, shared by every guest restored from the file; a write copies the page for that
 * guest alone. Pages not in the file stay the anonymous mapping's zeros.
 */
import { readFileSync } from 'node:fs';
import { PAGE_SIZE } from '../kvm/constants.js';
import { KvmError } from '../kvm/error.js';
import { native } from '../kvm/native.js';

/** A page-aligned range of guest-physical memory. */
export interface MemoryRange {
  gpa: number;
  length: number;
}

/** Guest RAM as capture and restore see it: where it is mapped, and this thread's view of it. */
export interface RamMapping {
  readonly hostAddr: bigint;
  readonly size: number;
  readonly bytes: Uint8Array;
}

/** mincore's "resident" bit. */
const MINCORE_RESIDENT = 1;
/** Zero-scan granule: a whole 64 KiB block of zeros skips 16 page comparisons. */
const ZERO_BLOCK = 16 * PAGE_SIZE;
const ZERO = Buffer.alloc(ZERO_BLOCK);
const ZERO_PAGE = ZERO.subarray(0, PAGE_SIZE);
/**
 * At most this many runs (one mapping each at restore; the kernel allows ~65,000 per process).
 * Past it, runs separated by the smallest gaps are merged, zero pages and all.
 */
export const MAX_MEMORY_RUNS = 1024;

/** Ranges of each RAM mapping (a GuestMemory) that a restore mapped from a snapshot file. */
const fileBacked = new WeakMap<RamMapping, MemoryRange[]>();

export const DETECTION_MINCORE = 'mincore+zero-scan';
export const DETECTION_FULL = 'zero-scan';

/** How capture will choose pages on this host (see the header comment). */
export function detectionMethod(): string {
  return swapActive() ? DETECTION_FULL : DETECTION_MINCORE;
}

function swapActive(): boolean {
  try {
    // The first line of /proc/swaps is its heading; each further line is an active swap area.
    return readFileSync('/proc/swaps', 'utf8').trim().split('\n').length > 1;
  } catch {
    return true; // cannot tell: scan everything
  }
}

/** The runs of pages to save, in address order, at most MAX_MEMORY_RUNS of them. */
export function touchedRuns(ram: RamMapping, method = detectionMethod()): MemoryRange[] {
  const pages = ram.size / PAGE_SIZE;
  const candidate = new Uint8Array(pages);
  if (method === DETECTION_MINCORE) {
    const r = native().mincore(ram.hostAddr, ram.size, candidate);
    if (r < 0) throw KvmError.fromErrno('mincore guest memory', r);
    for (const range of fileBacked.get(ram) ?? [])
      candidate.fill(MINCORE_RESIDENT, range.gpa / PAGE_SIZE, (range.gpa + range.length) / PAGE_SIZE);
  } else {
    candidate.fill(MINCORE_RESIDENT);
  }
  const bytes = Buffer.from(ram.bytes.buffer, ram.bytes.byteOffset, ram.size);
  const runs: MemoryRange[] = [];
  let runStart = -1;
  const close = (page: number): void => {
    if (runStart >= 0) runs.push({ gpa: runStart * PAGE_SIZE, length: (page - runStart) * PAGE_SIZE });
    runStart = -1;
  };
  const blockPages = ZERO_BLOCK / PAGE_SIZE;
  // Per page (256 MiB is 65,536 of them) the work must be tiny: a page whose first word is not
  // zero is kept on that alone; only the others are compared whole (a memcmp, no view made).
  // Residency is asked first: reading a page that has none would allocate it.
  const words = new Uint32Array(ram.bytes.buffer, ram.bytes.byteOffset, ram.size / Uint32Array.BYTES_PER_ELEMENT);
  const firstWordZero = (at: number): boolean => words[at / Uint32Array.BYTES_PER_ELEMENT] === 0;
  for (let page = 0; page < pages;) {
    // A block of resident pages that is all zeros: skip it in one comparison.
    const at = page * PAGE_SIZE;
    if (page % blockPages === 0 && page + blockPages <= pages && allSet(candidate, page, blockPages) && firstWordZero(at)) {
      if (ZERO.compare(bytes, at, at + ZERO_BLOCK) === 0) {
        close(page);
        page += blockPages;
        continue;
      }
    }
    const keep = (candidate[page]! & MINCORE_RESIDENT) !== 0 && (!firstWordZero(at) || ZERO_PAGE.compare(bytes, at, at + PAGE_SIZE) !== 0);
    if (keep && runStart < 0) runStart = page;
    if (!keep) close(page);
    page++;
  }
  close(pages);
  return mergeRuns(runs, MAX_MEMORY_RUNS);
}

function allSet(vec: Uint8Array, from: number, count: number): boolean {
  for (let i = from; i < from + count; i++) if (!(vec[i]! & MINCORE_RESIDENT)) return false;
  return true;
}

/** Merges the runs separated by the smallest gaps (zero pages and all) until at most `max` remain. */
export function mergeRuns(runs: readonly MemoryRange[], max: number): MemoryRange[] {
  const merges = runs.length - max;
  if (merges <= 0) return runs.map((r) => ({ ...r }));
  const gapAfter = (i: number): number => runs[i + 1]!.gpa - (runs[i]!.gpa + runs[i]!.length);
  const gaps = runs
    .slice(1)
    .map((_, i) => gapAfter(i))
    .sort((a, b) => a - b);
  // Merge every gap below the threshold, and as many equal to it as the count still needs.
  const threshold = gaps[merges - 1]!;
  let atThreshold = merges - gaps.filter((g) => g < threshold).length;
  const out: MemoryRange[] = [{ ...runs[0]! }];
  for (let i = 1; i < runs.length; i++) {
    const gap = gapAfter(i - 1);
    const last = out[out.length - 1]!;
    if (gap < threshold || (gap === threshold && atThreshold-- > 0)) last.length = runs[i]!.gpa + runs[i]!.length - last.gpa;
    else out.push({ ...runs[i]! });
  }
  return out;
}

/**
 * Maps `length` bytes of the snapshot file `fd` from `offset` over guest RAM at `gpa`, copy-on-write,
 * and remembers that this range lives in a file (for a later snapshot of the restored guest).
 */
export function mapFromFile(ram: RamMapping, gpa: number, length: number, fd: number, offset: number): void {
  if (gpa % PAGE_SIZE || length % PAGE_SIZE || offset % PAGE_SIZE || gpa + length > ram.size) {
    throw new RangeError(`memory run 0x${gpa.toString(16)}+${length} at file offset ${offset} is not page-aligned inside RAM`);
  }
  const r = native().mmapFileFixed(ram.hostAddr + BigInt(gpa), length, fd, offset);
  if (r < 0) throw KvmError.fromErrno('mmap snapshot memory', r, `${length} bytes at guest-physical 0x${gpa.toString(16)}`);
  const ranges = fileBacked.get(ram) ?? [];
  ranges.push({ gpa, length });
  fileBacked.set(ram, ranges);
}

/** The ranges of `ram` that live in a snapshot file (for tests and reports). */
export function fileBackedRanges(ram: RamMapping): readonly MemoryRange[] {
  return fileBacked.get(ram) ?? [];
}
