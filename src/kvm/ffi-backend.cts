/**
 * The second backend: the NativeKvm interface implemented with ffi-rs calling libc directly —
 * open, ioctl, mmap, madvise, pthread_kill, sigaction — for hosts where the addon cannot be built.
 * ioctl request numbers and struct layouts are those of <linux/kvm.h> on x86-64 (the unit tests
 * hold them to the addon's). Each call costs about 5 µs more than the addon's, inside ffi-rs (which
 * reads the call's description from a JS object and prepares it anew every time): that shows on the
 * exit path, one call per exit (see `npm run bench`), and nowhere else.
 */
// CommonJS (.cts), so that native.ts can load it synchronously, and only when it is chosen.
import type * as Ffi from 'ffi-rs';
import type { NativeIoctls, NativeKvm } from './native.js';

const ffi = require('ffi-rs') as typeof Ffi;
const { DataType } = ffi;
const LIBC = 'libc';

// _IOC(dir, type, nr, size) from <asm-generic/ioctl.h>.
const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;
const KVMIO = 0xae;
const ioc = (dir: number, nr: number, size: number): number => ((dir << 30) | (size << 16) | (KVMIO << 8) | nr) >>> 0;
const io = (nr: number): number => ioc(IOC_NONE, nr, 0);
const ior = (nr: number, size: number): number => ioc(IOC_READ, nr, size);
const iow = (nr: number, size: number): number => ioc(IOC_WRITE, nr, size);
const iowr = (nr: number, size: number): number => ioc(IOC_READ | IOC_WRITE, nr, size);

// Struct sizes (x86-64) that are part of the request numbers.
const SIZEOF_KVM_REGS = 144;
const SIZEOF_KVM_SREGS = 312;
const SIZEOF_KVM_USERSPACE_MEMORY_REGION = 32;
const SIZEOF_KVM_CPUID2 = 8; // header only: the entries are a flexible array
const SIZEOF_KVM_MSRS = 8;
const SIZEOF_KVM_MSR_LIST = 4;
const SIZEOF_KVM_IRQ_LEVEL = 8;
const SIZEOF_KVM_IRQCHIP = 520;
const SIZEOF_KVM_IRQ_ROUTING = 8;
const SIZEOF_KVM_PIT_CONFIG = 64;
const SIZEOF_KVM_MP_STATE = 4;
const SIZEOF_KVM_GUEST_DEBUG = 72;
const SIZEOF_KVM_TRANSLATION = 24;
const SIZEOF_U64 = 8;
// The structs snapshots save (see native/kvm_shim.c's shim_layout_values).
const SIZEOF_KVM_FPU = 416;
const SIZEOF_KVM_XSAVE = 4096;
const SIZEOF_KVM_XCRS = 392;
const SIZEOF_KVM_LAPIC_STATE = 1024;
const SIZEOF_KVM_VCPU_EVENTS = 64;
const SIZEOF_KVM_DEBUGREGS = 128;
const SIZEOF_KVM_PIT_STATE2 = 112;
const SIZEOF_KVM_CLOCK_DATA = 48;

