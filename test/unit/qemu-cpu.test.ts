/**
 * -cpu in tskvm's terms, and the CPUID changes behind it: -feature takes a bit out of every
 * vCPU's CPUID (KVM then refuses what the bit stands for), vendor= rewrites the vendor string,
 * +feature is only checked against the host, a named model is the host with a warning.
 */
import { describe, expect, it } from 'vitest';
import {
  CPUID_FEATURES,
  CPUID_LEAF_EXT_FEATURES,
  CPUID_LEAF_EXT_VENDOR,
  CPUID_LEAF_FEATURES,
  CPUID_LEAF_STRUCTURED,
  CPUID_LEAF_VENDOR,
  cpuidVendor,
  hasCpuidFeature,
  vcpuCpuid,
} from '../../src/arch/x86/cpuid.js';
import { UsageError } from '../../src/errors.js';
import type { CpuidEntry } from '../../src/kvm/x86.js';
import { validateRunOptions } from '../../src/machine/options.js';
import { featureLocation, parseCpuOption } from '../../src/qemu/cpu.js';

const entry = (fn: number, regs: Partial<CpuidEntry> = {}): CpuidEntry => ({
  function: fn,
  index: 0,
  flags: 0,
  eax: 0,
  ebx: 0,
  ecx: 0,
  edx: 0,
  ...regs,
});
const bits = (...names: string[]): number => names.reduce((acc, n) => acc | (1 << CPUID_FEATURES[n]!.bit), 0) >>> 0;

/** An AMD-like host: vendor AuthenticAMD, x2apic/tsc-deadline/pcid/xsave in leaf 1, invpcid/smap in 7, rdtscp in 0x80000001. */
const HOST: CpuidEntry[] = [
  entry(CPUID_LEAF_VENDOR, { eax: 0x10, ebx: 0x68747541, edx: 0x69746e65, ecx: 0x444d4163 }),
  entry(CPUID_LEAF_FEATURES, { ecx: bits('x2apic', 'tsc-deadline', 'pcid', 'xsave', 'pni'), edx: bits('fpu', 'apic') }),
  entry(CPUID_LEAF_STRUCTURED, { ebx: bits('invpcid', 'smap', 'smep'), ecx: bits('umip', 'pku') }),
  entry(CPUID_LEAF_EXT_VENDOR, { eax: 0x80000008, ebx: 0x68747541, edx: 0x69746e65, ecx: 0x444d4163 }),
  entry(CPUID_LEAF_EXT_FEATURES, { edx: bits('rdtscp', 'nx', 'lm') }),
];

function refused(spec: string, message: RegExp): void {
  let err: unknown;
  try {
    parseCpuOption(spec);
  } catch (e) {
    err = e;
  }
  expect(err, `expected -cpu ${spec} to be refused`).toBeInstanceOf(UsageError);
  expect((err as Error).message).toMatch(message);
}

