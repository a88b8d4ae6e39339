/**
 * Puts a GDB server in front of a vCPU for one run: the DebugTarget over the vCPU, the server on
 * 127.0.0.1, and the rule that gdb only ever talks to a stopped vCPU (a gdb that connects while
 * the guest runs first stops it, as QEMU's gdbstub does).
 */
import { UsageError } from '../errors.js';
import { VcpuDebugTarget } from './debug-target.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { VcpuRunResult } from '../vcpu/exit-loop.js';
import type { Vcpu } from '../vcpu/vcpu.js';
import { startGdbServer } from './stub.js';

export interface GdbAttachOptions {
  port: number;
  /** The vCPU stops before its first instruction (--gdb-wait). */
  wait?: boolean;
  onListening?: (port: number) => void;
  log?: (line: string) => void;
}

export interface AttachedGdb {
  target: VcpuDebugTarget;
  /** Tell the target how the run ends, so gdb hears W or X. */
  attach(running: Promise<VcpuRunResult>): void;
  close(): Promise<void>;
}

export async function startGdb(vcpu: Vcpu, memory: GuestMemory, options: GdbAttachOptions): Promise<AttachedGdb> {
  const target = new VcpuDebugTarget(vcpu, memory, options.wait === true);
  let server;
  try {
    server = await startGdbServer(options.port, target, {
      onListening: options.onListening,
      log: options.log,
      beforeSession: async () => {
        await target.waitForStop();
      },
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(
      code === 'EADDRINUSE'
        ? `cannot serve gdb on 127.0.0.1:${options.port}: the port is in use; pick another --gdb port (0 picks a free one)`
        : `cannot serve gdb on 127.0.0.1:${options.port}: ${(err as Error).message}`,
    );
  }
  return {
    target,
    attach(running) {
      running.then(
        (result) => target.onRunEnd(result),
        (err: Error) => target.onRunEnd(err),
      );
    },
    close: () => server.close(),
  };
}
