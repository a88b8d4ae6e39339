/**
 * The KVM capabilities tskvm uses (KVM_CHECK_EXTENSION): one table for Kvm.open, which refuses a
 * host without the required ones, and for `tskvm doctor`, which reports them all.
 */
import {
  KVM_CAP_EXT_CPUID,
  KVM_CAP_IMMEDIATE_EXIT,
  KVM_CAP_IRQCHIP,
  KVM_CAP_IRQ_ROUTING,
  KVM_CAP_MAX_VCPUS,
  KVM_CAP_MP_STATE,
  KVM_CAP_NR_VCPUS,
  KVM_CAP_PIT2,
  KVM_CAP_SET_GUEST_DEBUG,
  KVM_CAP_SET_IDENTITY_MAP_ADDR,
  KVM_CAP_SET_TSS_ADDR,
  KVM_CAP_USER_MEMORY,
} from './constants.js';

/** A KVM capability tskvm uses: required ones it cannot run without; optional ones cost a feature. */
export interface CapabilitySpec {
  readonly name: string;
  readonly number: number;
  readonly required: boolean;
  readonly neededFor: string;
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
];
