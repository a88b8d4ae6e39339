/**
 * What --trace, --stats and --step add to the exit loop, built in the vCPU thread from the job's
 * options. None of it exists when those options are off: the plain loop pays one `if`.
 */
import { writeSync } from 'node:fs';
import { disassemble, bitnessFor } from '../debug/disasm.js';
import { ExitStats } from '../debug/stats.js';
import { formatStep } from '../debug/step.js';
import { formatTraceLine, TRACE_KINDS } from '../debug/trace.js';
import type { VcpuFd } from '../kvm/ioctls.js';
import type { VcpuExit } from '../kvm/run.js';
import { CR0_PG, cpuMode, type KvmRegs } from '../kvm/structs.js';
import { KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP } from '../kvm/x86.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { readLinear } from '../memory/linear.js';
import type { ExitObserver } from './exit-loop.js';
import type { VcpuJobDebug } from './thread.js';

/** The longest x86 instruction. */
const MAX_INSTRUCTION_BYTES = 15;

/** --trace without kinds: every exit but the kicks (tskvm's own halt polls; `--trace all` shows them). */
const DEFAULT_TRACE_KINDS = TRACE_KINDS.filter((kind) => kind !== 'intr');

/** The kind names --trace filters on, for each exit. */
function traceKind(exit: VcpuExit): string {
  return exit.kind;
}

export function createExitObserver(debug: VcpuJobDebug, vcpu: VcpuFd, vcpuId: number): ExitObserver | undefined {
  const { trace } = debug;
  const stats = debug.stats ? new ExitStats() : undefined;
  if (!trace && !stats) return undefined;
  const kinds = new Set(trace?.kinds ?? DEFAULT_TRACE_KINDS);
  const ports = trace?.ports;
  const wallStart = performance.now();
  const traceOut = trace ? new LineWriter(trace.fd, 'the trace') : undefined;

  const traced = (exit: VcpuExit): boolean => {
    if (!kinds.has(traceKind(exit))) return false;
    if (ports && exit.kind === 'io') return ports.some(([lo, hi]) => exit.port >= lo && exit.port <= hi);
    return !ports || exit.kind !== 'io';
  };

  return {
    timed: stats !== undefined,
    afterExit(exit, device, runNs, handlerNs) {
      if (stats) {
        stats.addRunNs(runNs);
        // A kick (-EINTR) is tskvm's own doing, not the guest's: its KVM_RUN time counts, but it
        // is no exit of the guest's (result JSON's exits.intr counts kicks).
        if (exit.kind !== 'intr') stats.record(exit.kind, statsKey(exit, device), handlerNs);
      }
      if (traceOut?.open && traced(exit)) {
        const regs = vcpu.getRegs();
        const cs = vcpu.getSregs().cs.selector;
        const line = formatTraceLine({
          elapsedNs: process.hrtime.bigint() - debug.startNs,
          vcpu: vcpuId,
          exit,
          data: exitData(exit),
          device,
          rip: regs.rip,
          cs,
        });
        traceOut.write(line);
      }
    },
    finish() {
      if (!stats) return undefined;
      stats.setWallNs((performance.now() - wallStart) * 1e6);
      return stats.toJSON();
    },
  };
}

function statsKey(exit: VcpuExit, device: string | undefined): string {
  const where = device ?? 'unassigned';
  if (exit.kind === 'io') return `${where} 0x${exit.port.toString(16)}`;
  if (exit.kind === 'mmio') return `${where} (mmio)`; // by device: a framebuffer would make a row per address
  return exit.kind;
}

function exitData(exit: VcpuExit): Uint8Array | undefined {
  return exit.kind === 'io' || exit.kind === 'mmio' ? exit.data.slice() : undefined;
}

/**
 * --step: turns on single-stepping and returns the hook for each KVM_EXIT_DEBUG, which prints
 * the instruction just executed and the registers it changed.
 */
export function startSingleStep(vcpu: VcpuFd, memory: GuestMemory, fd: number): () => void {
  vcpu.setGuestDebug({ control: KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP, debugreg: [0n, 0n, 0n, 0n], dr7: 0n });
  let before = snapshot(vcpu, memory);
  const out = new LineWriter(fd, 'the --step output');
  return () => {
    const after = snapshot(vcpu, memory);
    if (out.open) out.write(formatStep(before.regs, after.regs, before.insn, before.cs, before.mode));
    before = after;
  };
}

function snapshot(
  vcpu: VcpuFd,
  memory: GuestMemory,
): { regs: KvmRegs; insn: ReturnType<typeof disassemble>[number] | undefined; cs: number; mode: ReturnType<typeof cpuMode> } {
  const regs = vcpu.getRegs();
  const sregs = vcpu.getSregs();
  const mode = cpuMode(sregs);
  // 64-bit code ignores the CS base; elsewhere the linear address wraps at 4 GiB.
  const linear = sregs.cs.l ? regs.rip : (sregs.cs.base + regs.rip) & 0xffffffffn;
  const bytes = readLinear(memory.bytes, linear, MAX_INSTRUCTION_BYTES, sregs.cr0 & CR0_PG ? (at) => vcpu.translate(at) : undefined);
  const [insn] = disassemble(bytes, regs.rip, bitnessFor(mode, sregs.cs.db, sregs.cs.l), 1);
  return { regs, insn, cs: sregs.cs.selector, mode };
}

/**
 * Lines to a trace or step fd. Once the reader has gone (EPIPE, as under `| head`) it stops
 * quietly and the guest runs on, as it does when stdout's reader goes away; any other failure
 * (ENOSPC, EIO) stops it too, and is reported at the end of the run.
 */
export class LineWriter {
  open = true;
  /** A write failure other than EPIPE. */
  error: string | undefined;
  private static readonly all: LineWriter[] = [];

  constructor(
    private readonly fd: number,
    private readonly what: string,
  ) {
    LineWriter.all.push(this);
  }

  write(line: string): void {
    try {
      writeSync(this.fd, `${line}\n`);
    } catch (err) {
      this.open = false;
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EPIPE') this.error = `cannot write ${this.what} (fd ${this.fd}): ${code ?? (err as Error).message}`;
    }
  }

  /** The failures of every writer made in this thread since the last call (one job's). */
  static takeErrors(): string[] {
    const errors = LineWriter.all.map((w) => w.error).filter((e): e is string => e !== undefined);
    LineWriter.all.length = 0;
    return errors;
  }
}
