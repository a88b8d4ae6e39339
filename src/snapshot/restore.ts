/**
 * Bringing a saved guest back (`startGuest({ restore })`, `tskvm run --restore`): the file is
 * checked (its memory runs' checksums later, while the vCPU threads start), a VM is built as the
 * saved one was (RAM size, vCPUs, irqchip), the saved pages are mapped copy-on-write from the
 * file over its RAM (nothing is copied or read ahead), and the machine is handed to the run with
 * what is left to load. The run then builds the board
 * with the saved device state (each device drives its IRQ line on the fresh irqchip), starts the
 * vCPUs paused before their first instruction, and calls `apply()`: the interrupt controllers,
 * PIT, clock and every vCPU's state go back, and the guest resumes where it was saved. The serial
 * ports are connected to this run's endpoints.
 *
 * The VM itself is the machine layer's (machine/vm.ts, above this one): it comes in through `createVm`.
 */
import { Kvm, type VmFd } from '../kvm/ioctls.js';
import type { BoardState } from '../board/board-state.js';
import type { FwCfgConfig } from '../devices/fw-cfg.js';
import type { GuestFormat } from '../loader/guest.js';
import type { Vcpu } from '../vcpu/vcpu.js';
import { snapshotError, verifyMemory } from './file.js';
import { SnapshotFormatError, type JsonObject } from './format.js';
import { boardFromSnapshot } from './machine-config.js';
import type { RamMapping } from './memory.js';
import type { RestoreConfig } from './options.js';
import { checkHost, mapSnapshotMemory, openSnapshot, restoreMachine, type OpenedSnapshot } from './snapshot.js';

/** What a restore needs of the VM it builds (machine/vm.ts's Vm). */
export interface RestoreVm {
  readonly fd: VmFd;
  readonly irqchip: boolean;
  readonly memory: RamMapping & { mergeable(): void; hugepages(): void };
  maxVcpus(): number;
  createVcpu(id: number): Vcpu;
  close(): Promise<void>;
}

/** The rest of a restore, done by the run once the board exists and the vCPUs wait before their first instruction. */
export interface PendingRestore {
  /** The saved device state, for the board to take as it is built. */
  devices: BoardState;
  /**
   * Checks the mapped memory against the file's CRC-32s (unless the restore said not to); throws
   * UsageError. The run calls it while the vCPU threads start, so the two take the time of one.
   */
  check(): void;
  /** Loads the interrupt controllers', PIT's, clock's and vCPUs' saved state; returns notes for the user. */
  apply(): string[];
}

/** A machine rebuilt from a snapshot, its memory mapped, its state still to load. */
export interface RestoredParts<V extends RestoreVm> {
  vm: V;
  vcpus: Vcpu[];
  firmware: FwCfgConfig;
  format: GuestFormat;
  /** A BIOS machine's description (machine-config.ts), for the machine layer to bring its BIOS back with. */
  bios: JsonObject | undefined;
  notes: string[];
  restore: PendingRestore;
}

/**
 * Builds the machine the snapshot at `restore.path` describes: `createVm(memorySize, irqchip)`
 * makes the VM (the caller adds its RAM options), then the vCPUs, the host check against what a
 * vCPU here answers CPUID with, and the memory mapping. Throws UsageError (EIMAGE) for a file
 * that is bad or for another host; releases the VM on any failure.
 */
export function restoreParts<V extends RestoreVm>(
  restore: RestoreConfig,
  ram: { ksm: boolean; hugepages: boolean },
  createVm: (memorySize: number, irqchip: boolean) => V,
): RestoredParts<V> {
  const maxVcpus = Kvm.hostMaxVcpus();
  const opened = openSnapshot(restore.path, typeof maxVcpus === 'number' ? { maxVcpus } : undefined);
  let vm: V | undefined;
  try {
    const { snapshot } = opened;
    const saved = snapshot.machine;
    const board = decode(opened, () => boardFromSnapshot(saved));
    const devices = decode(opened, () => boardState(snapshot.devices));
    const built = (vm = createVm(saved.memorySize, saved.irqchip));
    const vcpus = Array.from({ length: saved.cpus }, (_, id) => built.createVcpu(id));
    // What a vCPU here answers CPUID with, before the snapshot's table replaces it.
    checkHost(opened, { maxVcpus: built.maxVcpus(), cpuid: vcpus[0]!.fd.getCpuid2() });
    mapSnapshotMemory(opened, built.memory, { verify: false }); // checked later: see PendingRestore.check
    // The file's pages are new mappings: give them the advice the anonymous RAM had.
    if (ram.ksm) built.memory.mergeable();
    if (ram.hugepages) built.memory.hugepages();
    // Devices without state()/restore() (yet) start from reset: worth a note, not a warning.
    const notes = devices.unsaved.length > 0 ? [`restored without saved state (they start from reset): ${devices.unsaved.join(', ')}`] : [];
    return {
      vm: built,
      vcpus,
      firmware: board.firmware,
      format: board.format,
      bios: board.bios,
      notes,
      restore: {
        devices,
        check: () => {
          if (restore.verifyMemory) verifyMemory(restore.path, opened.file.header, built.memory.bytes);
        },
        apply: () => restoreMachine(restore.path, snapshot, { vm: built.fd, vcpus: vcpus.map((v) => v.fd), irqchip: built.irqchip }),
      },
    };
  } catch (err) {
    void vm?.close();
    throw err;
  } finally {
    // The memory mappings keep the file's pages; the fd is no longer needed.
    opened.file.close();
  }
}

function decode<T>(opened: OpenedSnapshot, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof SnapshotFormatError) throw snapshotError(opened.file.path, err);
    throw err;
  }
}

/** The devices section as the board saved it: { devices, unsaved }. */
function boardState(value: Record<string, unknown>): BoardState {
  const { devices, unsaved } = value;
  if (typeof devices !== 'object' || devices === null || Array.isArray(devices)) {
    throw new SnapshotFormatError('it is corrupt: the devices section has no device states');
  }
  if (!Array.isArray(unsaved) || !unsaved.every((name) => typeof name === 'string')) {
    throw new SnapshotFormatError('it is corrupt: the devices section\'s "unsaved" is not a list of names');
  }
  return { devices: devices as Record<string, unknown>, unsaved: unsaved as string[] };
}