const FFI_IOCTLS: NativeIoctls & { KVM_SET_USER_MEMORY_REGION: number; KVM_RUN: number } = {
  KVM_GET_API_VERSION: io(0x00),
  KVM_CREATE_VM: io(0x01),
  KVM_GET_MSR_INDEX_LIST: iowr(0x02, SIZEOF_KVM_MSR_LIST),
  KVM_CHECK_EXTENSION: io(0x03),
  KVM_GET_VCPU_MMAP_SIZE: io(0x04),
  KVM_GET_SUPPORTED_CPUID: iowr(0x05, SIZEOF_KVM_CPUID2),
  KVM_CREATE_VCPU: io(0x41),
  KVM_SET_USER_MEMORY_REGION: iow(0x46, SIZEOF_KVM_USERSPACE_MEMORY_REGION),
  KVM_SET_TSS_ADDR: io(0x47),
  KVM_SET_IDENTITY_MAP_ADDR: iow(0x48, SIZEOF_U64),
  KVM_CREATE_IRQCHIP: io(0x60),
  KVM_IRQ_LINE: iow(0x61, SIZEOF_KVM_IRQ_LEVEL),
  KVM_GET_IRQCHIP: iowr(0x62, SIZEOF_KVM_IRQCHIP),
  KVM_SET_GSI_ROUTING: iow(0x6a, SIZEOF_KVM_IRQ_ROUTING),
  KVM_CREATE_PIT2: iow(0x77, SIZEOF_KVM_PIT_CONFIG),
  KVM_RUN: io(0x80),
  KVM_GET_REGS: ior(0x81, SIZEOF_KVM_REGS),
  KVM_SET_REGS: iow(0x82, SIZEOF_KVM_REGS),
  KVM_GET_SREGS: ior(0x83, SIZEOF_KVM_SREGS),
  KVM_SET_SREGS: iow(0x84, SIZEOF_KVM_SREGS),
  KVM_TRANSLATE: iowr(0x85, SIZEOF_KVM_TRANSLATION),
  KVM_GET_MSRS: iowr(0x88, SIZEOF_KVM_MSRS),
  KVM_SET_MSRS: iow(0x89, SIZEOF_KVM_MSRS),
  KVM_SET_CPUID2: iow(0x90, SIZEOF_KVM_CPUID2),
  KVM_GET_MP_STATE: ior(0x98, SIZEOF_KVM_MP_STATE),
  KVM_SET_MP_STATE: iow(0x99, SIZEOF_KVM_MP_STATE),
  KVM_SET_GUEST_DEBUG: iow(0x9b, SIZEOF_KVM_GUEST_DEBUG),
  KVM_GET_CPUID2: iowr(0x91, SIZEOF_KVM_CPUID2),
  KVM_GET_FPU: ior(0x8c, SIZEOF_KVM_FPU),
  KVM_SET_FPU: iow(0x8d, SIZEOF_KVM_FPU),
  KVM_GET_XSAVE: ior(0xa4, SIZEOF_KVM_XSAVE),
  KVM_GET_XSAVE2: ior(0xcf, SIZEOF_KVM_XSAVE),
  KVM_SET_XSAVE: iow(0xa5, SIZEOF_KVM_XSAVE),
  KVM_GET_XCRS: ior(0xa6, SIZEOF_KVM_XCRS),
  KVM_SET_XCRS: iow(0xa7, SIZEOF_KVM_XCRS),
  KVM_GET_LAPIC: ior(0x8e, SIZEOF_KVM_LAPIC_STATE),
  KVM_SET_LAPIC: iow(0x8f, SIZEOF_KVM_LAPIC_STATE),
  KVM_GET_VCPU_EVENTS: ior(0x9f, SIZEOF_KVM_VCPU_EVENTS),
  KVM_SET_VCPU_EVENTS: iow(0xa0, SIZEOF_KVM_VCPU_EVENTS),
  KVM_GET_DEBUGREGS: ior(0xa1, SIZEOF_KVM_DEBUGREGS),
  KVM_SET_DEBUGREGS: iow(0xa2, SIZEOF_KVM_DEBUGREGS),
  KVM_GET_TSC_KHZ: io(0xa3),
  KVM_SET_TSC_KHZ: io(0xa2),
  // <linux/kvm.h> really declares KVM_SET_IRQCHIP as _IOR.
  KVM_SET_IRQCHIP: ior(0x63, SIZEOF_KVM_IRQCHIP),
  KVM_GET_PIT2: ior(0x9f, SIZEOF_KVM_PIT_STATE2),
  KVM_SET_PIT2: iow(0xa0, SIZEOF_KVM_PIT_STATE2),
  KVM_GET_CLOCK: ior(0x7c, SIZEOF_KVM_CLOCK_DATA),
  KVM_SET_CLOCK: iow(0x7b, SIZEOF_KVM_CLOCK_DATA),
};

