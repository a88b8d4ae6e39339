/**
 * The CPUID table a vCPU gets: what KVM supports on this host (KVM_GET_SUPPORTED_CPUID), minus
 * what tskvm cannot give a guest, plus each vCPU's own APIC ID — the normalisation Firecracker
 * and QEMU do, kept to what matters for small kernels.
 */
import type { CpuidEntry } from '../../kvm/x86.js';

export const CPUID_LEAF_FEATURES = 0x1;
export const CPUID_LEAF_THERMAL = 0x6;
export const CPUID_LEAF_PMU = 0xa;
export const CPUID_LEAF_TOPOLOGY = 0xb;
export const CPUID_LEAF_EXT_TOPOLOGY = 0x1f;

// Leaf 1 ECX.
export const CPUID_1_ECX_MONITOR = 1 << 3; // MONITOR/MWAIT: halting is done with HLT here
export const CPUID_1_ECX_DS_CPL = 1 << 4;
export const CPUID_1_ECX_VMX = 1 << 5; // no nested virtualisation
export const CPUID_1_ECX_SMX = 1 << 6;
export const CPUID_1_ECX_EST = 1 << 7; // no frequency control
export const CPUID_1_ECX_TM2 = 1 << 8;
export const CPUID_1_ECX_PDCM = 1 << 15; // no perf capabilities MSR
export const CPUID_1_ECX_HYPERVISOR = 1 << 31; // tell the guest it runs under a hypervisor
// Leaf 1 EDX.
export const CPUID_1_EDX_DS = 1 << 21; // debug store
export const CPUID_1_EDX_ACPI = 1 << 22; // thermal monitor MSRs
export const CPUID_1_EDX_TM = 1 << 29;
export const CPUID_1_EDX_PBE = 1 << 31;
// Leaf 1 EBX.
const CPUID_1_EBX_APIC_ID_SHIFT = 24;
const CPUID_1_EBX_APIC_ID_MASK = 0xff << CPUID_1_EBX_APIC_ID_SHIFT;

const LEAF1_ECX_REMOVED =
  CPUID_1_ECX_MONITOR | CPUID_1_ECX_DS_CPL | CPUID_1_ECX_VMX | CPUID_1_ECX_SMX | CPUID_1_ECX_EST | CPUID_1_ECX_TM2 | CPUID_1_ECX_PDCM;
const LEAF1_EDX_REMOVED = CPUID_1_EDX_DS | CPUID_1_EDX_ACPI | CPUID_1_EDX_TM | CPUID_1_EDX_PBE;

/** The table for the vCPU whose APIC ID is `apicId`. Does not modify `supported`. */
export function vcpuCpuid(supported: readonly CpuidEntry[], apicId: number): CpuidEntry[] {
  return supported.map((leaf) => {
    const e = { ...leaf };
    switch (e.function) {
      case CPUID_LEAF_FEATURES:
        e.ecx = ((e.ecx & ~LEAF1_ECX_REMOVED) | CPUID_1_ECX_HYPERVISOR) >>> 0;
        e.edx = (e.edx & ~LEAF1_EDX_REMOVED) >>> 0;
        e.ebx = ((e.ebx & ~CPUID_1_EBX_APIC_ID_MASK) | (apicId << CPUID_1_EBX_APIC_ID_SHIFT)) >>> 0;
        break;
      case CPUID_LEAF_THERMAL: // no thermal or power management
      case CPUID_LEAF_PMU: // no virtual PMU is set up
        e.eax = e.ebx = e.ecx = e.edx = 0;
        break;
      case CPUID_LEAF_TOPOLOGY:
      case CPUID_LEAF_EXT_TOPOLOGY:
        e.edx = apicId >>> 0; // x2APIC ID of this vCPU
        break;
    }
    return e;
  });
}
