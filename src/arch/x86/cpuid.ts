/**
 * The CPUID table a vCPU gets: what KVM supports on this host (KVM_GET_SUPPORTED_CPUID), minus
 * what tskvm cannot give a guest, plus each vCPU's own APIC ID — the normalisation Firecracker
 * and QEMU do, kept to what matters for small kernels — and, when the caller asks, features taken
 * out by name and another vendor string (QEMU's `-cpu host,-x2apic,vendor=GenuineIntel`). KVM
 * honours a removed bit: it refuses the MSR, CR4 bit or instruction the guest's CPUID lacks.
 */
import type { CpuidEntry } from '../../kvm/x86.js';

export const CPUID_LEAF_VENDOR = 0x0;
export const CPUID_LEAF_FEATURES = 0x1;
export const CPUID_LEAF_THERMAL = 0x6;
export const CPUID_LEAF_PMU = 0xa;
export const CPUID_LEAF_TOPOLOGY = 0xb;
export const CPUID_LEAF_EXT_TOPOLOGY = 0x1f;
export const CPUID_LEAF_STRUCTURED = 0x7;
export const CPUID_LEAF_XSAVE = 0xd;
export const CPUID_LEAF_EXT_VENDOR = 0x80000000;
export const CPUID_LEAF_EXT_FEATURES = 0x80000001;
export const CPUID_LEAF_SVM = 0x8000000a;
/** Leaf 0xD sub-leaf 1: the XSAVE instruction variants (XSAVEOPT, XSAVEC, XGETBV1, XSAVES). */
const CPUID_XSAVE_VARIANTS_SUBLEAF = 1;
/** The vendor string is 12 ASCII bytes, in EBX, EDX, ECX of leaves 0 and 0x80000000. */
export const CPUID_VENDOR_LENGTH = 12;

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

export type CpuidRegister = 'eax' | 'ebx' | 'ecx' | 'edx';

/** One feature bit: leaf, sub-leaf (0 where the leaf has none), register and bit. */
export interface CpuidFeature {
  leaf: number;
  subleaf: number;
  register: CpuidRegister;
  bit: number;
}

const f = (leaf: number, register: CpuidRegister, bit: number, subleaf = 0): CpuidFeature => ({ leaf, subleaf, register, bit });
const L1 = CPUID_LEAF_FEATURES;
const L7 = CPUID_LEAF_STRUCTURED;
const LX = CPUID_LEAF_EXT_FEATURES;

/**
 * Feature names as QEMU's -cpu and Linux's /proc/cpuinfo spell them (QEMU's where they differ),
 * with their bits (Intel SDM vol. 2A, CPUID; AMD APM vol. 3, appendix E).
 */
export const CPUID_FEATURES: Readonly<Record<string, CpuidFeature>> = {
  // Leaf 1 EDX.
  fpu: f(L1, 'edx', 0),
  vme: f(L1, 'edx', 1),
  de: f(L1, 'edx', 2),
  pse: f(L1, 'edx', 3),
  tsc: f(L1, 'edx', 4),
  msr: f(L1, 'edx', 5),
  pae: f(L1, 'edx', 6),
  mce: f(L1, 'edx', 7),
  cx8: f(L1, 'edx', 8),
  apic: f(L1, 'edx', 9),
  sep: f(L1, 'edx', 11),
  mtrr: f(L1, 'edx', 12),
  pge: f(L1, 'edx', 13),
  mca: f(L1, 'edx', 14),
  cmov: f(L1, 'edx', 15),
  pat: f(L1, 'edx', 16),
  pse36: f(L1, 'edx', 17),
  clflush: f(L1, 'edx', 19),
  mmx: f(L1, 'edx', 23),
  fxsr: f(L1, 'edx', 24),
  sse: f(L1, 'edx', 25),
  sse2: f(L1, 'edx', 26),
  ss: f(L1, 'edx', 27),
  ht: f(L1, 'edx', 28),
  // Leaf 1 ECX.
  pni: f(L1, 'ecx', 0),
  pclmulqdq: f(L1, 'ecx', 1),
  monitor: f(L1, 'ecx', 3),
  vmx: f(L1, 'ecx', 5),
  ssse3: f(L1, 'ecx', 9),
  fma: f(L1, 'ecx', 12),
  cx16: f(L1, 'ecx', 13),
  pdcm: f(L1, 'ecx', 15),
  pcid: f(L1, 'ecx', 17),
  'sse4.1': f(L1, 'ecx', 19),
  'sse4.2': f(L1, 'ecx', 20),
  x2apic: f(L1, 'ecx', 21),
  movbe: f(L1, 'ecx', 22),
  popcnt: f(L1, 'ecx', 23),
  'tsc-deadline': f(L1, 'ecx', 24),
  aes: f(L1, 'ecx', 25),
  xsave: f(L1, 'ecx', 26),
  avx: f(L1, 'ecx', 28),
  f16c: f(L1, 'ecx', 29),
  rdrand: f(L1, 'ecx', 30),
  hypervisor: f(L1, 'ecx', 31),
  // Leaf 7 sub-leaf 0 EBX, ECX, EDX.
  fsgsbase: f(L7, 'ebx', 0),
  'tsc-adjust': f(L7, 'ebx', 1),
  bmi1: f(L7, 'ebx', 3),
  hle: f(L7, 'ebx', 4),
  avx2: f(L7, 'ebx', 5),
  smep: f(L7, 'ebx', 7),
  bmi2: f(L7, 'ebx', 8),
  erms: f(L7, 'ebx', 9),
  invpcid: f(L7, 'ebx', 10),
  rtm: f(L7, 'ebx', 11),
  mpx: f(L7, 'ebx', 14),
  avx512f: f(L7, 'ebx', 16),
  rdseed: f(L7, 'ebx', 18),
  adx: f(L7, 'ebx', 19),
  smap: f(L7, 'ebx', 20),
  clflushopt: f(L7, 'ebx', 23),
  clwb: f(L7, 'ebx', 24),
  'sha-ni': f(L7, 'ebx', 29),
  umip: f(L7, 'ecx', 2),
  pku: f(L7, 'ecx', 3),
  waitpkg: f(L7, 'ecx', 5),
  la57: f(L7, 'ecx', 16),
  rdpid: f(L7, 'ecx', 22),
  'spec-ctrl': f(L7, 'edx', 26),
  'arch-capabilities': f(L7, 'edx', 29),
  ssbd: f(L7, 'edx', 31),
  // Leaf 0xD sub-leaf 1 EAX.
  xsaveopt: f(CPUID_LEAF_XSAVE, 'eax', 0, CPUID_XSAVE_VARIANTS_SUBLEAF),
  xsavec: f(CPUID_LEAF_XSAVE, 'eax', 1, CPUID_XSAVE_VARIANTS_SUBLEAF),
  xgetbv1: f(CPUID_LEAF_XSAVE, 'eax', 2, CPUID_XSAVE_VARIANTS_SUBLEAF),
  xsaves: f(CPUID_LEAF_XSAVE, 'eax', 3, CPUID_XSAVE_VARIANTS_SUBLEAF),
  // Leaf 0x80000001 ECX, EDX.
  'lahf-lm': f(LX, 'ecx', 0),
  svm: f(LX, 'ecx', 2),
  abm: f(LX, 'ecx', 5),
  sse4a: f(LX, 'ecx', 6),
  skinit: f(LX, 'ecx', 12),
  syscall: f(LX, 'edx', 11),
  nx: f(LX, 'edx', 20),
  pdpe1gb: f(LX, 'edx', 26),
  rdtscp: f(LX, 'edx', 27),
  lm: f(LX, 'edx', 29),
  // Leaf 0x8000000A EDX: SVM's own features.
  npt: f(CPUID_LEAF_SVM, 'edx', 0),
  lbrv: f(CPUID_LEAF_SVM, 'edx', 1),
  'nrip-save': f(CPUID_LEAF_SVM, 'edx', 3),
};

