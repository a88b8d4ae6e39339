/**
 * Building the machine from a validated config and the guest's files, straight through
 * (Firecracker's build_microvm_for_boot): the VM with RAM and the PC's interrupt controllers,
 * the vCPUs, the firmware tables, the image loaded, the boot vCPU's registers. Any failure
 * releases what was built; nothing here reads files or parses options.
 */
import { applyBootState } from '../arch/x86/boot-cpu.js';
import { pcE820Map, type E820Entry } from '../arch/x86/e820.js';
import { BIOS_AREA_END, VGA_HOLE_ADDRESS } from '../arch/x86/pc-layout.js';
import { writeBiosDataArea, writeMpTable } from '../arch/x86/pc-tables.js';
import { COM_PORTS } from '../board/pc-board.js';
import type { FwCfgConfig } from '../devices/fw-cfg.js';
import { UsageError } from '../errors.js';
import { availableMemory, hostCpus, ksmRunning } from '../host.js';
import { loadGuest, type LoadedGuest } from '../loader/guest.js';
import type { Vcpu } from '../vcpu/vcpu.js';
import type { GuestFiles } from './guest-files.js';
import type { MachineConfig } from './options.js';
import { Vm } from './vm.js';

/** A machine ready to run: nothing has executed yet. */
export interface Machine {
  vm: Vm;
  /** vCPU 0 boots; the others wait for INIT/SIPI. */
  vcpus: Vcpu[];
  loaded: LoadedGuest;
  /** What fw_cfg tells the guest. */
  firmware: FwCfgConfig;
  /** Things the user should know about the host (over-commit), for stderr. */
  warnings: string[];
}

export function buildMachine(config: MachineConfig, files: GuestFiles): Machine {
  const warnings = overcommitWarnings(config);
  const vm = Vm.create({
    memorySize: config.memorySize,
    irqchip: config.irqchip,
    prealloc: config.memPrealloc,
    ksm: config.ksm,
    hugepages: config.hugepages,
  });
  try {
    const maxCpus = vm.maxVcpus();
    if (config.cpus > maxCpus) {
      throw new UsageError(
        `invalid options.cpus '${config.cpus}': this host's KVM allows at most ${maxCpus} vCPUs per VM (KVM_CAP_MAX_VCPUS)`,
      );
    }
    if (config.cpus > hostCpus()) {
      warnings.push(
        `${config.cpus} vCPUs on ${hostCpus()} host CPUs: one guest with more vCPUs than the host has CPUs makes them take turns, ` +
          'and guests that spin-wait on each other slow down badly (many small guests are fine)',
      );
    }
    // vCPU 0 boots; KVM leaves the others waiting for INIT/SIPI (the in-kernel LAPIC handles both).
    const vcpus = Array.from({ length: config.cpus }, (_, id) => vm.createVcpu(id));
    const memory = vm.memory.bytes;
    const e820 = pcE820Map(config.memorySize);
    writeFirmwareTables(memory, config.memorySize, config.cpus);
    const loaded = loadGuest(files.image.bytes, memory, {
      format: config.format,
      name: files.image.name,
      cmdline: config.cmdline,
      modules: files.modules,
      longMode: config.longMode,
      e820,
    });
    applyBootState(vcpus[0]!, memory, loaded.bootState);
    return { vm, vcpus, loaded, firmware: firmwareConfig(config, e820), warnings };
  } catch (err) {
    void vm.close();
    throw err;
  }
}

function firmwareConfig(config: MachineConfig, e820: E820Entry[]): FwCfgConfig {
  return { ramSize: config.memorySize, cpus: config.cpus, cmdline: config.cmdline, e820 };
}

/**
 * What a PC BIOS leaves in memory for the guest to find: the BIOS data area (COM ports, memory
 * size, EBDA) and an MP table (CPUs, IOAPIC, ISA IRQ routing). Written before the image is loaded,
 * so an image that covers them wins; skipped on machines too small to have those areas.
 */
function writeFirmwareTables(memory: Uint8Array, memorySize: number, cpus: number): void {
  if (memorySize >= VGA_HOLE_ADDRESS) writeBiosDataArea(memory, { memorySize, com: COM_PORTS.map((p) => p.base) });
  if (memorySize >= BIOS_AREA_END) writeMpTable(memory, { cpus });
}

/**
 * Memory over-commit, as a KVM user expects it: guest RAM is reserved, not committed, so a guest
 * larger than the host's free memory runs — but deserves a warning, since touching it all would
 * push the host into swap or the OOM killer. With --mem-prealloc it is committed up front.
 */
export function overcommitWarnings(config: Pick<MachineConfig, 'memorySize' | 'memPrealloc' | 'ksm'>): string[] {
  const warnings: string[] = [];
  const available = availableMemory();
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
