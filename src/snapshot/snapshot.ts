/**
 * Snapshots of a machine at the level of its parts: capture the KVM state of a VM whose vCPUs are
 * stopped, write it with the touched guest pages to a file, open and check a file, map its memory
 * copy-on-write into a new VM's RAM and load the KVM state into it. capture.ts and restore.ts
 * put these steps around a running guest (pausing it, the devices, the new run's endpoints).
 */
import { cpus, release } from 'node:os';
import { readFileSync } from 'node:fs';
import { PAGE_SIZE } from '../kvm/constants.js';
import { UsageError } from '../errors.js';
import type { Kvm, VcpuFd, VmFd } from '../kvm/ioctls.js';
import type { CpuidEntry } from '../kvm/x86.js';
import { hostProblems } from './compat.js';
import { openSnapshotFile, snapshotError, verifyMemory, writeSnapshotFile, type SnapshotFile } from './file.js';
import { SnapshotFormatError, type SnapshotMachine } from './format.js';
import { captureVcpu, captureVm, restoreVcpu, restoreVm, StateMismatch, stateSupport, type StateSupport } from './machine-state.js';
import { detectionMethod, mapFromFile, touchedRuns, type RamMapping } from './memory.js';
import { MsrProbe } from './msrs.js';
import { decodeSections, encodeSections, type MachineSnapshot } from './sections.js';
import { tskvmVersion } from './version.js';

export type { MachineSnapshot } from './sections.js';

/** A machine to capture: every vCPU stopped (paused or never run), so nothing changes meanwhile. */
export interface CaptureTarget {
  kvm: Kvm;
  vm: VmFd;
  vcpus: readonly VcpuFd[];
  irqchip: boolean;
  machine: SnapshotMachine;
  /** The devices' state (JSON-able). */
  devices: Record<string, unknown>;
}

/** Reads every vCPU's and the VM's state. */
export function captureMachine(target: CaptureTarget): MachineSnapshot {
  const support = stateSupport(target.vm);
  const probe = new MsrProbe(target.kvm, target.irqchip);
  try {
    const vcpus = target.vcpus.map((fd, id) => captureVcpu(target.kvm, fd, id, support, target.irqchip, probe));
    return { machine: target.machine, vcpus, vm: captureVm(target.vm, target.irqchip), devices: target.devices };
  } finally {
    probe.close();
  }
}

export interface SnapshotWriteStats {
  /** The file's size. */
  bytes: number;
  /** Guest pages saved, and the runs they form. */
  pages: number;
  runs: number;
}

/** Writes `snapshot` and the touched pages of `ram` to `file`, atomically. The guest must not run meanwhile. */
export async function writeSnapshot(file: string, snapshot: MachineSnapshot, ram: RamMapping): Promise<SnapshotWriteStats> {
  const detection = detectionMethod();
  const runs = touchedRuns(ram, detection);
  const vcpu0 = snapshot.vcpus[0];
  if (!vcpu0) throw new Error('a snapshot needs at least one vCPU');
  const bytes = await writeSnapshotFile(file, {
    header: {
      tskvm: tskvmVersion(),
      created: new Date().toISOString(),
      host: { kernel: release(), cpu: hostCpu() },
      machine: snapshot.machine,
      cpuid: vcpu0.cpuid,
      vcpus: snapshot.vcpus.map((v) => ({ id: v.id, mpState: v.mpState, tscKhz: v.tscKhz })),
    },
    sections: encodeSections(snapshot),
    memory: { ram: ram.bytes, runs, detection },
  });
  return { bytes, pages: runs.reduce((n, r) => n + r.length, 0) / PAGE_SIZE, runs: runs.length };
}

function hostCpu(): string {
  try {
    return /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? 'unknown';
  } catch {
    return cpus()[0]?.model ?? 'unknown';
  }
}

