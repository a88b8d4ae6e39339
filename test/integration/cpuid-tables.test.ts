/**
 * Each vCPU's CPUID table is computed and encoded once per process (src/machine/vm.ts): VMs built
 * one after another in one process, with other vCPU counts and other adjustments, must each get
 * the table they asked for, as KVM_GET_CPUID2 reads it back.
 */
import { expect, it } from 'vitest';
import { Vm } from '../../dist/index.js';
import { cpuidVendor, hasCpuidFeature } from '../../dist/arch/x86/cpuid.js';
import type { CpuidEntry } from '../../dist/kvm/x86.js';
import { assertKvm, describeKvm, requireKvm } from './helpers.js';

const MIB = 1024 * 1024;
const LEAF_FEATURES = 1;
const APIC_ID_SHIFT = 24;

const apicId = (entries: CpuidEntry[]): number => entries.find((e) => e.function === LEAF_FEATURES)!.ebx >>> APIC_ID_SHIFT;

/** The CPUID tables of a new VM's vCPUs, as KVM holds them. */
function tables(cpus: number, cpuid?: { remove?: string[]; vendor?: string }): CpuidEntry[][] {
  const vm = Vm.create({ memorySize: 2 * MIB, ...(cpuid ? { cpuid } : {}) });
  try {
    return Array.from({ length: cpus }, (_, id) => vm.createVcpu(id).fd.getCpuid2());
  } finally {
    void vm.close();
  }
}

describeKvm('CPUID tables reused across VMs', () => {
  it('give each vCPU its APIC ID, and each VM its own adjustments, however they alternate', () => {
    if (requireKvm) assertKvm();
    const plain = tables(1)[0]!;
    const hostVendor = cpuidVendor(plain);
    for (let round = 0; round < 3; round++) {
      expect(tables(3).map(apicId)).toEqual([0, 1, 2]);
      const adjusted = tables(2, { remove: ['pcid', 'x2apic'], vendor: 'TskvmTestCPU' });
      for (const entries of adjusted) {
        expect(hasCpuidFeature(entries, 'pcid')).toBe(false);
        expect(hasCpuidFeature(entries, 'x2apic')).toBe(false);
        expect(cpuidVendor(entries)).toBe('TskvmTestCPU');
      }
      expect(adjusted.map(apicId)).toEqual([0, 1]);
      const again = tables(1)[0]!;
      expect(cpuidVendor(again)).toBe(hostVendor);
      expect(hasCpuidFeature(again, 'x2apic')).toBe(hasCpuidFeature(plain, 'x2apic'));
      expect(again).toEqual(plain);
    }
  });
});
