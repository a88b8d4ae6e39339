/**
 * Which MSRs a snapshot saves. KVM_GET_MSR_INDEX_LIST names the MSRs KVM wants a VMM to save
 * (the SYSCALL/SYSENTER MSRs, TSC, PAT, kvmclock's, ...), but not the MTRRs, which tskvm sets at
 * boot and a guest may reprogram, nor TSC_AUX. So the candidates are that list plus those, minus
 * the MSRs that can be read but never written back (MTRRcap), minus whatever this vCPU refuses
 * to read (KVM_GET_MSRS stops at the first MSR it does not have), and minus whatever a vCPU set
 * up like this one refuses to take back (settableMsrs: some need the in-kernel LAPIC, such as
 * kvm's async page-fault vector). What remains is set back on restore, in one KVM_SET_MSRS.
 */
import { KvmError } from '../kvm/error.js';
import type { Kvm, VcpuFd, VmFd } from '../kvm/ioctls.js';
import type { CpuidEntry, MsrEntry } from '../kvm/x86.js';
import { MSR_MTRR_DEF_TYPE } from '../arch/x86/msrs.js';

/** IA32_MTRRCAP: read-only (how many variable MTRRs there are, and whether fixed ones exist). */
export const MSR_MTRR_CAP = 0xfe;
/** IA32_MTRR_PHYSBASE0; PHYSMASKn follows each PHYSBASEn. */
export const MSR_MTRR_PHYS_BASE0 = 0x200;
/** MTRRcap bits 0–7: the number of variable-range MTRR pairs. */
const MTRR_CAP_VCNT_MASK = 0xffn;
/** The eleven fixed-range MTRRs: 64K at 0x250, 16K at 0x258/0x259, 4K at 0x268–0x26F. */
export const MSR_MTRR_FIXED = [0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f] as const;
/** IA32_TSC_AUX: what RDTSCP and RDPID return (Linux keeps the CPU number there). */
export const MSR_TSC_AUX = 0xc0000103;
/** IA32_TSC_DEADLINE: an absolute TSC value, armed in the LAPIC; restored after the LAPIC and TSC. */
export const MSR_IA32_TSC_DEADLINE = 0x6e0;

/** MSRs that read fine but that KVM refuses to write: never saved. */
const READ_ONLY_MSRS: ReadonlySet<number> = new Set([MSR_MTRR_CAP]);

let indexList: readonly number[] | undefined;

/**
 * The MSRs to save for `vcpu`, in a stable order (KVM's list first). Probes the vCPU: an MSR it
 * does not implement (its CPUID lacks the feature) is left out.
 */
export function snapshotMsrIndices(kvm: Kvm, vcpu: VcpuFd): number[] {
  // The list is a fact of the host's KVM: ask once per process.
  indexList ??= kvm.msrIndexList();
  const mtrrCap = vcpu.getMsrs([MSR_MTRR_CAP])[0]?.data ?? 0n;
  const variable = Number(mtrrCap & MTRR_CAP_VCNT_MASK);
  const mtrrs = [MSR_MTRR_DEF_TYPE, ...MSR_MTRR_FIXED, ...Array.from({ length: 2 * variable }, (_, i) => MSR_MTRR_PHYS_BASE0 + i)];
  const candidates = [...new Set([...indexList, ...mtrrs, MSR_TSC_AUX])].filter((index) => !READ_ONLY_MSRS.has(index));
  return readable(vcpu, candidates).map((e) => e.index);
}

/** KVM_GET_MSRS on every candidate, dropping each one the vCPU refuses (it stops at the first). */
export function readable(vcpu: VcpuFd, indices: readonly number[]): MsrEntry[] {
  const out: MsrEntry[] = [];
  let rest = [...indices];
  while (rest.length > 0) {
    const got = vcpu.getMsrs(rest);
    out.push(...got);
    rest = rest.slice(got.length + 1); // skip the one it refused
  }
  return out;
}

/**
 * Which of a vCPU's MSR values a vCPU set up like it would take back: each is written, one at a
 * time, to a scratch vCPU (same id, same CPUID) of a scratch VM with the same irqchip, so the
 * guest's own vCPUs are never written. One probe per capture; close() it afterwards.
 */
export class MsrProbe {
  private vm: VmFd | undefined;
  private readonly vcpus = new Map<number, VcpuFd>();

  constructor(
    private readonly kvm: Kvm,
    private readonly irqchip: boolean,
  ) {}

  /** `entries` without those the scratch vCPU refused. */
  settable(id: number, cpuid: readonly CpuidEntry[], entries: readonly MsrEntry[]): MsrEntry[] {
    if (!this.vm) {
      this.vm = this.kvm.createVm();
      if (this.irqchip) this.vm.createIrqchip();
    }
    let vcpu = this.vcpus.get(id);
    if (!vcpu) this.vcpus.set(id, (vcpu = this.vm.createVcpu(id)));
    vcpu.setCpuid2(cpuid); // again for a second capture: allowed, the scratch vCPU never runs
    return entries.filter((entry) => {
      try {
        vcpu.setMsrs([entry]);
        return true;
      } catch (err) {
        if (err instanceof KvmError) return false;
        throw err;
      }
    });
  }

  close(): void {
    for (const vcpu of this.vcpus.values()) vcpu.close();
    this.vcpus.clear();
    void this.vm?.closeAsync(); // the kernel tears the VM down in the background
    this.vm = undefined;
  }
}
