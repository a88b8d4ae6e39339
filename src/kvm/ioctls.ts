/**
 * Typed wrappers over the KVM file descriptors, in rust-vmm kvm-ioctls' shape:
 * Kvm (/dev/kvm) → VmFd (KVM_CREATE_VM) → VcpuFd (KVM_CREATE_VCPU). Each method is one ioctl and
 * throws KvmError on failure; nothing here holds policy.
 */
import { KVM_API_VERSION, KVM_CAP_MAX_VCPUS, KVM_CAP_NR_VCPUS, E2BIG, EAGAIN, EINTR, EINVAL } from './constants.js';
import { CAPABILITIES } from './capabilities.js';

/** Set once Kvm.open has found every required capability on this host. */
let capabilitiesChecked = false;
import { closeAfterExit, closeInBackground } from './background-close.js';
import { KvmError } from './error.js';
import { native } from './native.js';
import { KvmRun } from './run.js';
import {
  KVM_IRQ_LEVEL_SIZE,
  KVM_PIT_CONFIG_SIZE,
  CPUID_MAX_ENTRIES,
  cpuidBuffer,
  decodeCpuid2,
  decodeMsrs,
  encodeCpuid2,
  encodeMsrs,
  encodeIrqRouting,
  encodeGuestDebug,
  KVM_TRANSLATION_SIZE,
  type GuestDebug,
  type CpuidEntry,
  type IrqRoute,
  type MsrEntry,
} from './x86.js';
import {
  KVM_CLOCK_DATA_SIZE,
  KVM_DEBUGREGS_SIZE,
  KVM_FPU_SIZE,
  KVM_IRQCHIP_SIZE,
  KVM_LAPIC_STATE_SIZE,
  KVM_PIT_STATE2_SIZE,
  KVM_VCPU_EVENTS_SIZE,
  KVM_XCRS_SIZE,
  KVM_XSAVE_SIZE,
  decodeMsrList,
  irqchipBuffer,
  msrListBuffer,
} from './state.js';
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
      const version = native().ioctl(fd, native().ioctls.KVM_GET_API_VERSION);
      // ENOTTY/EINVAL: the file opened, but it is not KVM (TSKVM_KVM_DEVICE=/dev/null, a typo).
      if (version < 0) throw KvmError.notKvm(devicePath, version);
      if (version !== KVM_API_VERSION) throw KvmError.apiMismatch(version, KVM_API_VERSION);
      if (!capabilitiesChecked) {
        // The host's KVM does not change while the process runs: check once.
        for (const cap of CAPABILITIES) {
          if (cap.required && !kvm.checkExtension(cap.number)) throw KvmError.missingCapability(cap.name, cap.neededFor);
        }
        capabilitiesChecked = true;
      }
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

  /** This host's vCPU limit, for messages ('?' where /dev/kvm cannot be opened). */
  static hostMaxVcpus(): number | string {
    try {
      const kvm = Kvm.open();
      try {
        return kvm.maxVcpus();
      } finally {
        kvm.close();
      }
    } catch {
      return '?';
    }
  }

  /** KVM_CAP_MAX_VCPUS (or the older KVM_CAP_NR_VCPUS): the most vCPUs one VM may have. */
  maxVcpus(): number {
    return this.checkExtension(KVM_CAP_MAX_VCPUS) || this.checkExtension(KVM_CAP_NR_VCPUS);
  }

  /** KVM_GET_SUPPORTED_CPUID: every CPUID leaf KVM can give a guest on this host. */
  supportedCpuid(): CpuidEntry[] {
    const bytes = cpuidBuffer(CPUID_MAX_ENTRIES);
    check('KVM_GET_SUPPORTED_CPUID', native().ioctlBuffer(this.fd, native().ioctls.KVM_GET_SUPPORTED_CPUID, bytes));
    return decodeCpuid2(bytes);
  }

  /**
   * KVM_GET_MSR_INDEX_LIST: the MSRs KVM says a VMM should save and restore (msrs_to_save plus
   * the ones KVM emulates). Not all of them exist on every vCPU: KVM_GET_MSRS tells.
   */
  msrIndexList(): number[] {
    let capacity = MSR_LIST_CAPACITY;
    for (;;) {
      const bytes = msrListBuffer(capacity);
      const r = native().ioctlBuffer(this.fd, native().ioctls.KVM_GET_MSR_INDEX_LIST, bytes);
      // Too small: KVM wrote the count it needs into nmsrs.
      if (r === -E2BIG) capacity = new DataView(bytes.buffer).getUint32(0, true);
      else {
        check('KVM_GET_MSR_INDEX_LIST', r);
        return decodeMsrList(bytes);
      }
    }
  }

  /**
   * KVM_CREATE_VM, again after EINTR: the kernel gives up creating the VM when a signal is
   * pending (a profiler's SIGPROF, a child's SIGCHLD), and nothing was created, so it is retried
   * as QEMU's kvm_init does.
   */
  createVm(): VmFd {
    let fd: number;
    do fd = native().ioctl(this.fd, native().ioctls.KVM_CREATE_VM, 0);
    while (fd === -EINTR);
    return new VmFd(check('KVM_CREATE_VM', fd), this.vcpuMmapSize());
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
    private readonly owner = true,
  ) {}

  /** A view of a VM created by another thread (for VM ioctls such as KVM_IRQ_LINE); owns nothing. */
  static attach(fd: number): VmFd {
    return new VmFd(fd, 0, false);
  }

  setTssAddr(addr: number): void {
    check('KVM_SET_TSS_ADDR', native().ioctl(this.fd, native().ioctls.KVM_SET_TSS_ADDR, addr));
  }

  setUserMemoryRegion(slot: number, guestPhysAddr: number, size: number, userAddr: bigint, flags = 0): void {
    check('KVM_SET_USER_MEMORY_REGION', native().setUserMemoryRegion(this.fd, slot, flags, guestPhysAddr, size, userAddr));
  }

  /** KVM_SET_IDENTITY_MAP_ADDR: one page KVM needs on Intel for real mode without unrestricted guest. */
  setIdentityMapAddr(addr: number): void {
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(addr), true);
    check('KVM_SET_IDENTITY_MAP_ADDR', native().ioctlBuffer(this.fd, native().ioctls.KVM_SET_IDENTITY_MAP_ADDR, bytes));
  }

  /** KVM_CHECK_EXTENSION on the VM: some answers (KVM_CAP_XSAVE2's size) are per VM. */
  checkExtension(cap: number): number {
    return check('KVM_CHECK_EXTENSION', native().ioctl(this.fd, native().ioctls.KVM_CHECK_EXTENSION, cap));
  }

  /** KVM_GET_IRQCHIP: one in-kernel interrupt controller's state, as struct kvm_irqchip bytes (chip_id first). */
  getIrqchip(chipId: number): Uint8Array {
    const bytes = irqchipBuffer(chipId);
    check('KVM_GET_IRQCHIP', native().ioctlBuffer(this.fd, native().ioctls.KVM_GET_IRQCHIP, bytes));
    return bytes;
  }

  /** KVM_SET_IRQCHIP: the chip named by the struct's chip_id takes the saved state. */
  setIrqchip(bytes: Uint8Array): void {
    check('KVM_SET_IRQCHIP', native().ioctlBuffer(this.fd, native().ioctls.KVM_SET_IRQCHIP, sized(bytes, KVM_IRQCHIP_SIZE, 'kvm_irqchip')));
  }

  /** KVM_GET_PIT2: the in-kernel 8254's three channels (struct kvm_pit_state2 bytes). */
  getPit2(): Uint8Array {
    const bytes = new Uint8Array(KVM_PIT_STATE2_SIZE);
    check('KVM_GET_PIT2', native().ioctlBuffer(this.fd, native().ioctls.KVM_GET_PIT2, bytes));
    return bytes;
  }

  /** KVM_SET_PIT2: the counts are reloaded, counting from now. */
  setPit2(bytes: Uint8Array): void {
    check('KVM_SET_PIT2', native().ioctlBuffer(this.fd, native().ioctls.KVM_SET_PIT2, sized(bytes, KVM_PIT_STATE2_SIZE, 'kvm_pit_state2')));
  }

  /** KVM_GET_CLOCK: kvmclock (struct kvm_clock_data bytes). */
  getClock(): Uint8Array {
    const bytes = new Uint8Array(KVM_CLOCK_DATA_SIZE);
    check('KVM_GET_CLOCK', native().ioctlBuffer(this.fd, native().ioctls.KVM_GET_CLOCK, bytes));
    return bytes;
  }

  setClock(bytes: Uint8Array): void {
    check(
      'KVM_SET_CLOCK',
      native().ioctlBuffer(this.fd, native().ioctls.KVM_SET_CLOCK, sized(bytes, KVM_CLOCK_DATA_SIZE, 'kvm_clock_data')),
    );
  }

  /** KVM_CREATE_IRQCHIP: PIC pair, IOAPIC and per-vCPU LAPICs in the kernel. Before any vCPU. */
  createIrqchip(): void {
    check('KVM_CREATE_IRQCHIP', native().ioctl(this.fd, native().ioctls.KVM_CREATE_IRQCHIP, 0));
  }

  /** KVM_CREATE_PIT2: the 8254 in the kernel, wired to IRQ0. After the irqchip. */
  createPit2(flags: number): void {
    const config = new Uint8Array(KVM_PIT_CONFIG_SIZE);
    new DataView(config.buffer).setUint32(0, flags, true);
    check('KVM_CREATE_PIT2', native().ioctlBuffer(this.fd, native().ioctls.KVM_CREATE_PIT2, config));
  }

  /** KVM_SET_GSI_ROUTING: replaces the whole GSI → irqchip-pin table. */
  setGsiRouting(routes: readonly IrqRoute[]): void {
    check('KVM_SET_GSI_ROUTING', native().ioctlBuffer(this.fd, native().ioctls.KVM_SET_GSI_ROUTING, encodeIrqRouting(routes)));
  }

  private readonly irqLevel = new Uint8Array(KVM_IRQ_LEVEL_SIZE);
  private readonly irqLevelView = new DataView(this.irqLevel.buffer);

  /** KVM_IRQ_LINE: drive a GSI (ISA IRQ n on both the PIC and the IOAPIC) high or low. */
  irqLine(irq: number, level: boolean): void {
    this.irqLevelView.setUint32(0, irq, true);
    this.irqLevelView.setUint32(4, level ? 1 : 0, true);
    check('KVM_IRQ_LINE', native().ioctlBuffer(this.fd, native().ioctls.KVM_IRQ_LINE, this.irqLevel));
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
    if (this.closed || !this.owner) return;
    this.closed = true;
    native().close(this.fd);
  }

  /**
   * Closes the fd on another thread (background-close.ts). The last close of a VM fd destroys the
   * VM, which takes the kernel 15-25 ms once it has an irqchip (RCU grace periods): nobody needs to wait for it.
   */
  closeAsync(): Promise<void> {
    if (this.closed || !this.owner) return Promise.resolve();
    this.closed = true;
    return closeInBackground(this.fd);
  }

  /**
   * In a process that exits once its guests have ended (the command lines), leaves the VM's
   * destruction until after the exit (background-close.ts) and closes the fd here; false (the fd
   * still open) where it cannot.
   */
  closeAfterExit(): boolean {
    if (this.closed || !this.owner || !closeAfterExit(this.fd)) return false;
    this.closed = true;
    return true;
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

  /**
   * KVM_RUN. Returns true after a VM exit; false when it returned without one: a signal (a kick,
   * -EINTR), or an application processor woken from its wait for INIT/SIPI (-EAGAIN: run again).
   */
  run(): boolean {
    return this.ran(native().run(this.fd));
  }

  /**
   * As run(), but exits to the ports `unassigned` marks (a PortMap) are taken by the native side
   * without coming back: writes dropped, reads all ones. handled[0] grows by their number. Without
   * the addon's fast path (the ffi-rs backend) it is run(), every exit returned.
   */
  runPastUnassigned(unassigned: Uint8Array, handled: Float64Array): boolean {
    const calls = native();
    if (calls.runPastUnassigned === undefined) return this.run();
    return this.ran(calls.runPastUnassigned(this.fd, this.kvmRun.bytes.buffer as ArrayBuffer, unassigned, handled));
  }

  /** Whether runPastUnassigned takes those exits natively (the addon), rather than being run(). */
  get runsPastUnassigned(): boolean {
    return native().runPastUnassigned !== undefined;
  }

  private ran(r: number): boolean {
    if (r === 0) return true;
    if (r === -EINTR || r === -EAGAIN) return false;
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

  setCpuid2(entries: readonly CpuidEntry[]): void {
    this.setCpuid2Encoded(encodeCpuid2(entries));
  }

  /** KVM_SET_CPUID2 with a struct kvm_cpuid2 encodeCpuid2 made; KVM only reads it, so one encoding serves many vCPUs. */
  setCpuid2Encoded(bytes: Uint8Array): void {
    check('KVM_SET_CPUID2', native().ioctlBuffer(this.fd, native().ioctls.KVM_SET_CPUID2, bytes));
  }

  /** KVM_SET_MSRS; throws unless every entry was taken. */
  setMsrs(entries: readonly MsrEntry[]): void {
    const set = check('KVM_SET_MSRS', native().ioctlBuffer(this.fd, native().ioctls.KVM_SET_MSRS, encodeMsrs(entries)));
    if (set !== entries.length) {
      throw KvmError.fromErrno('KVM_SET_MSRS', -EINVAL, `MSR 0x${entries[set]?.index.toString(16)} was refused`);
    }
  }

  getMsrs(indices: readonly number[]): MsrEntry[] {
    const bytes = encodeMsrs(indices.map((index) => ({ index, data: 0n })));
    const got = check('KVM_GET_MSRS', native().ioctlBuffer(this.fd, native().ioctls.KVM_GET_MSRS, bytes));
    return decodeMsrs(bytes, got);
  }

  /** KVM_SET_GUEST_DEBUG: single-step and debug-register breakpoints under the host's control. */
  setGuestDebug(debug: GuestDebug): void {
    check('KVM_SET_GUEST_DEBUG', native().ioctlBuffer(this.fd, native().ioctls.KVM_SET_GUEST_DEBUG, encodeGuestDebug(debug)));
  }

  /** KVM_TRANSLATE: the guest-physical address of a linear address under the guest's page tables. */
  translate(linear: bigint): number | undefined {
    const bytes = new Uint8Array(KVM_TRANSLATION_SIZE);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, linear, true);
    check('KVM_TRANSLATE', native().ioctlBuffer(this.fd, native().ioctls.KVM_TRANSLATE, bytes));
    return view.getUint8(16) ? Number(view.getBigUint64(8, true)) : undefined;
  }

  /** KVM_GET_MP_STATE: runnable, halted, waiting for INIT/SIPI... (KVM_MP_STATE_*). */
  getMpState(): number {
    check('KVM_GET_MP_STATE', native().ioctlBuffer(this.fd, native().ioctls.KVM_GET_MP_STATE, this.mpStateBytes));
    return new DataView(this.mpStateBytes.buffer).getUint32(0, true);
  }

  private readonly mpStateBytes = new Uint8Array(4);

  /** KVM_SET_MP_STATE: runnable, halted, waiting for INIT/SIPI... */
  setMpState(state: number): void {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, state, true);
    check('KVM_SET_MP_STATE', native().ioctlBuffer(this.fd, native().ioctls.KVM_SET_MP_STATE, bytes));
  }

  /** KVM_GET_CPUID2: the CPUID table this vCPU answers with (what KVM_SET_CPUID2 gave it, as KVM keeps it). */
  getCpuid2(): CpuidEntry[] {
    let capacity = CPUID_MAX_ENTRIES;
    for (;;) {
      const bytes = cpuidBuffer(capacity);
      const r = native().ioctlBuffer(this.fd, native().ioctls.KVM_GET_CPUID2, bytes);
      if (r === -E2BIG) capacity *= 2;
      else {
        check('KVM_GET_CPUID2', r);
        return decodeCpuid2(bytes);
      }
    }
  }

  /** KVM_GET_FPU: x87 and SSE state (struct kvm_fpu bytes), for hosts without XSAVE. */
  getFpu(): Uint8Array {
    const bytes = new Uint8Array(KVM_FPU_SIZE);
    check('KVM_GET_FPU', native().ioctlBuffer(this.fd, native().ioctls.KVM_GET_FPU, bytes));
    return bytes;
  }

  setFpu(bytes: Uint8Array): void {
    check('KVM_SET_FPU', native().ioctlBuffer(this.fd, native().ioctls.KVM_SET_FPU, sized(bytes, KVM_FPU_SIZE, 'kvm_fpu')));
  }

  /**
   * The XSAVE area: every register state component XCR0 enables (x87, SSE, AVX, ...). `size` is
   * KVM_CAP_XSAVE2's answer on the VM; beyond 4 KiB (AMX) only KVM_GET_XSAVE2 can return it.
   */
  getXsave(size: number = KVM_XSAVE_SIZE): Uint8Array {
    const bytes = new Uint8Array(Math.max(size, KVM_XSAVE_SIZE));
    if (size > KVM_XSAVE_SIZE) check('KVM_GET_XSAVE2', native().ioctlBuffer(this.fd, native().ioctls.KVM_GET_XSAVE2, bytes));
    else check('KVM_GET_XSAVE', native().ioctlBuffer(this.fd, native().ioctls.KVM_GET_XSAVE, bytes));
    return bytes;
  }

  /** KVM_SET_XSAVE reads as many bytes as this VM's XSAVE area has (4 KiB or KVM_CAP_XSAVE2's size). */
  setXsave(bytes: Uint8Array): void {
    check('KVM_SET_XSAVE', native().ioctlBuffer(this.fd, native().ioctls.KVM_SET_XSAVE, sized(bytes, KVM_XSAVE_SIZE, 'kvm_xsave')));
  }

  /** KVM_GET_XCRS: the extended control registers (XCR0), struct kvm_xcrs bytes. */
  getXcrs(): Uint8Array {
    const bytes = new Uint8Array(KVM_XCRS_SIZE);
    check('KVM_GET_XCRS', native().ioctlBuffer(this.fd, native().ioctls.KVM_GET_XCRS, bytes));
    return bytes;
  }

  setXcrs(bytes: Uint8Array): void {
    check('KVM_SET_XCRS', native().ioctlBuffer(this.fd, native().ioctls.KVM_SET_XCRS, sized(bytes, KVM_XCRS_SIZE, 'kvm_xcrs')));
  }

  /** KVM_GET_LAPIC: the in-kernel local APIC's register page (1 KiB). */
  getLapic(): Uint8Array {
    const bytes = new Uint8Array(KVM_LAPIC_STATE_SIZE);
    check('KVM_GET_LAPIC', native().ioctlBuffer(this.fd, native().ioctls.KVM_GET_LAPIC, bytes));
    return bytes;
  }

  /** KVM_SET_LAPIC: the page as saved; KVM restarts the APIC timer from its initial count. */
  setLapic(bytes: Uint8Array): void {
    check(
      'KVM_SET_LAPIC',
      native().ioctlBuffer(this.fd, native().ioctls.KVM_SET_LAPIC, sized(bytes, KVM_LAPIC_STATE_SIZE, 'kvm_lapic_state')),
    );
  }

  /** KVM_GET_VCPU_EVENTS: exceptions, interrupts and NMIs in flight, the interrupt shadow, SMM (struct kvm_vcpu_events bytes). */
  getVcpuEvents(): Uint8Array {
    const bytes = new Uint8Array(KVM_VCPU_EVENTS_SIZE);
    check('KVM_GET_VCPU_EVENTS', native().ioctlBuffer(this.fd, native().ioctls.KVM_GET_VCPU_EVENTS, bytes));
    return bytes;
  }

  setVcpuEvents(bytes: Uint8Array): void {
    check(
      'KVM_SET_VCPU_EVENTS',
      native().ioctlBuffer(this.fd, native().ioctls.KVM_SET_VCPU_EVENTS, sized(bytes, KVM_VCPU_EVENTS_SIZE, 'kvm_vcpu_events')),
    );
  }

  /** KVM_GET_DEBUGREGS: the guest's DR0–DR3, DR6, DR7 (struct kvm_debugregs bytes). */
  getDebugRegs(): Uint8Array {
    const bytes = new Uint8Array(KVM_DEBUGREGS_SIZE);
    check('KVM_GET_DEBUGREGS', native().ioctlBuffer(this.fd, native().ioctls.KVM_GET_DEBUGREGS, bytes));
    return bytes;
  }

  setDebugRegs(bytes: Uint8Array): void {
    check(
      'KVM_SET_DEBUGREGS',
      native().ioctlBuffer(this.fd, native().ioctls.KVM_SET_DEBUGREGS, sized(bytes, KVM_DEBUGREGS_SIZE, 'kvm_debugregs')),
    );
  }

  /** KVM_GET_TSC_KHZ: the guest's TSC frequency. */
  getTscKhz(): number {
    return check('KVM_GET_TSC_KHZ', native().ioctl(this.fd, native().ioctls.KVM_GET_TSC_KHZ));
  }

  /** KVM_SET_TSC_KHZ (needs KVM_CAP_TSC_CONTROL): scale the guest's TSC to another host's rate. */
  setTscKhz(khz: number): void {
    check('KVM_SET_TSC_KHZ', native().ioctl(this.fd, native().ioctls.KVM_SET_TSC_KHZ, khz));
  }

  close(): void {
    if (this.closed || !this.owner) return;
    this.closed = true;
    native().munmap(this.runAddr, this.runSize);
    native().close(this.fd);
  }
}

/** Room for the MSR index list on a first try (this host lists 41; KVM says so when it needs more). */
const MSR_LIST_CAPACITY = 256;

/** A state struct's bytes, refused when shorter than the kernel will read. */
function sized(bytes: Uint8Array, size: number, struct: string): Uint8Array {
  if (bytes.byteLength < size) throw new RangeError(`struct ${struct} is ${size} bytes; got ${bytes.byteLength}`);
  return bytes;
}

/** Returns a non-negative ioctl result, or throws the KvmError for -errno. */
function check(syscall: string, r: number): number {
  if (r < 0) throw KvmError.fromErrno(syscall, r);
  return r;
}
