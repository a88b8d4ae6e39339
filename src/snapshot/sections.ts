/**
 * A machine snapshot in memory (vCPUs, VM, devices) and its sections in the file: one section
 * per kernel struct, named `vcpu<N>.<piece>` and `vm.<piece>`, plus `devices` (JSON). Decoding
 * checks each section's size against the struct it must hold.
 */
import { KVM_REGS_SIZE, KVM_SREGS_SIZE } from '../kvm/structs.js';
import {
  KVM_CLOCK_DATA_SIZE,
  KVM_DEBUGREGS_SIZE,
  KVM_FPU_SIZE,
  KVM_IRQCHIP_SIZE,
  KVM_LAPIC_STATE_SIZE,
  KVM_PIT_STATE2_SIZE,
  KVM_VCPU_EVENTS_SIZE,
  KVM_XCRS_SIZE,
  KVM_XSAVE_SIZE,
} from '../kvm/state.js';
import { decodeCpuid2, decodeMsrs, encodeCpuid2, encodeMsrs } from '../kvm/x86.js';
import { SnapshotFormatError, type SnapshotHeader, type SnapshotMachine } from './format.js';
import type { VcpuSnapshot, VmSnapshot } from './machine-state.js';

/** Everything a snapshot holds but guest memory. */
export interface MachineSnapshot {
  machine: SnapshotMachine;
  vcpus: VcpuSnapshot[];
  vm: VmSnapshot;
  /** The board's device state (board-state.ts's BoardState), JSON-able. */
  devices: Record<string, unknown>;
}

export const DEVICES_SECTION = 'devices';
const MSRS_HEADER = 8;
const MSR_ENTRY_SIZE = 16;
const CPUID2_HEADER = 8;
const CPUID_ENTRY_SIZE = 40;

export function vcpuSection(id: number, piece: string): string {
  return `vcpu${id}.${piece}`;
}

/** The sections that hold `snapshot`, in file order. */
export function encodeSections(snapshot: MachineSnapshot): { name: string; bytes: Uint8Array }[] {
  const out: { name: string; bytes: Uint8Array }[] = [];
  const add = (name: string, bytes: Uint8Array | undefined): void => {
    if (bytes) out.push({ name, bytes });
  };
  for (const v of snapshot.vcpus) {
    add(vcpuSection(v.id, 'cpuid'), encodeCpuid2(v.cpuid));
    add(vcpuSection(v.id, 'regs'), v.regs);
    add(vcpuSection(v.id, 'sregs'), v.sregs);
    add(vcpuSection(v.id, v.fpu.kind), v.fpu.bytes);
    add(vcpuSection(v.id, 'xcrs'), v.xcrs);
    add(vcpuSection(v.id, 'msrs'), encodeMsrs(v.msrs));
    add(vcpuSection(v.id, 'lapic'), v.lapic);
    add(vcpuSection(v.id, 'events'), v.events);
    add(vcpuSection(v.id, 'debugregs'), v.debugRegs);
  }
  add('vm.pic-master', snapshot.vm.irqchip?.picMaster);
  add('vm.pic-slave', snapshot.vm.irqchip?.picSlave);
  add('vm.ioapic', snapshot.vm.irqchip?.ioapic);
  add('vm.pit', snapshot.vm.pit);
  add('vm.clock', snapshot.vm.clock);
  add(DEVICES_SECTION, new TextEncoder().encode(JSON.stringify(snapshot.devices)));
  return out;
}

/** What reading sections needs of an opened file. */
export interface SectionSource {
  readonly header: SnapshotHeader;
  section(name: string): Uint8Array;
  has(name: string): boolean;
}