// <fcntl.h>, <sys/mman.h>, <signal.h> on x86-64 Linux.
const O_RDWR = 0o2;
const O_CLOEXEC = 0o2000000;
const PROT_READ_WRITE = 0x3;
const MAP_SHARED = 0x01;
const MAP_PRIVATE = 0x02;
const MAP_FIXED = 0x10;
const MAP_ANONYMOUS = 0x20;
const MAP_NORESERVE = 0x4000;
const MAP_FAILED = -1n;
const MADV_MERGEABLE = 12;
const MADV_HUGEPAGE = 14;
const MADV_POPULATE_WRITE = 23;
/** The addon's kick signal, SIGRTMIN + 4: both backends agree, so they can share a process. */
const KICK_SIGNAL_OFFSET = 4;
/** struct sigaction (glibc, x86-64): handler, 128-byte mask, int flags, restorer. */
const SIZEOF_SIGACTION = 152;
const RTLD_DEFAULT = 0;
/** mincore's unit. */
const PAGE_BYTES = 4096;
/** Room for the largest struct passed by pointer (kvm_cpuid2 with 256 entries is 10,248 bytes). */
const SCRATCH_BYTES = 64 * 1024;

const I32 = DataType.I32;
const U64 = DataType.U64;
const BIG = DataType.BigInt;

ffi.open({ library: LIBC, path: 'libc.so.6' });

type Load = (params: { library: string; funcName: string; retType: Ffi.DataType; paramsType: Ffi.DataType[] }) => unknown;
/**
 * ffi-rs's native `load`, without ffi.load's JS wrapper: that maps paramsType anew on each call for
 * array types (these calls pass none) and defaults freeResultMemory (set here), 0.8 µs of the 5.8 a
 * call costs on a loaded host. The binding is the very module ffi-rs loaded (ffi-rs re-exports its
 * createExternalBuffer as is); ffi.load itself if it cannot be found.
 */
function nativeLoad(): Load {
  for (const cached of Object.values(require.cache)) {
    const binding = cached?.exports as { load?: unknown; createExternalBuffer?: unknown } | undefined;
    if (binding && binding !== ffi && binding.createExternalBuffer === ffi.createExternalBuffer && typeof binding.load === 'function')
      return binding.load as Load;
  }
  return ffi.load as Load;
}
const load = nativeLoad();

/**
 * A libc function as one prepared ffi-rs call: the params object and its argument array are made
 * once and the arguments written in place (define() spreads a new params object per call). Results
 * come back bare, without `errno: true`, which builds an object and formats strerror's message on
 * every call; errno is read in place, and only where the result says there is one (`errno` below).
 */
function prepare<R>(funcName: string, retType: Ffi.DataType, paramsType: Ffi.DataType[]): (...args: unknown[]) => R {
  const paramsValue: unknown[] = paramsType.map(() => 0);
  const params = { library: LIBC, funcName, retType, paramsType, paramsValue, freeResultMemory: false };
  return (...args) => {
    for (let i = 0; i < args.length; i++) paramsValue[i] = args[i];
    return load(params) as R;
  };
}