describe('parseCpuOption', () => {
  it('takes host and max as they are', () => {
    expect(parseCpuOption('host')).toEqual({ model: 'host', remove: [], require: [], enforce: false, warnings: [] });
    expect(parseCpuOption('max,host-phys-bits,migratable=no').warnings).toEqual([]);
  });

  it('takes a named model as host, with a warning', () => {
    const c = parseCpuOption('qemu64,+x2apic,+tsc-deadline');
    expect(c.model).toBe('qemu64');
    expect(c.require).toEqual(['x2apic', 'tsc-deadline']);
    expect(c.warnings).toEqual([expect.stringMatching(/^-cpu qemu64: tskvm gives the guest this host's CPU, as with -cpu host/)]);
    expect(parseCpuOption('Opteron_G1,vendor=AuthenticAMD')).toMatchObject({ vendor: 'AuthenticAMD', remove: [] });
  });

  it("reads +feat, -feat, feat=on|off, bare feat, QEMU's underscores and aliases", () => {
    expect(parseCpuOption('qemu64,-x2apic,+tsc-deadline')).toMatchObject({ remove: ['x2apic'], require: ['tsc-deadline'] });
    expect(parseCpuOption('max,+svm,-rdtscp,-xsave,-invpcid,-skinit')).toMatchObject({
      remove: ['rdtscp', 'xsave', 'invpcid', 'skinit'],
      require: ['svm'],
    });
    expect(parseCpuOption('host,pcid=off,umip=on,x2apic')).toMatchObject({ remove: ['pcid'], require: ['umip', 'x2apic'] });
    expect(parseCpuOption('host,-tsc_deadline,-sse4_2,-sse3')).toMatchObject({ remove: ['tsc-deadline', 'sse4.2', 'pni'] });
    // As QEMU: -feat wins over +feat.
    expect(parseCpuOption('host,-pcid,+pcid')).toMatchObject({ remove: ['pcid'], require: [] });
  });

  it('treats VMX capabilities as gone already (tskvm gives no VMX), but +vmx-x needs VMX', () => {
    expect(parseCpuOption('max,host-phys-bits,+vmx,-vmx-mbec')).toMatchObject({ remove: [], require: ['vmx'] });
    expect(parseCpuOption('max,+vmx-mbec').require).toEqual(['vmx']);
  });

  it('takes enforce, and warns about what tskvm gives anyway', () => {
    expect(parseCpuOption('host,enforce').enforce).toBe(true);
    expect(parseCpuOption('host,pmu=on').warnings).toEqual([expect.stringMatching(/no virtual PMU/)]);
    expect(parseCpuOption('host,host-phys-bits=off').warnings).toEqual([expect.stringMatching(/host's physical address width anyway/)]);
  });

  it('refuses what it cannot give, naming -cpu and the part', () => {
    refused(
      'IvyBridge,phys-bits=36,host-phys-bits=off',
      /^-cpu IvyBridge,phys-bits=36,host-phys-bits=off is not supported by tskvm \(phys-bits=36: tskvm gives the guest the host's physical address width/,
    );
    refused(
      'host,hv_passthrough',
      /^-cpu host,hv_passthrough is not supported by tskvm \(hv-passthrough: tskvm offers the guest no Hyper-V enlightenments/,
    );
    refused('host,hv-vpindex', /no Hyper-V enlightenments/);
    refused(
      'host,-frob',
      /^-cpu host,-frob is not supported by tskvm \('frob' is not a CPUID feature tskvm knows \('-cpu help' lists them\)\)/,
    );
    refused('host,vendor=Intel', /vendor=Intel: a vendor string is 12 characters/);
    refused('host,model-id=Foo', /model-id: tskvm gives the guest the host's CPUID as it is/);
    refused('host,x2apic=maybe', /x2apic=maybe: use x2apic=on or x2apic=off/);
    refused('', /'' is not a CPU model: use host or max/);
  });

  it("names a feature's place as QEMU's warnings do", () => {
    expect(featureLocation('vmx')).toBe('CPUID.01H:ECX.vmx [bit 5]');
    expect(featureLocation('invpcid')).toBe('CPUID.07H:EBX.invpcid [bit 10]');
    expect(featureLocation('svm')).toBe('CPUID.80000001H:ECX.svm [bit 2]');
    expect(featureLocation('xsaves')).toBe('CPUID.0DH_01H:EAX.xsaves [bit 3]');
  });
});

describe('vcpuCpuid with adjustments', () => {
  it('takes the named features out, and leaves the rest and the host table alone', () => {
    const before = structuredClone(HOST);
    const guest = vcpuCpuid(HOST, 1, { remove: ['x2apic', 'pcid', 'invpcid', 'rdtscp', 'pku'] });
    for (const name of ['x2apic', 'pcid', 'invpcid', 'rdtscp', 'pku']) expect(hasCpuidFeature(guest, name), name).toBe(false);
    for (const name of ['tsc-deadline', 'xsave', 'smap', 'smep', 'umip', 'nx', 'lm', 'fpu', 'apic'])
      expect(hasCpuidFeature(guest, name), name).toBe(true);
    expect(HOST).toEqual(before);
    // The ordinary filtering still happens: the hypervisor bit, the APIC ID.
    expect(hasCpuidFeature(guest, 'hypervisor')).toBe(true);
    expect(guest.find((e) => e.function === CPUID_LEAF_FEATURES)!.ebx >>> 24).toBe(1);
  });

  it('sets the vendor string in leaves 0 and 0x80000000, keeping their EAX', () => {
    expect(cpuidVendor(HOST)).toBe('AuthenticAMD');
    const guest = vcpuCpuid(HOST, 0, { vendor: 'GenuineIntel' });
    expect(cpuidVendor(guest)).toBe('GenuineIntel');
    const ext = guest.find((e) => e.function === CPUID_LEAF_EXT_VENDOR)!;
    expect([ext.eax, ext.ebx, ext.edx, ext.ecx]).toEqual([0x80000008, 0x756e6547, 0x49656e69, 0x6c65746e]);
    expect(guest.find((e) => e.function === CPUID_LEAF_VENDOR)!.eax).toBe(0x10);
  });

  it('is the plain table without adjustments', () => {
    expect(vcpuCpuid(HOST, 0, {})).toEqual(vcpuCpuid(HOST, 0));
  });
});

describe('options.cpuid', () => {
  it('is checked with the other run options', () => {
    expect(validateRunOptions({ image: 'g.bin' }).cpuid).toEqual({});
    expect(validateRunOptions({ image: 'g.bin', cpuid: { remove: ['x2apic'], vendor: 'GenuineIntel' } }).cpuid).toEqual({
      remove: ['x2apic'],
      vendor: 'GenuineIntel',
    });
    expect(() => validateRunOptions({ image: 'g.bin', cpuid: { remove: ['frob'] } })).toThrow(
      /invalid options\.cpuid\.remove: the string 'frob' is not a CPUID feature tskvm knows/,
    );
    expect(() => validateRunOptions({ image: 'g.bin', cpuid: { vendor: 'Intel' } })).toThrow(
      /invalid options\.cpuid\.vendor the string 'Intel': give 12 ASCII characters/,
    );
    expect(() => validateRunOptions({ image: 'g.bin', cpuid: 'x2apic' })).toThrow(/invalid options\.cpuid: give \{ remove\?, vendor\? \}/);
  });
});
