/**
 * Building the machine from a validated config and the guest's files, straight through
 * (Firecracker's build_microvm_for_boot): the VM with RAM and the PC's interrupt controllers,
 * the vCPUs, the firmware tables, the image loaded, the boot vCPU's registers. Any failure
 * releases what was built; nothing here reads files or parses options.
 */
import { writeAcpiTables } from '../arch/x86/acpi.js';
import { applyBootState } from '../arch/x86/boot-cpu.js';
import { applyFirmwareIrqState } from '../arch/x86/firmware-irq.js';
import { pcE820Map, type E820Entry } from '../arch/x86/e820.js';
import { ACPI_AREA_END, BDA_ADDRESS, BIOS_AREA_END, EBDA_ADDRESS, EBDA_SIZE, VGA_HOLE_ADDRESS } from '../arch/x86/pc-layout.js';
import { BDA_SIZE, MP_TABLE_AREA_ADDRESS, writeBiosDataArea, writeMpTable } from '../arch/x86/pc-tables.js';
import { COM_PORTS } from '../board/pc-board.js';
import type { FwCfgConfig } from '../devices/fw-cfg.js';
import { Hpet } from '../devices/hpet.js';
import { UsageError } from '../errors.js';
import { hostCpus, ksmRunning, recentAvailableMemory } from '../host.js';
import { loadGuest, type LoadedGuest } from '../loader/guest.js';
import type { Vcpu } from '../vcpu/vcpu.js';
import { bootsThroughBios } from '../bios/boot-choice.js';
import type { BiosHost } from '../bios/host.js';
import { loadBios, loadedBios } from '../bios/lazy.js';
import type { PendingRestore } from '../snapshot/restore.js';
import type { RestoreConfig } from '../snapshot/options.js';
import type { GuestFiles } from './guest-files.js';
import type { MachineConfig } from './options.js';
import { Vm } from './vm.js';

/** A machine ready to run: nothing has executed yet. */
export interface Machine {
  vm: Vm;
  /** vCPU 0 boots; the others wait for INIT/SIPI. */
  vcpus: Vcpu[];
  /** How the image was loaded (a restored machine has only its format). */
  loaded: Pick<LoadedGuest, 'format' | 'notes'>;
  /** What fw_cfg tells the guest. */
  firmware: FwCfgConfig;
  /** Things the user should know about the host (over-commit), for stderr. */
  warnings: string[];
  /** tskvm's BIOS, when the guest boots through it. */
  bios: BiosHost | undefined;
  /** A machine restored from a snapshot (src/snapshot/restore.ts): what is left to load before it runs. */
  restore?: PendingRestore;
}

/**
 * The machine a snapshot describes (options.restore), its memory mapped from the file, its state
 * still to load; a BIOS machine gets its BIOS back (its disks reopened and checked, this run's
 * console, screen and keys).
 */
export async function restoredMachine(config: MachineConfig, restore: RestoreConfig): Promise<Machine> {
  // The snapshot reader is loaded only by a restore: a booted guest never compiles it.
  const { restoreParts } = await import('../snapshot/restore.js');
  const parts = restoreParts(restore, config, (memorySize, irqchip) =>
    Vm.create({ memorySize, irqchip, ksm: config.ksm, hugepages: config.hugepages }),
  );
  const { vm, vcpus, firmware, format, notes } = parts;
  let bios: BiosHost | undefined;
  if (parts.bios) {
    try {
      const { host } = await loadBios();
      bios = await host.BiosHost.resume({
        saved: parts.bios,
        snapshot: restore.path,
        config: config.bios,
        memory: vm.memory.bytes,
        memorySize: vm.memory.size,
        trace: config.trace,
      });
    } catch (err) {
      void vm.close();
      throw err;
    }
  }
  return { vm, vcpus, loaded: { format, notes }, firmware, warnings: [], bios, restore: parts.restore };
}

export function buildMachine(config: MachineConfig, files: GuestFiles): Machine {
  return loadMachine(stageMachine(config, files));
}

/** Loads a staged machine that no vCPU thread uses yet; a failure closes its VM. */
export function loadMachine(staged: StagedMachine): Machine {
  try {
    staged.load();
  } catch (err) {
    void staged.machine.vm.close();
    throw err;
  }
  return staged.machine;
}

