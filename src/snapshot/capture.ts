/**
 * Saving a running guest (`run.snapshot(path)`, `tskvm run --save`): every vCPU paused — each
 * one kicked out of KVM_RUN, which completes any port or MMIO access in flight, so its registers
 * are consistent — then the devices' state from the thread that owns them, the KVM state of the
 * vCPUs and the VM, and the touched guest pages, written atomically. The guest then stays paused,
 * or resumes as asked; it never runs while anything is read.
 */
import { UsageError } from '../errors.js';
import { Kvm, type VmFd } from '../kvm/ioctls.js';
import type { BoardState } from '../board/board-state.js';
import type { FwCfgConfig } from '../devices/fw-cfg.js';
import type { GuestFormat } from '../loader/guest.js';
import type { Vcpu } from '../vcpu/vcpu.js';
import type { RamMapping } from './memory.js';
import type { SnapshotWriteStats } from './snapshot.js';

export interface SnapshotOptions {
  /** Let the guest go on once the file is written (default: it stays paused). */
  resume?: boolean;
}

/** What a snapshot wrote. */
export interface SnapshotInfo extends SnapshotWriteStats {
  path: string;
  /** From the pause to the file being on disk (fsync and rename included). */
  durationMs: number;
  /** Devices whose state could not be kept (no state()/restore()): a restore starts them from reset. */
  unsavedDevices: string[];
}

/** The machine being saved, as machine/builder.ts's Machine has it. */
export interface CaptureMachine {
  readonly vm: { readonly fd: VmFd; readonly memory: RamMapping; readonly irqchip: boolean };
  readonly vcpus: readonly Vcpu[];
  readonly firmware: FwCfgConfig;
  readonly loaded: { readonly format: GuestFormat };
  /** Set when the guest boots through tskvm's BIOS: what the snapshot records of it (disks, boot order). */
  readonly bios?: { snapshotConfig(): Promise<object> } | undefined;
}

/** What capture needs of a run (machine/run.ts provides it). */
export interface CaptureAccess {
  readonly machine: CaptureMachine;
  /** Resolves once every vCPU is paused (or the run has ended). */
  pause(): Promise<void>;
  resume(): void;
  /** The devices' state, asked of whichever thread owns them, every vCPU paused. */
  saveDevices(): Promise<BoardState>;
}

/** Pauses the guest, saves it to `path`, and resumes it if asked. */
export async function captureGuest(access: CaptureAccess, path: string, options: SnapshotOptions = {}): Promise<SnapshotInfo> {
  if (typeof path !== 'string' || path === '') throw new UsageError('run.snapshot needs a file path to write the snapshot to');
  const { machine } = access;
  const started = performance.now();
  await access.pause();
  // The writer (snapshot.ts, and the format, files and KVM state behind it) is loaded once the
  // guest is paused, not before: a run that saves nothing never evaluates it, and the pause is
  // asked for at once, so a guest that goes on after a trigger is stopped as near it as before.
  const [{ captureMachine, writeSnapshot }, { describeMachine }] = await Promise.all([
    import('./snapshot.js'),
    import('./machine-config.js'),
  ]);
  const notPaused = machine.vcpus.filter((vcpu) => vcpu.state !== 'paused');
  if (notPaused.length > 0)
    throw new UsageError(`the guest cannot be saved: its run has ended (vCPU ${notPaused[0]!.id} is ${notPaused[0]!.state})`);
  const board = await access.saveDevices();
  const bios = await machine.bios?.snapshotConfig();
  const kvm = Kvm.open();
  let stats: SnapshotWriteStats;
  try {
    const snapshot = captureMachine({
      kvm,
      vm: machine.vm.fd,
      vcpus: machine.vcpus.map((vcpu) => vcpu.fd),
      irqchip: machine.vm.irqchip,
      machine: describeMachine({
        memorySize: machine.vm.memory.size,
        cpus: machine.vcpus.length,
        irqchip: machine.vm.irqchip,
        firmware: machine.firmware,
        format: machine.loaded.format,
        bios,
      }),
      devices: { devices: board.devices, unsaved: board.unsaved },
    });
    stats = await writeSnapshot(path, snapshot, machine.vm.memory);
  } finally {
    kvm.close();
  }
  const info = { path, ...stats, durationMs: performance.now() - started, unsavedDevices: board.unsaved };
  if (options.resume) access.resume();
  return info;
}