/** The machine snapshot from a checked file's sections. Throws SnapshotFormatError on a section of the wrong size. */
export function decodeSections(file: SectionSource): MachineSnapshot {
  const { header } = file;
  const sized = (name: string, size: number, exact = true): Uint8Array => {
    if (!file.has(name)) throw new SnapshotFormatError(`it is corrupt: it has no "${name}" section`);
    const bytes = file.section(name);
    if (exact ? bytes.length !== size : bytes.length < size)
      throw new SnapshotFormatError(`it is corrupt: section "${name}" is ${bytes.length} bytes, not ${size}`);
    return bytes;
  };
  const optional = (name: string, size: number): Uint8Array | undefined => (file.has(name) ? sized(name, size) : undefined);
  const irqchip = header.machine.irqchip;
  const vcpus = header.vcpus.map((entry): VcpuSnapshot => {
    const id = entry.id;
    const msrs = file.section(vcpuSection(id, 'msrs'));
    const msrCount = (msrs.length - MSRS_HEADER) / MSR_ENTRY_SIZE;
    if (!Number.isInteger(msrCount) || msrCount < 0 || new DataView(msrs.buffer, msrs.byteOffset).getUint32(0, true) !== msrCount) {
      throw new SnapshotFormatError(`it is corrupt: section "${vcpuSection(id, 'msrs')}" is not a struct kvm_msrs`);
    }
    const cpuid = file.section(vcpuSection(id, 'cpuid'));
    const cpuidCount = (cpuid.length - CPUID2_HEADER) / CPUID_ENTRY_SIZE;
    if (!Number.isInteger(cpuidCount) || cpuidCount < 0 || new DataView(cpuid.buffer, cpuid.byteOffset).getUint32(0, true) !== cpuidCount) {
      throw new SnapshotFormatError(`it is corrupt: section "${vcpuSection(id, 'cpuid')}" is not a struct kvm_cpuid2`);
    }
    const xsave = file.has(vcpuSection(id, 'xsave'));
    return {
      id,
      mpState: entry.mpState,
      tscKhz: entry.tscKhz,
      cpuid: decodeCpuid2(cpuid),
      regs: sized(vcpuSection(id, 'regs'), KVM_REGS_SIZE),
      sregs: sized(vcpuSection(id, 'sregs'), KVM_SREGS_SIZE),
      fpu: xsave
        ? { kind: 'xsave', bytes: sized(vcpuSection(id, 'xsave'), KVM_XSAVE_SIZE, false) }
        : { kind: 'fpu', bytes: sized(vcpuSection(id, 'fpu'), KVM_FPU_SIZE) },
      xcrs: optional(vcpuSection(id, 'xcrs'), KVM_XCRS_SIZE),
      msrs: decodeMsrs(msrs, msrCount),
      lapic: irqchip ? sized(vcpuSection(id, 'lapic'), KVM_LAPIC_STATE_SIZE) : undefined,
      events: sized(vcpuSection(id, 'events'), KVM_VCPU_EVENTS_SIZE),
      debugRegs: sized(vcpuSection(id, 'debugregs'), KVM_DEBUGREGS_SIZE),
    };
  });
  const vm: VmSnapshot = {
    irqchip: irqchip
      ? {
          picMaster: sized('vm.pic-master', KVM_IRQCHIP_SIZE),
          picSlave: sized('vm.pic-slave', KVM_IRQCHIP_SIZE),
          ioapic: sized('vm.ioapic', KVM_IRQCHIP_SIZE),
        }
      : undefined,
    pit: irqchip ? sized('vm.pit', KVM_PIT_STATE2_SIZE) : undefined,
    clock: sized('vm.clock', KVM_CLOCK_DATA_SIZE),
  };
  let devices: unknown;
  try {
    devices = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(file.section(DEVICES_SECTION)));
  } catch (err) {
    throw new SnapshotFormatError(`it is corrupt: the devices section is not JSON (${(err as Error).message})`);
  }
  if (typeof devices !== 'object' || devices === null || Array.isArray(devices))
    throw new SnapshotFormatError('it is corrupt: the devices section is not an object');
  return { machine: header.machine, vcpus, vm, devices: devices as Record<string, unknown> };
}
