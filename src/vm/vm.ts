/**
 * A VM and its vCPUs, for people who want to drive KVM themselves (runGuest builds on these).
 * Every fd and mapping is released by an explicit close(); nothing relies on GC.
 */
import { KVM_TSS_ADDRESS } from '../kvm/constants.js';
import { Kvm, type VcpuFd, type VmFd } from '../kvm/ioctls.js';
import type { KvmRegs, KvmSregs } from '../kvm/structs.js';
import { ByteRing } from './byte-ring.js';
import { GuestMemory } from './guest-memory.js';
import { VcpuControl } from './vcpu-control.js';
import type { VcpuRunResult } from './vcpu-loop.js';
import { VcpuThread } from './vcpu-thread.js';

/** The guest-physical slot that holds all of RAM, from address 0. */
export const RAM_SLOT = 0;

export interface VmOptions {
  /** Bytes of guest RAM, a multiple of 4096. */
  memorySize: number;
}

export class Vm {
  readonly memory: GuestMemory;
  private readonly vcpus: Vcpu[] = [];
  private closed = false;

  private constructor(
    private readonly kvm: Kvm,
    readonly fd: VmFd,
    memorySize: number,
  ) {
    this.memory = GuestMemory.create(memorySize);
  }

  /** KVM_CREATE_VM, KVM_SET_TSS_ADDR, and RAM as slot 0. Throws KvmError. */
  static create(options: VmOptions): Vm {
    const kvm = Kvm.open();
    let fd: VmFd | undefined;
    let vm: Vm | undefined;
    try {
      fd = kvm.createVm();
      // Intel needs three pages for real-mode emulation; harmless elsewhere.
      fd.setTssAddr(KVM_TSS_ADDRESS);
      vm = new Vm(kvm, fd, options.memorySize);
      fd.setUserMemoryRegion(RAM_SLOT, 0, vm.memory.size, vm.memory.hostAddr);
      return vm;
    } catch (err) {
      if (vm) vm.close();
      else {
        fd?.close();
        kvm.close();
      }
      throw err;
    }
  }

  createVcpu(id = this.vcpus.length): Vcpu {
    const vcpu = new Vcpu(this, this.fd.createVcpu(id), id);
    this.vcpus.push(vcpu);
    return vcpu;
  }

  /** Closes vCPUs, memory, the VM fd and /dev/kvm. Stop (and await) every run first. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const vcpu of this.vcpus) vcpu.close();
    this.fd.close();
    this.memory.close();
    this.kvm.close();
  }
}

/** The serial rings a run's COM1 is wired to; the main-thread side is SerialBridge. */
export interface SerialRings {
  tx: ByteRing;
  rx: ByteRing;
}

export class Vcpu {
  private control: VcpuControl | undefined;

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
   * board (COM1, debug-exit, i8042) is wired to `serial`.
   */
  async run(serial: SerialRings): Promise<VcpuRunResult> {
    if (this.control) throw new Error(`vCPU ${this.id} is already running`);
    const control = new VcpuControl();
    this.control = control;
    const thread = VcpuThread.acquire();
    try {
      return await thread.run({
        vcpuFd: this.fd.fd,
        runAddr: this.fd.runAddr,
        runSize: this.fd.runSize,
        memoryAddr: this.vm.memory.hostAddr,
        memorySize: this.vm.memory.size,
        serialTx: serial.tx.buffer,
        serialRx: serial.rx.buffer,
        control: control.buffer,
      });
    } finally {
      this.control = undefined;
      thread.release();
    }
  }

  /** Kicks the vCPU out of KVM_RUN and ends its run (the run() promise then resolves 'stopped'). */
  stop(): void {
    this.control?.requestStop(this.fd.runAddr);
  }

  close(): void {
    this.fd.close();
  }
}
