/** Constants from <linux/kvm.h> that the TypeScript side needs by name. */

/** The only stable KVM API version; KVM_GET_API_VERSION must return it. */
export const KVM_API_VERSION = 12;

/** The x86 page: KVM memory slots, guest RAM and every page-granular table are whole pages of it. */
export const PAGE_SIZE = 4096;

// Exit reasons (kvm_run.exit_reason).
export const KVM_EXIT_UNKNOWN = 0;
export const KVM_EXIT_EXCEPTION = 1;
export const KVM_EXIT_IO = 2;
export const KVM_EXIT_HYPERCALL = 3;
export const KVM_EXIT_DEBUG = 4;
export const KVM_EXIT_HLT = 5;
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_IRQ_WINDOW_OPEN = 7;
export const KVM_EXIT_SHUTDOWN = 8;
export const KVM_EXIT_FAIL_ENTRY = 9;
export const KVM_EXIT_INTR = 10;
export const KVM_EXIT_SET_TPR = 11;
export const KVM_EXIT_TPR_ACCESS = 12;
export const KVM_EXIT_NMI = 16;
export const KVM_EXIT_INTERNAL_ERROR = 17;
export const KVM_EXIT_SYSTEM_EVENT = 24;

export const KVM_EXIT_NAMES: Readonly<Record<number, string>> = {
  [KVM_EXIT_UNKNOWN]: 'KVM_EXIT_UNKNOWN',
  [KVM_EXIT_EXCEPTION]: 'KVM_EXIT_EXCEPTION',
  [KVM_EXIT_IO]: 'KVM_EXIT_IO',
  [KVM_EXIT_HYPERCALL]: 'KVM_EXIT_HYPERCALL',
  [KVM_EXIT_DEBUG]: 'KVM_EXIT_DEBUG',
  [KVM_EXIT_HLT]: 'KVM_EXIT_HLT',
  [KVM_EXIT_MMIO]: 'KVM_EXIT_MMIO',
  [KVM_EXIT_IRQ_WINDOW_OPEN]: 'KVM_EXIT_IRQ_WINDOW_OPEN',
  [KVM_EXIT_SHUTDOWN]: 'KVM_EXIT_SHUTDOWN',
  [KVM_EXIT_FAIL_ENTRY]: 'KVM_EXIT_FAIL_ENTRY',
  [KVM_EXIT_INTR]: 'KVM_EXIT_INTR',
  [KVM_EXIT_SET_TPR]: 'KVM_EXIT_SET_TPR',
  [KVM_EXIT_TPR_ACCESS]: 'KVM_EXIT_TPR_ACCESS',
  [KVM_EXIT_NMI]: 'KVM_EXIT_NMI',
  [KVM_EXIT_INTERNAL_ERROR]: 'KVM_EXIT_INTERNAL_ERROR',
  [KVM_EXIT_SYSTEM_EVENT]: 'KVM_EXIT_SYSTEM_EVENT',
};

// kvm_run.io.direction
export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;

// kvm_run.internal.suberror
export const KVM_INTERNAL_ERROR_EMULATION = 1;
export const KVM_INTERNAL_ERROR_SIMUL_EX = 2;
export const KVM_INTERNAL_ERROR_DELIVERY_EV = 3;
export const KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON = 4;

export const KVM_INTERNAL_ERROR_NAMES: Readonly<Record<number, string>> = {
  [KVM_INTERNAL_ERROR_EMULATION]: 'instruction emulation failed',
  [KVM_INTERNAL_ERROR_SIMUL_EX]: 'exception raised while delivering an exception',
  [KVM_INTERNAL_ERROR_DELIVERY_EV]: 'event delivery failed',
  [KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON]: 'unexpected hardware exit reason',
};

// Capabilities (KVM_CHECK_EXTENSION) tskvm relies on.
export const KVM_CAP_USER_MEMORY = 3;
export const KVM_CAP_SET_TSS_ADDR = 4;
export const KVM_CAP_NR_VCPUS = 9;
export const KVM_CAP_MAX_VCPUS = 66;
export const KVM_CAP_IMMEDIATE_EXIT = 136;
export const KVM_CAP_IRQCHIP = 0;
export const KVM_CAP_EXT_CPUID = 7;
export const KVM_CAP_MP_STATE = 14;
export const KVM_CAP_SET_GUEST_DEBUG = 23;
export const KVM_CAP_IRQ_ROUTING = 25;
export const KVM_CAP_PIT2 = 33;
export const KVM_CAP_SET_IDENTITY_MAP_ADDR = 37;
// Capabilities snapshots use: the state ioctls, and the size of the XSAVE area.
export const KVM_CAP_PIT_STATE2 = 35;
export const KVM_CAP_ADJUST_CLOCK = 39;
export const KVM_CAP_VCPU_EVENTS = 41;
export const KVM_CAP_DEBUGREGS = 50;
export const KVM_CAP_XSAVE = 55;
export const KVM_CAP_XCRS = 56;
export const KVM_CAP_TSC_CONTROL = 60;
export const KVM_CAP_GET_TSC_KHZ = 61;
/** Its KVM_CHECK_EXTENSION answer on a VM fd is the size KVM_GET_XSAVE2 needs (0: only KVM_GET_XSAVE). */
export const KVM_CAP_XSAVE2 = 208;

/**
 * Where KVM keeps the three pages it needs for real-mode emulation on Intel (the TSS for
 * vm86-style entry): just below the BIOS at 4 GiB, where QEMU and kvmtool put it.
 */
export const KVM_TSS_ADDRESS = 0xfffbd000;
/** The EPT identity-map page for real mode on Intel, just above the TSS pages (QEMU's choice). */
export const KVM_IDENTITY_MAP_ADDRESS = 0xfeffc000;

// errno values the KVM layer tells apart.
export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const ENODEV = 19;
export const EINVAL = 22;
export const ENXIO = 6;
export const E2BIG = 7;
