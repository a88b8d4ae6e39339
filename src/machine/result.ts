/**
 * How a run ended, as the caller sees it: the vCPUs' outcomes combined and shaped into a
 * RunResult.
 */
import { ExitStats, type ExitStatsJson } from '../debug/stats.js';
import type { GuestFormat } from '../loader/guest.js';
import type { ExitCounts, VcpuRunResult } from '../vcpu/exit-loop.js';
import type { ScreenCapture } from '../bios/screen.js';

/** 'saved': the run ended because options.save wrote its snapshot. */
export type RunReason = 'debug-exit' | 'halt' | 'reset' | 'poweroff' | 'timeout' | 'crash' | 'stopped' | 'saved';

export interface RunResult {
  reason: RunReason;
  /** The value written to the debug-exit port (whole, up to 32 bits); 0 for other reasons. */
  exitCode: number;
  /** COM1 output, decoded as UTF-8 ('' when collectSerial is false). */
  serial: string;
  /** COM1 output, byte for byte. */
  serialBytes: Buffer;
  /** Wall time from the first KVM_RUN to the end of the run. */
  durationMs: number;
  exits: ExitCounts;
  /** Present when reason is 'crash': what happened, and the vCPU's registers. */
  crash?: { description: string; state: string };
  format: GuestFormat;
  /** Loader remarks worth showing the user (e.g. an ignored multiboot video-mode request). */
  notes: string[];
  /** With `stats`: exits by reason and device, KVM_RUN vs handler vs wall time. */
  stats?: ExitStatsJson;
  /** With `dumpOnExit`: the vCPU's registers at the end of the run. */
  state?: string;
  /** Things the user should know about the host (over-commit and the like), for stderr. */
  warnings: string[];
  /** Debug output (the trace, --step) that could not be written (EPIPE is not an error: the reader left). */
  outputErrors?: string[];
  /** With `ksm`: whether the kernel's KSM daemon runs, and how many of this process's pages it merged. */
  ksm?: { running: boolean | undefined; mergingPages: number | undefined };
  /** With `save`: the snapshot it wrote (its file, size, and the time from the pause to the file on disk). */
  saved?: { path: string; bytes: number; pages: number; durationMs: number };
  /** A run through tskvm's BIOS: the final screen, the console's teletype text, and BIOS calls by service. */
  bios?: { screen: ScreenCapture; console: string; calls: Record<string, number> };
}

/** The parts of a result that do not come from the vCPUs. */
export type RunResultBase = Omit<RunResult, 'reason' | 'exitCode' | 'crash' | 'exits' | 'stats' | 'state' | 'outputErrors'>;

/** Shapes the vCPUs' combined result; `stopReason` says why the machine asked them to stop. */
export function toRunResult(vcpu: VcpuRunResult, base: RunResultBase, stopReason: RunReason | undefined): RunResult {
  const common = {
    ...base,
    exits: vcpu.exits,
    ...(vcpu.stats ? { stats: vcpu.stats as ExitStatsJson } : {}),
    ...(vcpu.state !== undefined ? { state: vcpu.state } : {}),
    ...(vcpu.outputErrors?.length ? { outputErrors: vcpu.outputErrors } : {}),
  };
  const outcome = vcpu.outcome;
  switch (outcome.reason) {
    case 'debug-exit':
      return { ...common, reason: 'debug-exit', exitCode: outcome.exitCode };
    case 'stopped':
      return { ...common, reason: stopReason ?? 'stopped', exitCode: 0 };
    case 'crash':
      return { ...common, reason: 'crash', exitCode: 0, crash: { description: outcome.description, state: outcome.state } };
    case 'halt':
    case 'reset':
    case 'poweroff':
      return { ...common, reason: outcome.reason, exitCode: 0 };
    default: {
      const never: never = outcome;
      throw new Error(`unreachable outcome ${JSON.stringify(never)}`);
    }
  }
}

/**
 * Several vCPUs' results as one: exit counts and statistics add up, `decided` (the vCPU whose end
 * was the guest's) gives the outcome, vCPU 0 the rest.
 */
export function combineVcpuResults(results: readonly VcpuRunResult[], decided: VcpuRunResult | undefined): VcpuRunResult {
  const first = results[0]!;
  const exits = { ...first.exits };
  for (const other of results.slice(1)) for (const key of Object.keys(exits) as (keyof ExitCounts)[]) exits[key] += other.exits[key];
  const stats = results.map((r) => r.stats).filter((x) => x !== undefined) as ExitStatsJson[];
  const merged = stats.length
    ? stats
        .slice(1)
        .reduce((acc, next) => acc.merge(next), ExitStats.fromJSON(stats[0]!))
        .toJSON()
    : undefined;
  const outputErrors = results.flatMap((r) => r.outputErrors ?? []);
  return {
    ...first,
    outcome: (decided ?? first).outcome,
    exits,
    ...(merged ? { stats: merged } : {}),
    ...(outputErrors.length ? { outputErrors } : {}),
  };
}
