/**
 * A VM and its vCPUs, for people who want to drive KVM themselves (runGuest builds on these).
 * Every fd and mapping is released by an explicit close(); nothing relies on GC.
 */
import { KVM_IDENTITY_MAP_ADDRESS, KVM_TSS_ADDRESS } from '../kvm/constants.js';
import { Kvm, type VmFd } from '../kvm/ioctls.js';
import { KVM_PIT_SPEAKER_DUMMY, encodeCpuid2, type CpuidEntry } from '../kvm/x86.js';
import { vcpuCpuid, type CpuidAdjustments } from '../arch/x86/cpuid.js';
import { pcIrqRoutes } from '../arch/x86/irq-routing.js';
import { BOOT_MSRS } from '../arch/x86/msrs.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { VcpuThread } from '../vcpu/thread.js';
import { Vcpu, type VcpuVm } from '../vcpu/vcpu.js';

/** KVM_GET_SUPPORTED_CPUID's answer, the same for every VM on this host. */
let supportedCpuid: CpuidEntry[] | undefined;

/**
 * Each vCPU's CPUID table, encoded for KVM_SET_CPUID2, by APIC ID and adjustments: filtering and
 * encoding the host's ~60 leaves took ~0.1 ms per vCPU, and the answer never changes in a process.
 */
const cpuidTables = new Map<string, Uint8Array>();
/** Tables kept before the cache starts again (vCPU IDs times the adjustments a process uses). */
const MAX_CPUID_TABLES = 512;

function encodedVcpuCpuid(supported: readonly CpuidEntry[], apicId: number, adjust: CpuidAdjustments): Uint8Array {
  const key = `${apicId}/${(adjust.remove ?? []).join(',')}/${adjust.vendor ?? ''}`;
  let bytes = cpuidTables.get(key);
  if (!bytes) {
    bytes = encodeCpuid2(vcpuCpuid(supported, apicId, adjust));
    if (cpuidTables.size >= MAX_CPUID_TABLES) cpuidTables.clear();
    cpuidTables.set(key, bytes);
  }
  return bytes;
}

/** VM fds being closed in the background (the kernel destroying the VM). */
const teardowns = new Set<Promise<void>>();

/**
 * Waits for the VMs still being torn down and ends the idle vCPU threads: afterwards a process
 * that runs no guest holds no tskvm thread, fd or mapping. Call it before counting resources, or
 * before exiting a long-lived process that has finished with guests.
 */
export async function releaseIdleResources(): Promise<void> {
  await Promise.all([...teardowns]);
  await VcpuThread.closeIdle();
}

/** The guest-physical slot that holds all of RAM, from address 0. */
export const RAM_SLOT = 0;

export interface VmOptions {
  /** Bytes of guest RAM, a multiple of 4096. */
  memorySize: number;
  /**
   * Create the in-kernel PIC/IOAPIC/LAPIC and PIT (default true), as a PC has. Without them HLT
   * exits to userspace and nothing can interrupt the guest.
   */
  irqchip?: boolean;
  /** Commit all of guest RAM up front (default: pages are committed when first touched). */
  prealloc?: boolean;
  /** Mark guest RAM MADV_MERGEABLE for KSM (and map it private: KSM skips shared mappings). */
  ksm?: boolean;
  /** Ask for transparent huge pages (MADV_HUGEPAGE; private mapping, as for KSM). */
  hugepages?: boolean;
  /** Features taken out of every vCPU's CPUID, and another vendor string (see cpuid.ts). */
  cpuid?: CpuidAdjustments;
}

export class Vm implements VcpuVm {
  readonly memory: GuestMemory;
  private readonly vcpus: Vcpu[] = [];
  private closed = false;

  private constructor(
    private readonly kvm: Kvm,
    readonly fd: VmFd,
    options: VmOptions,
    readonly irqchip: boolean,
    private readonly cpuid: CpuidAdjustments = {},
  ) {
    this.memory = GuestMemory.create(options.memorySize, { private: options.ksm === true || options.hugepages === true });
  }

  /** KVM_CREATE_VM, KVM_SET_TSS_ADDR, and RAM as slot 0. Throws KvmError. */
  static create(options: VmOptions): Vm {
    const kvm = Kvm.open();
    let fd: VmFd | undefined;
    let vm: Vm | undefined;
    try {
      fd = kvm.createVm();
      // Intel needs these pages for real-mode emulation; harmless elsewhere.
      fd.setTssAddr(KVM_TSS_ADDRESS);
      fd.setIdentityMapAddr(KVM_IDENTITY_MAP_ADDRESS);
      const irqchip = options.irqchip ?? true;
      vm = new Vm(kvm, fd, options, irqchip, options.cpuid);
      if (options.ksm) vm.memory.mergeable();
      if (options.hugepages) vm.memory.hugepages();
      if (options.prealloc) vm.memory.prefault();
      // RAM before the irqchip: a memslot change on a VM with an irqchip waits for an RCU grace
      // period (~7 ms here); before it, it is free.
      fd.setUserMemoryRegion(RAM_SLOT, 0, vm.memory.size, vm.memory.hostAddr);
      if (irqchip) {
        fd.createIrqchip();
        fd.setGsiRouting(pcIrqRoutes());
        fd.createPit2(KVM_PIT_SPEAKER_DUMMY);
      }
      return vm;
    } catch (err) {
      if (vm) void vm.close();
      else {
        fd?.close();
        kvm.close();
      }
      throw err;
    }
  }

  get vmFd(): number {
    return this.fd.fd;
  }

  /** KVM_CAP_MAX_VCPUS: the most vCPUs one VM may have on this host. */
  maxVcpus(): number {
    return this.kvm.maxVcpus();
  }

  /** KVM_CREATE_VCPU, with the host's CPUID (filtered, see cpuid.ts) and the boot MSRs set. */
  createVcpu(id = this.vcpus.length): Vcpu {
    const fd = this.fd.createVcpu(id);
    const vcpu = new Vcpu(this, fd, id);
    this.vcpus.push(vcpu);
    // What KVM supports is a fact of the host: ask once per process (per thread), not per VM.
    supportedCpuid ??= this.kvm.supportedCpuid();
    fd.setCpuid2Encoded(encodedVcpuCpuid(supportedCpuid, id, this.cpuid));
    fd.setMsrs(BOOT_MSRS);
    return vcpu;
  }

  /**
   * Closes vCPUs, memory, /dev/kvm and the VM fd. Stop (and await) every run first. Everything
   * but the VM fd is released before this returns; the VM fd's close, which makes the kernel
   * destroy the VM (slow with an irqchip), runs on the thread pool, and the promise settles when
   * it is done. Callers need not wait for it. In a process that exits once its guests have ended
   * (destroyVmsAfterExit: the command lines), the VM and its RAM go after the exit instead.
   */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    for (const vcpu of this.vcpus) vcpu.close();
    // A VM left to the kernel until this process has exited (the command lines) leaves its RAM
    // mapped till then too: its unmapping (~0.2 ms for 16 MiB) would only delay the exit.
    const afterExit = this.fd.closeAfterExit();
    this.memory.close({ unmap: !afterExit });
    this.kvm.close();
    const closing = afterExit ? Promise.resolve() : this.fd.closeAsync();
    teardowns.add(closing);
    void closing.then(() => teardowns.delete(closing));
    return closing;
  }
}