/**
 * What the restoring host offers, for the checks in compat.ts. `cpuid` is what a vCPU of this
 * host answers with once tskvm has set it up (KVM_GET_CPUID2 of vCPU 0 of the new VM, before the
 * snapshot's table is loaded): that, not KVM_GET_SUPPORTED_CPUID, is what the saved table was
 * read as (on some hosts, such as PVM's, the two differ).
 */
export interface RestoreHost {
  maxVcpus: number;
  cpuid?: readonly CpuidEntry[];
}

export function restoreHost(kvm: Kvm): RestoreHost {
  return { maxVcpus: kvm.maxVcpus() };
}

/** A snapshot file opened, checked, and decoded; close() when the restored guest's memory is mapped. */
export interface OpenedSnapshot {
  readonly file: SnapshotFile;
  readonly snapshot: MachineSnapshot;
}

/**
 * Opens `path` and checks it from end to end (see openSnapshotFile), decodes its state, and,
 * with `host`, checks that this host can run the machine (vCPU count, CPU features). Throws
 * UsageError (EIMAGE) with the reason.
 */
export function openSnapshot(path: string, host?: RestoreHost): OpenedSnapshot {
  const file = openSnapshotFile(path, tskvmVersion());
  try {
    const snapshot = decodeSections(file);
    if (host) checkHost({ file, snapshot }, host);
    return { file, snapshot };
  } catch (err) {
    file.close();
    if (err instanceof SnapshotFormatError) throw snapshotError(path, err);
    throw err;
  }
}

/** Throws UsageError when `host` cannot run the snapshot's machine (vCPUs; CPU features when `host.cpuid` is given). */
export function checkHost(opened: OpenedSnapshot, host: RestoreHost): void {
  const problems = hostProblems(opened.snapshot.machine, opened.file.header.cpuid, host);
  if (problems.length > 0) throw new UsageError(`snapshot ${opened.file.path} cannot be restored here: ${problems.join('; ')}`, 'EIMAGE');
}

/**
 * Maps the snapshot's pages over `ram` (copy-on-write from the file; see memory.ts) and, with
 * `verify` (the default), checks each run's CRC-32 through the new mapping.
 */
export function mapSnapshotMemory(opened: OpenedSnapshot, ram: RamMapping, options: { verify?: boolean } = {}): void {
  const { header, fd, path } = opened.file;
  if (ram.size !== header.memory.size)
    throw new UsageError(`snapshot ${path} is of a ${header.memory.size}-byte guest; the RAM given is ${ram.size} bytes`, 'EIMAGE');
  for (const run of header.memory.runs) mapFromFile(ram, run.gpa, run.length, fd, run.offset);
  if (options.verify ?? true) verifyMemory(path, header, ram.bytes);
}

/** The restoring side of captureMachine: a VM built like the saved one, its vCPUs not yet run. */
export interface RestoreTarget {
  vm: VmFd;
  vcpus: readonly VcpuFd[];
  irqchip: boolean;
}

/**
 * Loads the VM's and each vCPU's state. Call after the devices have been restored (they drive
 * their IRQ lines on the fresh irqchip first: see machine-state.ts). Returns notes for the user.
 */
export function restoreMachine(path: string, snapshot: MachineSnapshot, target: RestoreTarget): string[] {
  if (target.vcpus.length !== snapshot.vcpus.length)
    throw new Error(`restore needs ${snapshot.vcpus.length} vCPUs; ${target.vcpus.length} were created`);
  let support: StateSupport;
  try {
    support = stateSupport(target.vm);
    restoreVm(target.vm, snapshot.vm, target.irqchip);
    return snapshot.vcpus.flatMap((state, i) => restoreVcpu(target.vcpus[i]!, state, support, target.irqchip));
  } catch (err) {
    if (err instanceof StateMismatch)
      throw new UsageError(`snapshot ${path} cannot be restored here: ${err.message}`, 'EIMAGE', { cause: err });
    throw err;
  }
}
