/**
 * Sizes and durations as people type them on a command line: `--memory 16M`, `--timeout 1.5s`.
 */
import { UsageError } from './errors.js';
import { PAGE_SIZE } from './kvm/constants.js';

const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/**
 * The largest guest RAM accepted: 4 GiB, the largest ArrayBuffer Node 20 makes over a mapping,
 * and tskvm views guest RAM as one buffer. Larger guests need windowed views (not yet).
 */
export const MEMORY_MAX = 4 * 2 ** 30;

/**
 * Parses a size: a number with an optional binary suffix K, M, G or T (KiB/KB/k... all mean
 * powers of 1024) or B for bytes. A bare number is MiB, as with QEMU's -m and kvmtool's -m.
 */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:([kKmMgGtT])(?:i?[bB])?|([bB]))?\s*$/.exec(text);
  if (!m) throw new UsageError(`invalid ${what} '${text}': use a number with a suffix K, M or G, e.g. 16M (a bare number means MiB)`);
  const unit = m[2] ? SIZE_UNITS[m[2].toUpperCase()]! : m[3] ? 1 : SIZE_UNITS.M!;
  const bytes = Number(m[1]) * unit;
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`invalid ${what} '${text}': not a whole number of bytes`);
  return bytes;
}

const MIB = 2 ** 20;

/**
 * What to tell a user whose guest needs `neededBytes` of RAM: the --memory to give (whole MiB,
 * the CLI's unit), or that no guest tskvm can make is large enough. The loaders and the guest-file
 * checks share it so the advice names a size the machine can have.
 */
export function memoryAdvice(neededBytes: number): string {
  const needed = Math.ceil(neededBytes / MIB);
  return needed * MIB <= MEMORY_MAX
    ? `raise options.memory to at least ${needed}M`
    : `it cannot fit in any guest (at most ${MEMORY_MAX / 2 ** 30}G of RAM)`;
}

/** Parses and checks a guest memory size: whole pages, at least one, at most MEMORY_MAX. */
export function parseMemorySize(text: string): number {
  const bytes = parseSize(text, 'memory size');
  if (bytes <= 0) throw new UsageError(`invalid memory size '${text}': guest memory must be larger than 0`);
  if (bytes % PAGE_SIZE !== 0) throw new UsageError(`invalid memory size '${text}': guest memory must be a whole number of 4K pages`);
  if (bytes > MEMORY_MAX) throw new UsageError(`invalid memory size '${text}': at most 4G of guest memory is supported`);
  return bytes;
}

const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
/** setTimeout's limit (2^31-1 ms, about 24.8 days). */
export const DURATION_MAX_MS = 2 ** 31 - 1;

/** Parses a duration: a number with ms, s, m or h; a bare number is seconds, as with timeout(1). */
export function parseDuration(text: string, what = 'duration'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!m)
    throw new UsageError(
      `invalid ${what} '${text}': use a number with a unit ms, s, m or h, e.g. 10s or 500ms (a bare number means seconds)`,
    );
  const ms = Number(m[1]) * DURATION_UNITS[m[2] ?? 's']!;
  if (ms <= 0) throw new UsageError(`invalid ${what} '${text}': it must be longer than 0`);
  if (ms > DURATION_MAX_MS) throw new UsageError(`invalid ${what} '${text}': at most 24 days`);
  return Math.ceil(ms);
}

/**
 * Milliseconds on the monotonic clock, as performance.now() counts them but from another origin:
 * process.hrtime needs no module loaded, where the first performance.now() of a process loads
 * Node's perf_hooks (~1.5 ms here, on every `tskvm run`'s path).
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