/** A machine in two steps (stageMachine): built, then loaded. */
export interface StagedMachine {
  /** Its VM, RAM and vCPUs; `loaded` (and `bios`) are there once load() has run. */
  readonly machine: Machine;
  /** Whether load() boots the image through tskvm's BIOS (it sets `machine.bios`). */
  readonly throughBios: boolean;
  /**
   * Writes the firmware tables and the image into RAM and sets the boot vCPU's registers. A
   * failure leaves the VM to the caller, who may first have to stop a vCPU thread that uses it.
   */
  load(): void;
}

/**
 * The machine built but nothing loaded yet: the VM with RAM and its interrupt controllers, the
 * vCPUs, what fw_cfg will tell. A one-vCPU run lets its vCPU thread build the board meanwhile
 * (run.ts): neither step needs the other's.
 */
export function stageMachine(config: MachineConfig, files: GuestFiles): StagedMachine {
  const image = files.image;
  // A boot sector (or a disk) boots through tskvm's BIOS; everything else loads as it always has.
  const throughBios = bootsThroughBios(config.bios, config.format, image?.bytes);
  if (!throughBios && !image) throw new UsageError('nothing to run: give an IMAGE (or a disk to boot through the BIOS)');
  const warnings = overcommitWarnings(config);
  const vm = Vm.create({
    memorySize: config.memorySize,
    irqchip: config.irqchip,
    prealloc: config.memPrealloc,
    ksm: config.ksm,
    hugepages: config.hugepages,
    cpuid: config.cpuid,
  });
  let vcpus: Vcpu[];
  try {
    const maxCpus = vm.maxVcpus();
    if (config.cpus > maxCpus) {
      throw new UsageError(
        `invalid options.cpus '${config.cpus}': this host's KVM allows at most ${maxCpus} vCPUs per VM (KVM_CAP_MAX_VCPUS)`,
      );
    }
    // One vCPU never outnumbers the host's CPUs: only more ask (the count loads node:os).
    if (config.cpus > 1 && config.cpus > hostCpus()) {
      warnings.push(
        `${config.cpus} vCPUs on ${hostCpus()} host CPUs: one guest with more vCPUs than the host has CPUs makes them take turns, ` +
          'and guests that spin-wait on each other slow down badly (many small guests are fine)',
      );
    }
    // vCPU 0 boots; KVM leaves the others waiting for INIT/SIPI (the in-kernel LAPIC handles both).
    vcpus = Array.from({ length: config.cpus }, (_, id) => vm.createVcpu(id));
  } catch (err) {
    void vm.close();
    throw err;
  }
  const e820 = pcE820Map(config.memorySize);
  let loaded: Machine['loaded'] | undefined;
  const machine: Machine = {
    vm,
    vcpus,
    get loaded() {
      if (!loaded) throw new Error('the machine is not loaded yet (StagedMachine.load)');
      return loaded;
    },
    firmware: firmwareConfig(config, e820),
    warnings,
    bios: undefined,
  };
  const load = (): void => {
    let bios: BiosHost | undefined;
    try {
      const memory = vm.memory.bytes;
      writeFreshFirmwareTables(memory, config.memorySize, config.cpus);
      if (throughBios) {
        const com = COM_PORTS.map((p) => p.base);
        bios = loadedBios().host.BiosHost.prepare({
          config: config.bios!,
          format: config.format,
          image,
          memory,
          memorySize: config.memorySize,
          e820,
          com,
          trace: config.trace,
        });
      }
      const guest =
        bios?.loaded ??
        loadGuest(image!.bytes, memory, {
          format: config.format,
          name: image!.name,
          cmdline: config.cmdline,
          modules: files.modules,
          longMode: config.longMode,
          e820,
        });
      applyBootState(vcpus[0]!, memory, guest.bootState, guest.bootTables);
      // A kernel QEMU would start through SeaBIOS finds the PICs, the PIT and the IVT as SeaBIOS leaves them.
      if (!bios && vm.irqchip && guest.bootState.mode !== 'real') applyFirmwareIrqState(vm.fd, memory);
      loaded = guest;
      machine.bios = bios;
    } catch (err) {
      bios?.close();
      throw err;
    }
  };
  return { machine, throughBios, load };
}

function firmwareConfig(config: MachineConfig, e820: E820Entry[]): FwCfgConfig {
  return { ramSize: config.memorySize, cpus: config.cpus, cmdline: config.cmdline, e820 };
}

/**
 * What a PC BIOS leaves in memory for the guest to find: the BIOS data area (COM ports, memory
 * size, EBDA), an MP table (CPUs, IOAPIC, ISA IRQ routing) and the ACPI tables (FADT with the PM
 * block and reset register, FACS, DSDT, MADT, HPET) describing the chipset the board has
 * (src/board/chipset.ts). Written before the image is loaded, so an image that covers them wins;
 * skipped on machines too small to have those areas.
 */
