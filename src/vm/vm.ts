/**
 * A VM and its vCPUs, for people who want to drive KVM themselves (runGuest builds on these).
 * Every fd and mapping is released by an explicit close(); nothing relies on GC.
 */
import { KVM_IDENTITY_MAP_ADDRESS, KVM_TSS_ADDRESS } from '../kvm/constants.js';
import { Kvm, type VcpuFd, type VmFd } from '../kvm/ioctls.js';
import type { KvmRegs, KvmSregs } from '../kvm/structs.js';
import { KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_PIT_SPEAKER_DUMMY, type CpuidEntry, type GuestDebug, type IrqRoute } from '../kvm/x86.js';
import type { FwCfgConfig } from '../devices/fw-cfg.js';
import { vcpuCpuid } from './cpuid.js';
import { BOOT_MSRS } from './msrs.js';
import { ByteRing } from './byte-ring.js';
import { GuestMemory } from './guest-memory.js';
import { DEBUG_COMMAND_RESUME, VcpuControl } from './vcpu-control.js';
import type { DebugStop, VcpuRunResult } from './vcpu-loop.js';
import { VcpuThread, type VcpuJobDebug } from './vcpu-thread.js';
import type { RemoteBoard } from './board-thread.js';

/** KVM_GET_SUPPORTED_CPUID's answer, the same for every VM on this host. */
let supportedCpuid: CpuidEntry[] | undefined;

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
}

/** ISA IRQs 0-15 and the IOAPIC's 24 pins. */
const ISA_IRQS = 16;
const IOAPIC_PINS = 24;
const PIC_CASCADE_IRQ = 2;
/** The PIT's IRQ0 reaches the IOAPIC on pin 2, as on PC chipsets (and in the MP table). */
const IOAPIC_TIMER_PIN = 2;

/**
 * QEMU's PC routing (kvm_pc_setup_irq_routing): GSI 0-15 to the PICs (less the cascade), GSI
 * 0-23 to the IOAPIC pin of the same number, except the timer's GSI 0, which goes to pin 2.
 * KVM's default sends GSI 0 to pin 0, which no PC's MP table or ACPI MADT describes.
 */
export function pcIrqRoutes(): IrqRoute[] {
  const routes: IrqRoute[] = [];
  for (let gsi = 0; gsi < ISA_IRQS; gsi++) {
    if (gsi === PIC_CASCADE_IRQ) continue;
    routes.push(gsi < 8 ? { gsi, irqchip: KVM_IRQCHIP_PIC_MASTER, pin: gsi } : { gsi, irqchip: KVM_IRQCHIP_PIC_SLAVE, pin: gsi - 8 });
  }
  for (let gsi = 0; gsi < IOAPIC_PINS; gsi++) {
    if (gsi === PIC_CASCADE_IRQ) continue;
    routes.push({ gsi, irqchip: KVM_IRQCHIP_IOAPIC, pin: gsi === 0 ? IOAPIC_TIMER_PIN : gsi });
  }
  return routes;
}

/** How often a running vCPU is asked whether it has halted for good (in-kernel irqchip only). */
export const HALT_POLL_INTERVAL_MS = 20;

export class Vm {
  readonly memory: GuestMemory;
  private readonly vcpus: Vcpu[] = [];
  private closed = false;


  private constructor(
    private readonly kvm: Kvm,
    readonly fd: VmFd,
    options: VmOptions,
    readonly irqchip: boolean,
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
      vm = new Vm(kvm, fd, options, irqchip);
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
    fd.setCpuid2(vcpuCpuid(supportedCpuid, id));
    fd.setMsrs(BOOT_MSRS);
    return vcpu;
  }

  /**
   * Closes vCPUs, memory, /dev/kvm and the VM fd. Stop (and await) every run first. Everything
   * but the VM fd is released before this returns; the VM fd's close, which makes the kernel
   * destroy the VM (slow with an irqchip), runs on the thread pool, and the promise settles when
   * it is done. Callers need not wait for it.
   */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    for (const vcpu of this.vcpus) vcpu.close();
    this.memory.close();
    this.kvm.close();
    const closing = this.fd.closeAsync();
    teardowns.add(closing);
    void closing.then(() => teardowns.delete(closing));
    return closing;
  }
}

export interface VcpuRunOptions {
  /** Use a board thread's devices (multi-vCPU VMs) instead of a board of its own. */
  remote?: RemoteBoard;
  /** Debugger, tracing, statistics, single-step (see VcpuJobDebug). */
  debug?: VcpuJobDebug;
  /** Each stop for the debugger (the vCPU then waits for resumeFromDebugger() or stop()). */
  onDebugStop?: (why: DebugStop) => void;
}