const libc = {
  open: prepare<number>('open', I32, [DataType.String, I32]),
  close: prepare<number>('close', I32, [I32]),
  mmap: prepare<bigint>('mmap', BIG, [U64, U64, I32, I32, I32, DataType.I64]),
  munmap: prepare<number>('munmap', I32, [BIG, U64]),
  madvise: prepare<number>('madvise', I32, [BIG, U64, I32]),
  mincore: prepare<number>('mincore', I32, [BIG, U64, U64]),
  // memmove(p, p, 0) returns p: the way to turn an address into ffi-rs's pointer type.
  memmove: prepare<Ffi.JsExternal>('memmove', DataType.External, [BIG, BIG, U64]),
  pthread_self: prepare<bigint>('pthread_self', BIG, []),
  pthread_kill: prepare<number>('pthread_kill', I32, [BIG, I32]),
  __libc_current_sigrtmin: prepare<number>('__libc_current_sigrtmin', I32, []),
  __errno_location: prepare<Ffi.JsExternal>('__errno_location', DataType.External, []),
  sigaction: prepare<number>('sigaction', I32, [I32, U64, U64]),
  dlsym: prepare<bigint>('dlsym', BIG, [U64, DataType.String]),
};

/**
 * This thread's errno, read in place (its address is per thread and fixed, as this module is per
 * thread). Read right after the call that failed, with nothing between that could set it: what
 * ffi-rs runs after the call only frees (glibc's free keeps errno) and converts the result.
 */
const errnoBytes = ffi.createExternalBuffer(libc.__errno_location(), Int32Array.BYTES_PER_ELEMENT);
const errnoView = new Int32Array(errnoBytes.buffer, errnoBytes.byteOffset, 1);
const errno = (): number => errnoView[0] ?? 0;
/** A libc result as the interface wants it: the value, or -errno where libc returned -1. */
const orErrno = (r: number): number => (r < 0 ? -errno() : r);

/**
 * ioctl, on the exit path (KVM_RUN once per exit, register ioctls on some), without even the rest
 * parameter of `prepare`. The third argument is an integer or an address (user addresses fit a
 * double exactly).
 */
const ioctlParamsType = [I32, U64, U64];
const ioctlParamsFor = (paramsValue: [number, number, number]) => ({
  library: LIBC,
  funcName: 'ioctl',
  retType: I32,
  paramsType: ioctlParamsType,
  paramsValue,
  freeResultMemory: false,
});
const ioctlArgs: [number, number, number] = [-1, 0, 0];
const ioctlParams = ioctlParamsFor(ioctlArgs);
function ioctl(fd: number, request: number, arg: number): number {
  ioctlArgs[0] = fd;
  ioctlArgs[1] = request;
  ioctlArgs[2] = arg;
  return orErrno(load(ioctlParams) as number);
}
/** KVM_RUN has its own, where only the fd is written; it takes no argument (the kernel refuses one). */
const runArgs: [number, number, number] = [-1, FFI_IOCTLS.KVM_RUN, 0];
const runParams = ioctlParamsFor(runArgs);

/** A view of memory at `address` (no copy). */
function view(address: bigint, length: number): Buffer {
  return ffi.createExternalBuffer(libc.memmove(address, address, 0), length);
}

