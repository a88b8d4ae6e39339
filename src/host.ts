/**
 * Facts about the host that over-commit decisions need, read from /proc and /sys (Linux). Each
 * returns undefined where the file is missing, rather than guessing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { KvmError } from './kvm/error.js';
import { monotonicMs } from './units.js';

/** A file's text, or undefined where it cannot be read (missing, no permission). */
export function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** MemAvailable: what the kernel thinks can be allocated without swapping (bytes). */
export function availableMemory(): number | undefined {
  const m = /^MemAvailable:\s+(\d+) kB$/m.exec(readText('/proc/meminfo') ?? '');
  return m ? Number(m[1]) * 1024 : undefined;
}

/** How old a MemAvailable reading recentAvailableMemory() may return. */
const MEMINFO_MAX_AGE_MS = 1000;
let meminfoReading: { atMs: number; bytes: number | undefined } | undefined;

/**
 * MemAvailable as read at most a second ago: enough for a warning, and a process that builds VM
 * after VM (a test suite) reads /proc/meminfo once a second instead of once per VM (~0.1 ms each).
 */
export function recentAvailableMemory(): number | undefined {
  const now = monotonicMs();
  if (meminfoReading === undefined || now - meminfoReading.atMs > MEMINFO_MAX_AGE_MS)
    meminfoReading = { atMs: now, bytes: availableMemory() };
  return meminfoReading.bytes;
}

/** CPUs this process may run on. */
export function hostCpus(): number {
  return availableParallelism();
}

/** Whether the KSM daemon is merging (/sys/kernel/mm/ksm/run = 1). */
export function ksmRunning(): boolean | undefined {
  const run = readText('/sys/kernel/mm/ksm/run');
  return run === undefined ? undefined : run.trim() === '1';
}

/** Pages of this process that KSM has merged with others (Linux 6.1+: /proc/self/ksm_merging_pages). */
export function ksmMergingPages(): number | undefined {
  const text = readText('/proc/self/ksm_merging_pages');
  return text === undefined ? undefined : Number(text.trim());
}

/** Transparent huge pages mode: always, madvise or never. */
export function transparentHugepageMode(): string | undefined {
  const m = /\[(\w+)\]/.exec(readText('/sys/kernel/mm/transparent_hugepage/enabled') ?? '');
  return m?.[1];
}

/** The soft RLIMIT_NOFILE ("Max open files" in /proc/self/limits), or undefined where unknown. */
export function openFileLimit(): number | undefined {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readText('/proc/self/limits') ?? '');
  return m === null || m[1] === 'unlimited' ? undefined : Number(m[1]);
}

/** File descriptors this process has open now (one readdir of /proc/self/fd). */
export function openFileCount(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return undefined;
  }
}

/**
 * File descriptors a new worker thread may need while it starts (its event loop, and the module
 * files it loads, several at once). A worker that runs out part-way leaks what it had opened, so
 * tskvm refuses to start one without this much room.
 */
export const THREAD_FD_HEADROOM = 64;

let fdLimit: number | undefined | null = null;

/**
 * Throws KvmError ERESOURCE unless THREAD_FD_HEADROOM descriptors are left under the soft limit
 * for this thread and for each of the `starting` threads that have not yet opened theirs.
 */
export function ensureThreadFdHeadroom(what: string, starting = 0): void {
  if (fdLimit === null) fdLimit = openFileLimit();
  if (fdLimit === undefined) return;
  const open = openFileCount();
  if (open !== undefined && fdLimit - open < THREAD_FD_HEADROOM * (starting + 1)) throw KvmError.resource(what, 'EMFILE');
}
