/**
 * Typed wrappers over the KVM file descriptors, in rust-vmm kvm-ioctls' shape:
 * Kvm (/dev/kvm) → VmFd (KVM_CREATE_VM) → VcpuFd (KVM_CREATE_VCPU). Each method is one ioctl and
 * throws KvmError on failure; nothing here holds policy.
 */
import { KVM_API_VERSION, KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_USER_MEMORY, KVM_CAP_SET_TSS_ADDR, EINTR } from './constants.js';
import { KvmError } from './error.js';
import { native } from './native.js';
import { KvmRun } from './run.js';
import { KVM_REGS_SIZE, KVM_SREGS_SIZE, decodeRegs, decodeSregs, encodeRegs, encodeSregs, type KvmRegs, type KvmSregs } from './structs.js';

export const KVM_DEVICE_PATH = '/dev/kvm';

/** /dev/kvm, unless TSKVM_KVM_DEVICE names another node (for tests of hosts without KVM). */
export function kvmDevicePath(): string {
  return process.env.TSKVM_KVM_DEVICE || KVM_DEVICE_PATH;
}

/** An open /dev/kvm. */
export class Kvm {
  private closed = false;
  private constructor(readonly fd: number) {}

  /** Opens /dev/kvm and checks the API version and the capabilities tskvm cannot do without. */
  static open(devicePath = kvmDevicePath()): Kvm {
    const fd = native().open(devicePath);
    if (fd < 0) throw KvmError.fromOpen(devicePath, fd);
    const kvm = new Kvm(fd);
    try {
      const version = kvm.apiVersion();
      if (version !== KVM_API_VERSION) throw KvmError.apiMismatch(version, KVM_API_VERSION);
      if (!kvm.checkExtension(KVM_CAP_USER_MEMORY)) throw KvmError.missingCapability('KVM_CAP_USER_MEMORY', 'guest memory');
      if (!kvm.checkExtension(KVM_CAP_SET_TSS_ADDR)) throw KvmError.missingCapability('KVM_CAP_SET_TSS_ADDR', 'real-mode guests');
      if (!kvm.checkExtension(KVM_CAP_IMMEDIATE_EXIT)) throw KvmError.missingCapability('KVM_CAP_IMMEDIATE_EXIT', 'stopping a running vCPU');
    } catch (err) {
      kvm.close();
      throw err;
    }
    return kvm;
  }

  apiVersion(): number {
    return check('KVM_GET_API_VERSION', native().ioctl(this.fd, native().ioctls.KVM_GET_API_VERSION));
  }

  /** KVM_CHECK_EXTENSION: 0 when absent, otherwise a capability-specific positive value. */
  checkExtension(cap: number): number {
    return check('KVM_CHECK_EXTENSION', native().ioctl(this.fd, native().ioctls.KVM_CHECK_EXTENSION, cap));
  }

  vcpuMmapSize(): number {
    return check('KVM_GET_VCPU_MMAP_SIZE', native().ioctl(this.fd, native().ioctls.KVM_GET_VCPU_MMAP_SIZE));
  }

  createVm(): VmFd {
    return new VmFd(check('KVM_CREATE_VM', native().ioctl(this.fd, native().ioctls.KVM_CREATE_VM, 0)), this.vcpuMmapSize());
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    native().close(this.fd);
  }
}

/** A VM file descriptor. */
export class VmFd {
  private closed = false;
  constructor(
    readonly fd: number,
    private readonly vcpuMmapSize: number,
  ) {}

  setTssAddr(addr: number): void {
    check('KVM_SET_TSS_ADDR', native().ioctl(this.fd, native().ioctls.KVM_SET_TSS_ADDR, addr));
  }

  setUserMemoryRegion(slot: number, guestPhysAddr: number, size: number, userAddr: bigint, flags = 0): void {
    check('KVM_SET_USER_MEMORY_REGION', native().setUserMemoryRegion(this.fd, slot, flags, guestPhysAddr, size, userAddr));
  }

  /** KVM_CREATE_VCPU, and the mapping of its kvm_run page. */
  createVcpu(id: number): VcpuFd {
    const fd = check('KVM_CREATE_VCPU', native().ioctl(this.fd, native().ioctls.KVM_CREATE_VCPU, id));
    const runAddr = native().mmapFd(fd, this.vcpuMmapSize);
    if (runAddr < 0n) {
      native().close(fd);
      throw KvmError.fromErrno('mmap kvm_run', Number(runAddr));
    }
    return new VcpuFd(fd, runAddr, this.vcpuMmapSize, true);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    native().close(this.fd);
  }
}

/**
 * A vCPU file descriptor and its kvm_run mapping. The thread that creates it owns fd and
 * mapping; a worker thread attaches with `VcpuFd.attach`, which owns neither.
 */
export class VcpuFd {
  private closed = false;
  private runView: KvmRun | undefined;
  private readonly regsBytes = new Uint8Array(KVM_REGS_SIZE);
  private readonly sregsBytes = new Uint8Array(KVM_SREGS_SIZE);

  constructor(
    readonly fd: number,
    /** Address of the kvm_run mapping in this process. */
    readonly runAddr: bigint,
    readonly runSize: number,
    private readonly owner: boolean,
  ) {}

  /** A view of a vCPU created by another thread: same fd, same kvm_run pages, no ownership. */
  static attach(fd: number, runAddr: bigint, runSize: number): VcpuFd {
    return new VcpuFd(fd, runAddr, runSize, false);
  }

  /** This thread's view of kvm_run (one external ArrayBuffer per thread, made on first use). */
  get kvmRun(): KvmRun {
    this.runView ??= new KvmRun(native().externalBuffer(this.runAddr, this.runSize));
    return this.runView;
  }

  /** KVM_RUN. Returns false when interrupted by a signal (a kick), true after a VM exit. */
  run(): boolean {
    const r = native().run(this.fd);
    if (r === 0) return true;
    if (r === -EINTR) return false;
    throw KvmError.fromErrno('KVM_RUN', r);
  }

  getRegs(): KvmRegs {
    check('KVM_GET_REGS', native().ioctlBuffer(this.fd, native().ioctls.KVM_GET_REGS, this.regsBytes));
    return decodeRegs(this.regsBytes);
  }

  setRegs(regs: KvmRegs): void {
    check('KVM_SET_REGS', native().ioctlBuffer(this.fd, native().ioctls.KVM_SET_REGS, encodeRegs(regs, this.regsBytes)));
  }

  getSregs(): KvmSregs {
    check('KVM_GET_SREGS', native().ioctlBuffer(this.fd, native().ioctls.KVM_GET_SREGS, this.sregsBytes));
    return decodeSregs(this.sregsBytes);
  }

  setSregs(sregs: KvmSregs): void {
    check('KVM_SET_SREGS', native().ioctlBuffer(this.fd, native().ioctls.KVM_SET_SREGS, encodeSregs(sregs, this.sregsBytes)));
  }

  close(): void {
    if (this.closed || !this.owner) return;
    this.closed = true;
    native().munmap(this.runAddr, this.runSize);
    native().close(this.fd);
  }
}

/** Returns a non-negative ioctl result, or throws the KvmError for -errno. */
function check(syscall: string, r: number): number {
  if (r < 0) throw KvmError.fromErrno(syscall, r);
  return r;
}