/** The serial rings a run's COM1 is wired to; the main-thread side is SerialBridge. */
export interface SerialRings {
  tx: ByteRing;
  rx: ByteRing;
}

/** A vCPU's life: created, then running (and paused, any number of times), then stopped. */
export type VcpuState = 'created' | 'running' | 'paused' | 'stopped';

export class Vcpu {
  private control: VcpuControl | undefined;
  private currentState: VcpuState = 'created';
  private pauseWaiters: (() => void)[] = [];

  constructor(
    private readonly vm: Vm,
    readonly fd: VcpuFd,
    readonly id: number,
  ) {}

  getRegs(): KvmRegs {
    return this.fd.getRegs();
  }

  setRegs(regs: KvmRegs): void {
    this.fd.setRegs(regs);
  }

  getSregs(): KvmSregs {
    return this.fd.getSregs();
  }

  setSregs(sregs: KvmSregs): void {
    this.fd.setSregs(sregs);
  }

  /**
   * Runs the vCPU in a worker thread until the guest ends the run or stop() is called. The PC
   * board's COM ports (COM1 first) are wired to `serial` (null or missing: to nothing); fw_cfg,
   * when `firmware` is given, tells the guest about the machine.
   */
  async run(serial: readonly (SerialRings | null)[], firmware?: FwCfgConfig, options: VcpuRunOptions = {}): Promise<VcpuRunResult> {
    if (this.control) throw new Error(`vCPU ${this.id} is already running`);
    const control = new VcpuControl();
    this.control = control;
    this.currentState = 'running';
    const thread = VcpuThread.acquire();
    const onStop = (why: DebugStop): void => {
      this.currentState = 'paused';
      for (const resolve of this.pauseWaiters.splice(0)) resolve();
      options.onDebugStop?.(why);
    };
    // HLT does not exit under the in-kernel irqchip: ask now and then whether the guest is done.
    const poll = this.vm.irqchip ? setInterval(() => control.requestPoll(this.fd.runAddr), HALT_POLL_INTERVAL_MS) : undefined;
    try {
      const job = {
        vcpuId: this.id,
        debug: options.debug,
        remote: options.remote,
        vmFd: this.vm.fd.fd,
        irqchip: this.vm.irqchip,
        vcpuFd: this.fd.fd,
        runAddr: this.fd.runAddr,
        runSize: this.fd.runSize,
        memoryAddr: this.vm.memory.hostAddr,
        memorySize: this.vm.memory.size,
        serial: serial.map((rings) => (rings ? { tx: rings.tx.buffer, rx: rings.rx.buffer } : null)),
        firmware,
        control: control.buffer,
      };
      return await thread.run(job, onStop);
    } finally {
      clearInterval(poll);
      this.control = undefined;
      this.currentState = 'stopped';
      for (const resolve of this.pauseWaiters.splice(0)) resolve(); // a pause() in flight ends with the run
      thread.release();
    }
  }

  /** Kicks the vCPU out of KVM_RUN and ends its run (the run() promise then resolves 'stopped'). */
  stop(): void {
    this.control?.requestStop(this.fd.runAddr);
  }

  get state(): VcpuState {
    return this.currentState;
  }

  /** An application processor that, at its last halt poll, was still waiting for INIT/SIPI. */
  get waitingForSipi(): boolean {
    return this.control?.waitingForSipi ?? false;
  }

  /**
   * Stops a running vCPU wherever it is (in KVM_RUN, halted in the kernel, handling an exit) and
   * resolves once it waits, paused; at once if it is not running.
   */
  pause(): Promise<void> {
    if (this.currentState !== 'running') return Promise.resolve();
    const paused = new Promise<void>((resolve) => this.pauseWaiters.push(resolve));
    this.pauseForDebugger();
    return paused;
  }

  /** Lets a paused vCPU go on (nothing if it is not paused). */
  resume(): void {
    if (this.currentState === 'paused') this.resumeFromDebugger();
  }

  /** Debugger: stop the running vCPU; options.onDebugStop hears { kind: 'interrupt' } once it has. */
  pauseForDebugger(): void {
    this.control?.requestPause(this.fd.runAddr);
  }

  /** Debugger: let a vCPU stopped for the debugger run on. */
  resumeFromDebugger(): void {
    if (this.currentState === 'paused') this.currentState = 'running';
    this.control?.command(DEBUG_COMMAND_RESUME);
  }

  setGuestDebug(debug: GuestDebug): void {
    this.fd.setGuestDebug(debug);
  }

  close(): void {
    this.fd.close();
  }
}
