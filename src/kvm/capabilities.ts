/**
 * The KVM capabilities tskvm uses (KVM_CHECK_EXTENSION): one table for Kvm.open, which refuses a
 * host without the required ones, for `tskvm doctor`, which reports them all, and for snapshots
 * (src/snapshot/machine-state.ts), which refuse to save or restore without theirs.
 */
import {
  KVM_CAP_ADJUST_CLOCK,
  KVM_CAP_DEBUGREGS,
  KVM_CAP_EXT_CPUID,
  KVM_CAP_IMMEDIATE_EXIT,
  KVM_CAP_IRQCHIP,
  KVM_CAP_IRQ_ROUTING,
  KVM_CAP_MAX_VCPUS,
  KVM_CAP_MP_STATE,
  KVM_CAP_NR_VCPUS,
  KVM_CAP_PIT2,
  KVM_CAP_PIT_STATE2,
  KVM_CAP_SET_GUEST_DEBUG,
  KVM_CAP_SET_IDENTITY_MAP_ADDR,
  KVM_CAP_SET_TSS_ADDR,
  KVM_CAP_TSC_CONTROL,
  KVM_CAP_USER_MEMORY,
  KVM_CAP_VCPU_EVENTS,
  KVM_CAP_XCRS,
  KVM_CAP_XSAVE,
  KVM_CAP_XSAVE2,
} from './constants.js';

/** A KVM capability tskvm uses: required ones it cannot run without; optional ones cost a feature. */
export interface CapabilitySpec {
  readonly name: string;
  readonly number: number;
  readonly required: boolean;
  readonly neededFor: string;
  /** A feature that cannot work without it, though tskvm runs without it (doctor warns; the feature refuses). */
  readonly requiredFor?: 'snapshots';
}

export const CAPABILITIES: readonly CapabilitySpec[] = [
  { name: 'KVM_CAP_USER_MEMORY', number: KVM_CAP_USER_MEMORY, required: true, neededFor: 'guest RAM (KVM_SET_USER_MEMORY_REGION)' },
  { name: 'KVM_CAP_SET_TSS_ADDR', number: KVM_CAP_SET_TSS_ADDR, required: true, neededFor: 'real mode on Intel (KVM_SET_TSS_ADDR)' },
  {
    name: 'KVM_CAP_SET_IDENTITY_MAP_ADDR',
    number: KVM_CAP_SET_IDENTITY_MAP_ADDR,
    required: true,
    neededFor: 'real mode on Intel without unrestricted guest (KVM_SET_IDENTITY_MAP_ADDR)',
  },
  { name: 'KVM_CAP_IMMEDIATE_EXIT', number: KVM_CAP_IMMEDIATE_EXIT, required: true, neededFor: 'stopping vCPUs (timeouts, signals, SMP)' },
  { name: 'KVM_CAP_IRQCHIP', number: KVM_CAP_IRQCHIP, required: true, neededFor: 'in-kernel PIC/IOAPIC/LAPIC (KVM_CREATE_IRQCHIP)' },
  { name: 'KVM_CAP_PIT2', number: KVM_CAP_PIT2, required: true, neededFor: 'the in-kernel 8254 PIT (KVM_CREATE_PIT2)' },
  { name: 'KVM_CAP_IRQ_ROUTING', number: KVM_CAP_IRQ_ROUTING, required: true, neededFor: 'GSI routing (KVM_SET_GSI_ROUTING)' },
  {
    name: 'KVM_CAP_EXT_CPUID',
    number: KVM_CAP_EXT_CPUID,
    required: true,
    neededFor: "the guest's CPUID (KVM_GET_SUPPORTED_CPUID, KVM_SET_CPUID2)",
  },
  { name: 'KVM_CAP_MP_STATE', number: KVM_CAP_MP_STATE, required: true, neededFor: 'halt detection and SMP start-up (KVM_GET_MP_STATE)' },
  {
    name: 'KVM_CAP_SET_GUEST_DEBUG',
    number: KVM_CAP_SET_GUEST_DEBUG,
    required: false,
    neededFor: '--step and --gdb (KVM_SET_GUEST_DEBUG)',
  },
  { name: 'KVM_CAP_MAX_VCPUS', number: KVM_CAP_MAX_VCPUS, required: false, neededFor: '--cpus: the vCPU limit (else KVM_CAP_NR_VCPUS)' },
  {
    name: 'KVM_CAP_NR_VCPUS',
    number: KVM_CAP_NR_VCPUS,
    required: false,
    neededFor: "--cpus: the recommended vCPU count (older kernels' limit)",
  },
  // Snapshots: the vCPU and VM state that KVM_GET_REGS/SREGS/MSRS/LAPIC/IRQCHIP do not cover.
  snapshots(
    'KVM_CAP_VCPU_EVENTS',
    KVM_CAP_VCPU_EVENTS,
    'an exception or interrupt being delivered, NMI and SMM state (KVM_GET_VCPU_EVENTS)',
  ),
  snapshots('KVM_CAP_DEBUGREGS', KVM_CAP_DEBUGREGS, 'the debug registers (KVM_GET_DEBUGREGS)'),
  snapshots('KVM_CAP_PIT_STATE2', KVM_CAP_PIT_STATE2, "the in-kernel PIT's channels (KVM_GET_PIT2)"),
  snapshots('KVM_CAP_ADJUST_CLOCK', KVM_CAP_ADJUST_CLOCK, 'kvmclock (KVM_GET_CLOCK)'),
  { name: 'KVM_CAP_XSAVE', number: KVM_CAP_XSAVE, required: false, neededFor: 'snapshots of AVX state (KVM_GET_XSAVE; else x87/SSE only)' },
  { name: 'KVM_CAP_XSAVE2', number: KVM_CAP_XSAVE2, required: false, neededFor: 'snapshots of XSAVE areas over 4 KiB (AMX)' },
  { name: 'KVM_CAP_XCRS', number: KVM_CAP_XCRS, required: false, neededFor: 'snapshots of XCR0 (KVM_GET_XCRS)' },
  {
    name: 'KVM_CAP_TSC_CONTROL',
    number: KVM_CAP_TSC_CONTROL,
    required: false,
    neededFor: "snapshots restored at their guest's TSC frequency on a host whose TSC runs at another (KVM_SET_TSC_KHZ)",
  },
];

function snapshots(name: string, number: number, what: string): CapabilitySpec {
  return { name, number, required: false, requiredFor: 'snapshots', neededFor: `snapshots: ${what}` };
}
