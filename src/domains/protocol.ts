/**
 * What the starting command and a supervisor exchange (the arguments, the one-line start report
 * on fd 3, the statistics answer) — in a module of its own, so the commands never import the
 * supervisor (which imports the machine through the library's index).
 */
import type { DomainState } from './runtime.js';
import type { ExitCounts } from '../vcpu/exit-loop.js';

/** What the starting command passes (as JSON in argv). */
export interface SupervisorArgs {
  home: string;
  name: string;
  id: number;
  /** A snapshot to restore instead of booting (restore/`startGuest({ restore })`). */
  restore?: string;
}

/** The first and only line on the start pipe (fd 3): ready, or why not. */
export type StartReport = { ok: true; pid: number; id: number; warnings: string[] } | { ok: false; error: SerializedError };

export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  syscall?: string;
  errno?: number;
}

export function serializeError(err: unknown): SerializedError {
  const e = err as Error & { code?: string; syscall?: string; errno?: number };
  return {
    name: e?.name ?? 'Error',
    message: e?.message ?? String(err),
    ...(e?.code ? { code: String(e.code) } : {}),
    ...(e?.syscall ? { syscall: e.syscall } : {}),
    ...(typeof e?.errno === 'number' ? { errno: e.errno } : {}),
  };
}

/** What x-tskvm-query-stats returns (domstats prints it). */
export interface DomainStatsJson {
  state: DomainState;
  reason: string;
  /** Guest runs this supervisor has finished (a reboot starts a new one). */
  runs: number;
  /** Exits by kind, summed over the runs that ended (the vCPU threads count the current run's). */
  exitsOfEndedRuns: ExitCounts;
  /** The supervisor's CPU time (its vCPU threads and the rest), as libvirt's cpu.time is QEMU's. */
  cpuTimeNs: number;
  cpuUserNs: number;
  cpuSystemNs: number;
  memoryBytes: number;
  /** Guest RAM the guest has touched (resident pages of its mapping). */
  memoryTouchedBytes?: number;
  vcpus: number;
  vcpusMaximum: number;
  lastRun?: { reason: string; exitCode: number; durationMs: number };
}
