/**
 * A machine's KVM state — every vCPU's and the VM's — read out of KVM and put back, as the
 * kernel's own structs. Capture needs the vCPUs stopped (paused, or never run); restore needs a
 * VM built as tskvm builds one (RAM slot, irqchip, PIT, GSI routing) whose vCPUs have not run.
 *
 * Restore order matters, as QEMU and Firecracker found:
 * - CPUID first: KVM sizes the XSAVE area, the MSRs it accepts and the LAPIC's features from it.
 * - sregs before the LAPIC: KVM_SET_LAPIC reads the APIC base (xAPIC or x2APIC mode) from them.
 * - MSRs before the LAPIC, except TSC_DEADLINE: KVM_SET_LAPIC disarms the deadline timer, and the
 *   deadline is a TSC value, so it goes last, after the TSC itself.
 * - vCPU events and the MP state after the LAPIC (a SIPI-received state needs it), with the SIPI
 *   vector and the pending NMI marked valid (KVM_GET_VCPU_EVENTS does not mark them).
 * - The VM's interrupt controllers after the devices have driven their IRQ lines on the fresh
 *   irqchip (see Serial16550.restore): KVM keeps each line's level outside the state
 *   KVM_SET_IRQCHIP loads, and re-raising a line afterwards would deliver a spurious edge.
 */
import { CAPABILITIES } from '../kvm/capabilities.js';
import { KVM_CAP_TSC_CONTROL, KVM_CAP_XCRS, KVM_CAP_XSAVE, KVM_CAP_XSAVE2 } from '../kvm/constants.js';
import { KvmError } from '../kvm/error.js';
import type { Kvm, VcpuFd, VmFd } from '../kvm/ioctls.js';
import {
  KVM_VCPUEVENT_VALID_NMI_PENDING,
  KVM_VCPUEVENT_VALID_SIPI_VECTOR,
  KVM_XSAVE_SIZE,
  decodeClock,
  decodeVcpuEvents,
  encodeClock,
  withVcpuEventFlags,
} from '../kvm/state.js';
import { decodeRegs, decodeSregs, encodeRegs, encodeSregs } from '../kvm/structs.js';
import { KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, type CpuidEntry, type MsrEntry } from '../kvm/x86.js';
import { MSR_IA32_TSC_DEADLINE, snapshotMsrIndices, type MsrProbe } from './msrs.js';

/** One vCPU's state. The byte arrays are the kernel structs as KVM_GET_* filled them. */
export interface VcpuSnapshot {
  id: number;
  /** KVM_MP_STATE_*: runnable, halted, waiting for INIT/SIPI... */
  mpState: number;
  /** The guest TSC's frequency (KVM_GET_TSC_KHZ). */
  tscKhz: number;
  /** The CPUID table the vCPU answered with (KVM_GET_CPUID2). */
  cpuid: CpuidEntry[];
  regs: Uint8Array;
  sregs: Uint8Array;
  /** struct kvm_xsave (4 KiB or KVM_CAP_XSAVE2's size), or struct kvm_fpu on hosts without XSAVE. */
  fpu: { kind: 'xsave' | 'fpu'; bytes: Uint8Array };
  /** struct kvm_xcrs (with XSAVE). */
  xcrs: Uint8Array | undefined;
  msrs: MsrEntry[];
  /** struct kvm_lapic_state (in-kernel irqchip only). */
  lapic: Uint8Array | undefined;
  events: Uint8Array;
  debugRegs: Uint8Array;
}

/** The VM's state: the in-kernel PIC pair, IOAPIC and PIT (with an irqchip), and kvmclock. */
export interface VmSnapshot {
  irqchip: { picMaster: Uint8Array; picSlave: Uint8Array; ioapic: Uint8Array } | undefined;
  pit: Uint8Array | undefined;
  clock: Uint8Array;
}

/** What this host's KVM offers for saving state, and the XSAVE area's size in this VM. */
export interface StateSupport {
  xsave: boolean;
  xsaveSize: number;
  xcrs: boolean;
  tscControl: boolean;
}

/** The capabilities snapshots cannot do without (kvm/capabilities.ts; doctor reports them too). */
const REQUIRED = CAPABILITIES.filter((cap) => cap.requiredFor === 'snapshots');

/** Checks the capabilities snapshots cannot do without (KvmError EKVMCAP) and reports the optional ones. */
export function stateSupport(vm: VmFd): StateSupport {
  for (const cap of REQUIRED) {
    if (!vm.checkExtension(cap.number))
      throw KvmError.missingCapability(cap.name, `${cap.neededFor} (saving and restoring a running guest)`);
  }
  const xsave = vm.checkExtension(KVM_CAP_XSAVE) > 0;
  return {
    xsave,
    xsaveSize: xsave ? Math.max(KVM_XSAVE_SIZE, vm.checkExtension(KVM_CAP_XSAVE2)) : 0,
    xcrs: vm.checkExtension(KVM_CAP_XCRS) > 0,
    tscControl: vm.checkExtension(KVM_CAP_TSC_CONTROL) > 0,
  };
}

