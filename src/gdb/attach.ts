/**
 * Puts a GDB server in front of a machine's vCPUs for one run: the DebugTarget over them, the
 * server on 127.0.0.1, the register layout (chosen, or the image's), and the rule that gdb only
 * ever talks to stopped vCPUs (a gdb that connects while the guest runs first stops every vCPU,
 * as QEMU's gdbstub does).
 */
import { UsageError } from '../errors.js';
import { VcpuDebugTarget } from './debug-target.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { VcpuRunResult } from '../vcpu/exit-loop.js';
import type { Vcpu } from '../vcpu/vcpu.js';
import { layoutForImage } from './image-layout.js';
import type { LayoutName } from './registers.js';
import { startGdbServer } from './stub.js';

export interface GdbAttachOptions {
  port: number;
  /** The vCPUs stop before their first instruction (--gdb-wait). */
  wait?: boolean;
  /** The register layout (--gdb-arch); absent: the image's (layoutForImage), else the boot vCPU's mode's. */
  arch?: LayoutName;
  /** The guest image, for the default layout. */
  image?: Uint8Array;
  onListening?: (port: number) => void;
  /** The one-line hint that gdb uses the other register layout; absent: it goes to stderr. */
  onHint?: (message: string) => void;
  log?: (line: string) => void;
}

export interface AttachedGdb {
  target: VcpuDebugTarget;
  /** Tell the target how the run ends, so gdb hears W or X. */
  attach(running: Promise<VcpuRunResult>): void;
  close(): Promise<void>;
}

export async function startGdb(vcpus: readonly Vcpu[], memory: GuestMemory, options: GdbAttachOptions): Promise<AttachedGdb> {
  const target = new VcpuDebugTarget(vcpus, memory);
  const arch = options.arch ?? layoutForImage(options.image);
  let server;
  try {
    server = await startGdbServer(options.port, target, {
      onListening: options.onListening,
      log: options.log,
      ...(arch ? { arch } : {}),
      onHint: options.onHint ?? ((message) => process.stderr.write(`tskvm: ${message}\n`)),
      beforeSession: () => target.waitForStop(),
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
