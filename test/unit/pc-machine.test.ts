/**
 * The PC machine's wiring, without KVM: GSI routing, shared ISA IRQ lines, the CPUID filter and
 * the ioctl struct layouts they use.
 */
import { describe, expect, it } from 'vitest';
import { native } from '../../src/kvm/native.js';
import {
  encodeIrqRouting,
  KVM_IRQ_ROUTING_ENTRY_SIZE,
  KVM_IRQCHIP_IOAPIC,
  KVM_IRQCHIP_PIC_MASTER,
  KVM_IRQCHIP_PIC_SLAVE,
  type CpuidEntry,
} from '../../src/kvm/x86.js';
import { SharedIrqLines } from '../../src/board/irq-lines.js';
import { CPUID_1_ECX_HYPERVISOR, CPUID_1_ECX_VMX, CPUID_1_ECX_MONITOR, vcpuCpuid } from '../../src/arch/x86/cpuid.js';
import { pcIrqRoutes } from '../../src/arch/x86/irq-routing.js';

describe('pcIrqRoutes (QEMU PC routing)', () => {
  const routes = pcIrqRoutes();
  const to = (gsi: number) => routes.filter((r) => r.gsi === gsi).map((r) => [r.irqchip, r.pin]);

  it('sends the timer (GSI 0) to PIC pin 0 and IOAPIC pin 2', () => {
    expect(to(0)).toEqual([
      [KVM_IRQCHIP_PIC_MASTER, 0],
      [KVM_IRQCHIP_IOAPIC, 2],
    ]);
  });

  it('leaves the cascade (GSI 2) unrouted and maps the rest by number', () => {
    expect(to(2)).toEqual([]);
    expect(to(4)).toEqual([
      [KVM_IRQCHIP_PIC_MASTER, 4],
      [KVM_IRQCHIP_IOAPIC, 4],
    ]);
    expect(to(11)).toEqual([
      [KVM_IRQCHIP_PIC_SLAVE, 3],
      [KVM_IRQCHIP_IOAPIC, 11],
    ]);
    expect(to(23)).toEqual([[KVM_IRQCHIP_IOAPIC, 23]]);
    expect(routes.length).toBe(15 + 23);
  });

  it('encodes struct kvm_irq_routing as the kernel lays it out', () => {
    expect(KVM_IRQ_ROUTING_ENTRY_SIZE).toBe(native().layout.sizeofKvmIrqRoutingEntry);
    const bytes = encodeIrqRouting([{ gsi: 0, irqchip: KVM_IRQCHIP_IOAPIC, pin: 2 }]);
    const view = new DataView(bytes.buffer);
    expect([
      view.getUint32(0, true),
      view.getUint32(8, true),
      view.getUint32(12, true),
      view.getUint32(24, true),
      view.getUint32(28, true),
    ]).toEqual([1, 0, 1, 2, 2]);
  });
});

describe('SharedIrqLines', () => {
  it('holds a line high while any device on it asserts it, and reports only changes', () => {
    const changes: [number, boolean][] = [];
    const lines = new SharedIrqLines((irq, level) => changes.push([irq, level]));
    const com1 = lines.connect(4);
    const com3 = lines.connect(4);
    const com2 = lines.connect(3);
    com1(true);
    com3(true);
    com1(false);
    com1(false);
    com3(false);
    com2(true);
    expect(changes).toEqual([
      [4, true],
      [4, false],
      [3, true],
    ]);
  });
});

describe('vcpuCpuid', () => {
  const host: CpuidEntry[] = [
    { function: 0, index: 0, flags: 0, eax: 0xd, ebx: 0x756e6547, ecx: 0x6c65746e, edx: 0x49656e69 },
    { function: 1, index: 0, flags: 0, eax: 0x306a9, ebx: 0x07010800, ecx: CPUID_1_ECX_VMX | CPUID_1_ECX_MONITOR | 1, edx: 0xbfebfbff },
    { function: 0xa, index: 0, flags: 0, eax: 0x7300403, ebx: 0, ecx: 0, edx: 0x603 },
  ];

  it('hides VMX and MONITOR, announces the hypervisor, zeroes the PMU and sets the APIC ID', () => {
    const [leaf0, leaf1, leafA] = vcpuCpuid(host, 3);
    expect(leaf0).toEqual(host[0]);
    expect(leaf1!.ecx & CPUID_1_ECX_VMX).toBe(0);
    expect(leaf1!.ecx & CPUID_1_ECX_MONITOR).toBe(0);
    expect(leaf1!.ecx & 1).toBe(1); // SSE3 stays
    expect((leaf1!.ecx & CPUID_1_ECX_HYPERVISOR) >>> 0).toBe(CPUID_1_ECX_HYPERVISOR >>> 0);
    expect(leaf1!.ebx >>> 24).toBe(3);
    expect(leaf1!.ebx & 0xffffff).toBe(0x010800);
    expect(leafA).toMatchObject({ eax: 0, ebx: 0, ecx: 0, edx: 0 });
    expect(host[1]!.ecx & CPUID_1_ECX_VMX).not.toBe(0); // the input is not modified
  });
});