/** Reads one stopped vCPU's whole state; `probe` keeps only the MSRs a vCPU like it takes back. */
export function captureVcpu(kvm: Kvm, vcpu: VcpuFd, id: number, support: StateSupport, irqchip: boolean, probe: MsrProbe): VcpuSnapshot {
  const msrIndices = snapshotMsrIndices(kvm, vcpu);
  const cpuid = vcpu.getCpuid2();
  return {
    id,
    mpState: vcpu.getMpState(),
    tscKhz: vcpu.getTscKhz(),
    cpuid,
    regs: encodeRegs(vcpu.getRegs()),
    sregs: encodeSregs(vcpu.getSregs()),
    fpu: support.xsave ? { kind: 'xsave', bytes: vcpu.getXsave(support.xsaveSize) } : { kind: 'fpu', bytes: vcpu.getFpu() },
    xcrs: support.xcrs ? vcpu.getXcrs() : undefined,
    msrs: probe.settable(id, cpuid, vcpu.getMsrs(msrIndices)),
    lapic: irqchip ? vcpu.getLapic() : undefined,
    events: vcpu.getVcpuEvents(),
    debugRegs: vcpu.getDebugRegs(),
  };
}

/** Why a restore could not put a piece back: what the snapshot holds that this host refuses. */
export class StateMismatch extends Error {
  override readonly name = 'StateMismatch';
}

/**
 * Puts a vCPU's state back on a vCPU that has not run. Throws StateMismatch when this host
 * cannot take it (an XSAVE area from a host with more state components, an MSR KVM refuses).
 * Returns notes for the user (a TSC frequency that could not be matched).
 */
export function restoreVcpu(vcpu: VcpuFd, state: VcpuSnapshot, support: StateSupport, irqchip: boolean): string[] {
  const notes: string[] = [];
  vcpu.setCpuid2(state.cpuid);
  const tscKhz = vcpu.getTscKhz();
  if (tscKhz !== state.tscKhz) {
    if (support.tscControl) vcpu.setTscKhz(state.tscKhz);
    else
      notes.push(
        `vCPU ${state.id}: the guest's TSC ran at ${state.tscKhz} kHz and runs at ${tscKhz} kHz here (no KVM_CAP_TSC_CONTROL to scale it): delays it calibrated against the TSC change by the same ratio`,
      );
  }
  vcpu.setSregs(decodeSregs(state.sregs));
  const deadline = state.msrs.filter((m) => m.index === MSR_IA32_TSC_DEADLINE);
  setMsrs(
    vcpu,
    state.msrs.filter((m) => m.index !== MSR_IA32_TSC_DEADLINE),
  );
  vcpu.setRegs(decodeRegs(state.regs));
  if (state.fpu.kind === 'xsave') {
    if (!support.xsave) throw new StateMismatch('it holds XSAVE state and this host has no KVM_CAP_XSAVE');
    if (state.fpu.bytes.length > support.xsaveSize)
      throw new StateMismatch(`its XSAVE area is ${state.fpu.bytes.length} bytes; this host's is ${support.xsaveSize}`);
    const area = new Uint8Array(support.xsaveSize);
    area.set(state.fpu.bytes);
    vcpu.setXsave(area);
  } else {
    vcpu.setFpu(state.fpu.bytes);
  }
  if (state.xcrs) {
    if (!support.xcrs) throw new StateMismatch('it holds XCRs and this host has no KVM_CAP_XCRS');
    vcpu.setXcrs(state.xcrs);
  }
  if (state.lapic) {
    if (!irqchip) throw new StateMismatch('it holds a local APIC and the machine has no in-kernel irqchip');
    vcpu.setLapic(state.lapic);
  }
  setMsrs(vcpu, deadline);
  const flags = decodeVcpuEvents(state.events).flags | KVM_VCPUEVENT_VALID_SIPI_VECTOR | KVM_VCPUEVENT_VALID_NMI_PENDING;
  vcpu.setVcpuEvents(withVcpuEventFlags(state.events, flags));
  vcpu.setMpState(state.mpState);
  vcpu.setDebugRegs(state.debugRegs);
  return notes;
}

function setMsrs(vcpu: VcpuFd, entries: readonly MsrEntry[]): void {
  if (entries.length === 0) return;
  try {
    vcpu.setMsrs(entries);
  } catch (err) {
    if (err instanceof KvmError) throw new StateMismatch(`this host's KVM refuses one of its MSRs (${err.message})`);
    throw err;
  }
}

/** Reads the VM's interrupt controllers, PIT and clock (the vCPUs stopped). */
export function captureVm(vm: VmFd, irqchip: boolean): VmSnapshot {
  return {
    irqchip: irqchip
      ? {
          picMaster: vm.getIrqchip(KVM_IRQCHIP_PIC_MASTER),
          picSlave: vm.getIrqchip(KVM_IRQCHIP_PIC_SLAVE),
          ioapic: vm.getIrqchip(KVM_IRQCHIP_IOAPIC),
        }
      : undefined,
    pit: irqchip ? vm.getPit2() : undefined,
    clock: vm.getClock(),
  };
}

/**
 * Puts the VM's state back: call after the devices have been restored (they drive their IRQ
 * lines on the fresh irqchip) and before any vCPU runs. kvmclock goes on from the saved value.
 */
export function restoreVm(vm: VmFd, state: VmSnapshot, irqchip: boolean): void {
  if (state.irqchip) {
    if (!irqchip) throw new StateMismatch('it holds an in-kernel irqchip and the machine has none');
    vm.setIrqchip(state.irqchip.picMaster);
    vm.setIrqchip(state.irqchip.picSlave);
    vm.setIrqchip(state.irqchip.ioapic);
  }
  if (state.pit) vm.setPit2(state.pit);
  vm.setClock(encodeClock(decodeClock(state.clock).clock));
}
