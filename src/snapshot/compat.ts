/**
 * Can this host run the machine a snapshot saved? A guest may use every CPU feature its CPUID
 * advertised, so each feature bit the snapshot's CPUID has set must be one a vCPU that tskvm
 * sets up on this host has too (the subset rule QEMU and Firecracker apply to migration and CPU
 * templates); and the host must allow as many vCPUs. Pure functions: the caller asks KVM.
 */
import type { CpuidEntry } from '../kvm/x86.js';

type Register = 'eax' | 'ebx' | 'ecx' | 'edx';

/** The CPUID registers that are feature bitmaps: leaf, sub-leaf, register, and bits that are not features. */
interface FeatureWord {
  leaf: number;
  index: number;
  register: Register;
  /** Bits KVM sets at run time from the guest's own state (CR4.OSXSAVE, CR4.PKE): not host features. */
  dynamic: number;
  names: Readonly<Record<number, string>>;
}

const CPUID_1_ECX_OSXSAVE = 1 << 27;
const CPUID_7_ECX_OSPKE = 1 << 4;

export const FEATURE_WORDS: readonly FeatureWord[] = [
  {
    leaf: 0x1,
    index: 0,
    register: 'edx',
    dynamic: 0,
    names: {
      0: 'fpu',
      4: 'tsc',
      5: 'msr',
      6: 'pae',
      8: 'cx8',
      9: 'apic',
      11: 'sep',
      12: 'mtrr',
      13: 'pge',
      15: 'cmov',
      16: 'pat',
      19: 'clflush',
      23: 'mmx',
      24: 'fxsr',
      25: 'sse',
      26: 'sse2',
    },
  },
  {
    leaf: 0x1,
    index: 0,
    register: 'ecx',
    dynamic: CPUID_1_ECX_OSXSAVE,
    names: {
      0: 'sse3',
      1: 'pclmulqdq',
      9: 'ssse3',
      12: 'fma',
      13: 'cx16',
      19: 'sse4_1',
      20: 'sse4_2',
      21: 'x2apic',
      22: 'movbe',
      23: 'popcnt',
      24: 'tsc_deadline_timer',
      25: 'aes',
      26: 'xsave',
      28: 'avx',
      29: 'f16c',
      30: 'rdrand',
    },
  },
  {
    leaf: 0x7,
    index: 0,
    register: 'ebx',
    dynamic: 0,
    names: {
      0: 'fsgsbase',
      3: 'bmi1',
      5: 'avx2',
      7: 'smep',
      8: 'bmi2',
      9: 'erms',
      10: 'invpcid',
      16: 'avx512f',
      17: 'avx512dq',
      18: 'rdseed',
      19: 'adx',
      20: 'smap',
      23: 'clflushopt',
      24: 'clwb',
      29: 'sha_ni',
      30: 'avx512bw',
      31: 'avx512vl',
    },
  },
  {
    leaf: 0x7,
    index: 0,
    register: 'ecx',
    dynamic: CPUID_7_ECX_OSPKE,
    names: {
      1: 'avx512vbmi',
      2: 'umip',
      3: 'pku',
      8: 'gfni',
      9: 'vaes',
      10: 'vpclmulqdq',
      11: 'avx512_vnni',
      14: 'avx512_vpopcntdq',
      16: 'la57',
      22: 'rdpid',
    },
  },
  {
    leaf: 0x7,
    index: 0,
    register: 'edx',
    dynamic: 0,
    names: { 4: 'fsrm', 10: 'md_clear', 22: 'amx_bf16', 24: 'amx_tile', 25: 'amx_int8', 26: 'spec_ctrl', 29: 'arch_capabilities' },
  },
  { leaf: 0x7, index: 1, register: 'eax', dynamic: 0, names: { 4: 'avx_vnni', 5: 'avx512_bf16' } },
  {
    leaf: 0xd,
    index: 0,
    register: 'eax',
    dynamic: 0,
    names: {
      0: 'xsave x87',
      1: 'xsave sse',
      2: 'xsave avx',
      5: 'xsave avx512 opmask',
      6: 'xsave avx512 zmm_hi256',
      7: 'xsave avx512 hi16_zmm',
      9: 'xsave pkru',
      17: 'xsave amx tilecfg',
      18: 'xsave amx tiledata',
    },
  },
  { leaf: 0xd, index: 1, register: 'eax', dynamic: 0, names: { 0: 'xsaveopt', 1: 'xsavec', 2: 'xgetbv1', 3: 'xsaves' } },
  { leaf: 0x80000001, index: 0, register: 'ecx', dynamic: 0, names: { 0: 'lahf_lm', 5: 'abm', 6: 'sse4a', 8: 'prefetchw' } },
  { leaf: 0x80000001, index: 0, register: 'edx', dynamic: 0, names: { 11: 'syscall', 20: 'nx', 26: 'pdpe1gb', 27: 'rdtscp', 29: 'lm' } },
];

const BITS = 32;

function findLeaf(table: readonly CpuidEntry[], leaf: number, index: number): CpuidEntry | undefined {
  // Leaves without sub-leaves report index 0 (KVM_CPUID_FLAG_SIGNIFCANT_INDEX clear): match on the function alone then.
  return table.find((e) => e.function === leaf && e.index === index) ?? (index === 0 ? table.find((e) => e.function === leaf) : undefined);
}

/** The CPUID features the snapshot's vCPU had that `host` (what tskvm gives a vCPU here) lacks, by name. */
export function missingCpuFeatures(snapshot: readonly CpuidEntry[], host: readonly CpuidEntry[]): string[] {
  const missing: string[] = [];
  for (const word of FEATURE_WORDS) {
    const saved = findLeaf(snapshot, word.leaf, word.index);
    if (!saved) continue;
    const have = findLeaf(host, word.leaf, word.index)?.[word.register] ?? 0;
    const lacking = (saved[word.register] & ~word.dynamic & ~have) >>> 0;
    for (let bit = 0; bit < BITS; bit++) {
      if ((lacking >>> bit) & 1) {
        const sub = word.index ? `.${word.index}` : '';
        missing.push(word.names[bit] ?? `CPUID 0x${word.leaf.toString(16)}${sub} ${word.register.toUpperCase()} bit ${bit}`);
      }
    }
  }
  return missing;
}

/** Why the host cannot run the snapshot's machine (each a sentence with the fix), or none. */
export function hostProblems(
  machine: { cpus: number },
  snapshotCpuid: readonly CpuidEntry[],
  host: { maxVcpus: number; cpuid?: readonly CpuidEntry[] },
): string[] {
  const problems: string[] = [];
  if (machine.cpus > host.maxVcpus) {
    problems.push(
      `it needs ${machine.cpus} vCPUs and this host allows at most ${host.maxVcpus} (KVM_CAP_MAX_VCPUS): restore it on a host that allows more`,
    );
  }
  const missing = host.cpuid ? missingCpuFeatures(snapshotCpuid, host.cpuid) : [];
  if (missing.length > 0) {
    problems.push(
      `the guest may use CPU features this host's KVM cannot give it: ${missing.join(', ')}; restore it on a host with the same CPU features (or a newer one)`,
    );
  }
  return problems;
}