/** What a caller changes in the table: features taken out (CPUID_FEATURES names) and the vendor string. */
export interface CpuidAdjustments {
  remove?: readonly string[];
  /** 12 ASCII characters, e.g. GenuineIntel or AuthenticAMD. */
  vendor?: string;
}

/** Whether a table has the feature (a leaf the table lacks has none of its features). */
export function hasCpuidFeature(entries: readonly CpuidEntry[], name: string): boolean {
  const feature = Object.hasOwn(CPUID_FEATURES, name) ? CPUID_FEATURES[name] : undefined;
  if (!feature) throw new Error(`unknown CPUID feature '${name}'`);
  const e = entries.find((x) => x.function === feature.leaf && x.index === feature.subleaf);
  return e !== undefined && ((e[feature.register] >>> feature.bit) & 1) === 1;
}

/** The vendor string of leaf 0 (EBX, EDX, ECX). */
export function cpuidVendor(entries: readonly CpuidEntry[]): string {
  const e = entries.find((x) => x.function === CPUID_LEAF_VENDOR);
  if (!e) return '';
  const bytes = Buffer.alloc(CPUID_VENDOR_LENGTH);
  bytes.writeUInt32LE(e.ebx >>> 0, 0);
  bytes.writeUInt32LE(e.edx >>> 0, 4);
  bytes.writeUInt32LE(e.ecx >>> 0, 8);
  return bytes.toString('latin1');
}

function setVendor(e: CpuidEntry, vendor: string): void {
  const bytes = Buffer.from(vendor, 'latin1');
  e.ebx = bytes.readUInt32LE(0);
  e.edx = bytes.readUInt32LE(4);
  e.ecx = bytes.readUInt32LE(8);
}

/** The table for the vCPU whose APIC ID is `apicId`. Does not modify `supported`. */
export function vcpuCpuid(supported: readonly CpuidEntry[], apicId: number, adjust: CpuidAdjustments = {}): CpuidEntry[] {
  const removed = (adjust.remove ?? []).map((name) => {
    const feature = Object.hasOwn(CPUID_FEATURES, name) ? CPUID_FEATURES[name] : undefined;
    if (!feature) throw new Error(`unknown CPUID feature '${name}'`);
    return feature;
  });
  return supported.map((leaf) => {
    const e = { ...leaf };
    for (const feature of removed) {
      if (e.function === feature.leaf && e.index === feature.subleaf)
        e[feature.register] = (e[feature.register] & ~(1 << feature.bit)) >>> 0;
    }
    if (adjust.vendor !== undefined && (e.function === CPUID_LEAF_VENDOR || e.function === CPUID_LEAF_EXT_VENDOR))
      setVendor(e, adjust.vendor);
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