export function writeFirmwareTables(memory: Uint8Array, memorySize: number, cpus: number): void {
  if (memorySize >= VGA_HOLE_ADDRESS) writeBiosDataArea(memory, { memorySize, com: COM_PORTS.map((p) => p.base) });
  if (memorySize >= BIOS_AREA_END) {
    writeMpTable(memory, { cpus });
    writeAcpiTables(memory, { cpus, hpet: { eventTimerBlockId: Hpet.eventTimerBlockId } });
  }
}

/** A run of non-zero bytes of the firmware tables, and where it goes. */
interface FirmwareRun {
  at: number;
  bytes: Uint8Array;
}

/**
 * The firmware tables' bytes per machine shape: they depend only on which areas the RAM reaches
 * and on the vCPU count, and building them (AML, checksums) costs more than copying them. null:
 * one VM of that shape was built (a process that builds one, the CLI, pays nothing for this).
 */
const firmwareImages = new Map<string, FirmwareRun[] | null>();
/** Where writeFirmwareTables writes: the BDA, the EBDA, the MP table and ACPI areas ([start, end)). */
const FIRMWARE_AREAS: readonly (readonly [number, number])[] = [
  [BDA_ADDRESS, BDA_ADDRESS + BDA_SIZE],
  [EBDA_ADDRESS, EBDA_ADDRESS + EBDA_SIZE],
  [MP_TABLE_AREA_ADDRESS, ACPI_AREA_END],
];
/** Zero bytes between two runs that still make one run (fewer, larger copies). */
const FIRMWARE_RUN_GAP = 64;

/**
 * writeFirmwareTables into a new VM's RAM, which is all zeros. From the third VM of a shape on,
 * the non-zero bytes the second one got are copied instead, which leaves exactly what writing
 * the tables would have (and touches no page that writing them would not).
 */
export function writeFreshFirmwareTables(memory: Uint8Array, memorySize: number, cpus: number): void {
  const key = `${memorySize >= VGA_HOLE_ADDRESS}:${memorySize >= BIOS_AREA_END}:${cpus}`;
  const runs = firmwareImages.get(key);
  if (runs) {
    for (const run of runs) memory.set(run.bytes, run.at);
    return;
  }
  writeFirmwareTables(memory, memorySize, cpus);
  firmwareImages.set(
    key,
    runs === null
      ? FIRMWARE_AREAS.flatMap(([start, end]) => nonZeroRuns(memory.subarray(start, Math.min(end, memory.length)), FIRMWARE_RUN_GAP, start))
      : null,
  );
}

/** The runs of non-zero bytes in `bytes` (copies, at their index plus `base`), joining runs closer than `gap` zeros. */
export function nonZeroRuns(bytes: Uint8Array, gap: number, base = 0): FirmwareRun[] {
  const runs: FirmwareRun[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (bytes[at] === 0) {
      at++;
      continue;
    }
    const start = at;
    let end = at + 1; // one past the last non-zero byte of the run
    for (at = end; at < bytes.length && at - end < gap; at++) if (bytes[at] !== 0) end = at + 1;
    runs.push({ at: base + start, bytes: bytes.slice(start, end) });
    at = end;
  }
  return runs;
}

/**
 * Memory over-commit, as a KVM user expects it: guest RAM is reserved, not committed, so a guest
 * larger than the host's free memory runs — but deserves a warning, since touching it all would
 * push the host into swap or the OOM killer. With --mem-prealloc it is committed up front.
 */
export function overcommitWarnings(config: Pick<MachineConfig, 'memorySize' | 'memPrealloc' | 'ksm'>): string[] {
  const warnings: string[] = [];
  const available = recentAvailableMemory();
  if (available !== undefined && config.memorySize > available) {
    warnings.push(
      `guest RAM (${mib(config.memorySize)} MiB) is larger than the host's available memory (${mib(available)} MiB): ` +
        (config.memPrealloc
          ? '--mem-prealloc may fail or push the host into swap'
          : 'pages are committed only when the guest touches them, so this works until it touches more than the host has'),
    );
  }
  if (config.ksm && ksmRunning() === false) {
    warnings.push(
      'KSM is off (/sys/kernel/mm/ksm/run is 0): guest RAM is marked mergeable, but nothing merges it until root writes 1 there',
    );
  }
  return warnings;
}

const mib = (bytes: number): number => Math.round(bytes / 2 ** 20);
