/**
 * Facts about the host that over-commit decisions need, read from /proc and /sys (Linux). Each
 * returns undefined where the file is missing, rather than guessing.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';

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

/** CPUs this process may run on. */
export function hostCpus(): number {
  return os.availableParallelism();
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