/** Anonymous memory for structs passed by pointer: one per thread, as this module is. */
const scratchAddress = libc.mmap(0, SCRATCH_BYTES, PROT_READ_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
const scratch = view(scratchAddress, SCRATCH_BYTES);

const kickSignal = libc.__libc_current_sigrtmin() + KICK_SIGNAL_OFFSET;

/**
 * The kick's signal needs a handler that does nothing (so it interrupts KVM_RUN without killing
 * the process) and no SA_RESTART. Without a compiler there is no function of ours to install:
 * getpid is async-signal-safe, ignores its argument and returns — a no-op handler from libc.
 */
function installKickHandler(): void {
  const handler = libc.dlsym(RTLD_DEFAULT, 'getpid');
  scratch.fill(0, 0, SIZEOF_SIGACTION);
  scratch.writeBigUInt64LE(handler, 0); // sa_handler; sa_mask empty; sa_flags 0: no SA_RESTART
  libc.sigaction(kickSignal, Number(scratchAddress), 0);
}
installKickHandler();

/** kvm_run's first bytes per vCPU, for the kick to set immediate_exit. */
const runViews = new Map<bigint, Uint8Array>();
const KVM_RUN_IMMEDIATE_EXIT = 1;

const ffiBackend: NativeKvm = {
  open: (path) => orErrno(libc.open(path, O_RDWR | O_CLOEXEC)),
  close: (fd) => orErrno(libc.close(fd)),
  ioctl: (fd, request, arg = 0) => ioctl(fd, request, arg),
  ioctlBuffer(fd, request, bytes) {
    // The struct goes through native scratch memory: ffi-rs cannot point into a JS array.
    scratch.set(bytes, 0);
    const r = ioctl(fd, request, Number(scratchAddress));
    bytes.set(scratch.subarray(0, bytes.length));
    return r;
  },
  setUserMemoryRegion(vmFd, slot, flags, guestPhysAddr, size, userAddr) {
    scratch.writeUInt32LE(slot, 0);
    scratch.writeUInt32LE(flags, 4);
    scratch.writeBigUInt64LE(BigInt(guestPhysAddr), 8);
    scratch.writeBigUInt64LE(BigInt(size), 16);
    scratch.writeBigUInt64LE(userAddr, 24);
    return ioctl(vmFd, FFI_IOCTLS.KVM_SET_USER_MEMORY_REGION, Number(scratchAddress));
  },
  run(vcpuFd) {
    runArgs[0] = vcpuFd;
    return orErrno(load(runParams) as number);
  },
  mmapAnonymous(size, shared = true) {
    const flags = (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_NORESERVE;
    const r = libc.mmap(0, size, PROT_READ_WRITE, flags, -1, 0);
    return r === MAP_FAILED ? -BigInt(errno()) : r;
  },
  mmapFd(fd, size) {
    const r = libc.mmap(0, size, PROT_READ_WRITE, MAP_SHARED, fd, 0);
    return r === MAP_FAILED ? -BigInt(errno()) : r;
  },
  mmapFileFixed(addr, size, fd, offset) {
    const r = libc.mmap(Number(addr), size, PROT_READ_WRITE, MAP_PRIVATE | MAP_FIXED, fd, offset);
    return r === MAP_FAILED ? -errno() : 0;
  },
  mincore(addr, size, vec) {
    // One byte per page through the scratch page, SCRATCH_BYTES pages at a time.
    const pages = Math.ceil(size / PAGE_BYTES);
    for (let done = 0; done < pages; done += SCRATCH_BYTES) {
      const n = Math.min(SCRATCH_BYTES, pages - done);
      const length = Math.min(n * PAGE_BYTES, size - done * PAGE_BYTES);
      const r = orErrno(libc.mincore(addr + BigInt(done * PAGE_BYTES), length, Number(scratchAddress)));
      if (r < 0) return r;
      vec.set(scratch.subarray(0, n), done);
    }
    return 0;
  },
  munmap(addr, size) {
    runViews.delete(addr);
    return orErrno(libc.munmap(addr, size));
  },
  madvise: (addr, size, advice) => orErrno(libc.madvise(addr, size, advice)),
  externalBuffer(addr, size) {
    const buffer = view(addr, size);
    if (buffer.byteOffset !== 0 || buffer.buffer.byteLength !== size)
      throw new Error('ffi-rs returned a view that does not start at the mapping');
    return buffer.buffer as ArrayBuffer;
  },
  threadSelf: () => libc.pthread_self(),
  kick(runAddr, thread) {
    let run = runViews.get(runAddr);
    if (!run) {
      const bytes = view(runAddr, KVM_RUN_IMMEDIATE_EXIT + 1);
      runViews.set(runAddr, (run = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)));
    }
    Atomics.store(run, KVM_RUN_IMMEDIATE_EXIT, 1);
    return -libc.pthread_kill(thread, kickSignal);
  },
  ioctls: FFI_IOCTLS,
  // The x86-64 ABI of <linux/kvm.h>, as the addon reads it with offsetof (a unit test compares them).
  layout: {
    sizeofKvmRegs: SIZEOF_KVM_REGS,
    sizeofKvmSregs: SIZEOF_KVM_SREGS,
    sizeofKvmSegment: 24,
    runImmediateExit: 1,
    runExitReason: 8,
    runIoDirection: 32,
    runIoSize: 33,
    runIoPort: 34,
    runIoCount: 36,
    runIoDataOffset: 40,
    runMmioPhysAddr: 32,
    runMmioData: 40,
    runMmioLen: 48,
    runMmioIsWrite: 52,
    runFailEntryReason: 32,
    runFailEntryCpu: 40,
    runInternalSuberror: 32,
    runInternalNdata: 36,
    runInternalData: 40,
    runHwExitReason: 32,
    regsRip: 128,
    regsRflags: 136,
    sregsCs: 0,
    sregsGdt: 192,
    sregsCr0: 224,
    sregsEfer: 264,
    sregsApicBase: 272,
    sregsInterruptBitmap: 280,
    sizeofKvmCpuidEntry2: 40,
    sizeofKvmMsrEntry: 16,
    sizeofKvmPitConfig: SIZEOF_KVM_PIT_CONFIG,
    sizeofKvmIrqLevel: SIZEOF_KVM_IRQ_LEVEL,
    sizeofKvmMpState: SIZEOF_KVM_MP_STATE,
    sizeofKvmGuestDebug: SIZEOF_KVM_GUEST_DEBUG,
    runDebugException: 32,
    runDebugPc: 40,
    runDebugDr6: 48,
    runDebugDr7: 56,
    sizeofKvmIrqRoutingEntry: 48,
    sizeofKvmMsrList: SIZEOF_KVM_MSR_LIST,
    sizeofKvmMsrs: SIZEOF_KVM_MSRS,
    sizeofKvmCpuid2: SIZEOF_KVM_CPUID2,
    sizeofKvmFpu: SIZEOF_KVM_FPU,
    sizeofKvmXsave: SIZEOF_KVM_XSAVE,
    sizeofKvmXcrs: SIZEOF_KVM_XCRS,
    sizeofKvmXcr: 16,
    xcrsFlags: 4,
    xcrsXcrs: 8,
    xcrValue: 8,
    sizeofKvmLapicState: SIZEOF_KVM_LAPIC_STATE,
    sizeofKvmVcpuEvents: SIZEOF_KVM_VCPU_EVENTS,
    eventsExceptionErrorCode: 4,
    eventsInterrupt: 8,
    eventsNmi: 12,
    eventsSipiVector: 16,
    eventsFlags: 20,
    eventsSmi: 24,
    eventsTripleFault: 28,
    eventsExceptionHasPayload: 55,
    eventsExceptionPayload: 56,
    sizeofKvmDebugregs: SIZEOF_KVM_DEBUGREGS,
    debugregsDr6: 32,
    debugregsDr7: 40,
    debugregsFlags: 48,
    sizeofKvmIrqchip: SIZEOF_KVM_IRQCHIP,
    irqchipChip: 8,
    sizeofKvmPicState: 16,
    picElcr: 14,
    sizeofKvmIoapicState: 216,
    ioapicId: 12,
    ioapicIrr: 16,
    ioapicRedirtbl: 24,
    sizeofKvmPitState2: SIZEOF_KVM_PIT_STATE2,
    sizeofKvmPitChannelState: 24,
    pitChannelLatchedCount: 4,
    pitChannelMode: 13,
    pitChannelGate: 15,
    pitChannelCountLoadTime: 16,
    pitFlags: 72,
    sizeofKvmClockData: SIZEOF_KVM_CLOCK_DATA,
    clockFlags: 8,
    clockRealtime: 16,
    clockHostTsc: 24,
  },
  kickSignal,
  madvice: { MADV_MERGEABLE, MADV_HUGEPAGE, MADV_POPULATE_WRITE },
};

export = { ffiBackend, FFI_IOCTLS };
