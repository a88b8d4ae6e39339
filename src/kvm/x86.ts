/**
 * The x86-specific KVM structures beyond kvm_regs/kvm_sregs: CPUID tables (struct kvm_cpuid2),
 * MSR lists (struct kvm_msrs), the PIT config, IRQ levels and the vCPU MP state, as plain
 * objects with their byte layout.
 */

/** struct kvm_cpuid_entry2. */
export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

const CPUID2_HEADER = 8; // u32 nent, u32 padding
export const CPUID_ENTRY2_SIZE = 40;
/** Room for every leaf a current host reports (Linux itself asks with 256 and retries bigger). */
export const CPUID_MAX_ENTRIES = 256;
/** kvm_cpuid_entry2.flags: the leaf has sub-leaves selected by ECX (index). */
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;

export function cpuidBuffer(capacity: number): Uint8Array {
  const bytes = new Uint8Array(CPUID2_HEADER + capacity * CPUID_ENTRY2_SIZE);
  new DataView(bytes.buffer).setUint32(0, capacity, true);
  return bytes;
}

export function decodeCpuid2(bytes: Uint8Array): CpuidEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(0, true);
  const entries: CpuidEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = CPUID2_HEADER + i * CPUID_ENTRY2_SIZE;
    const [fn, index, flags, eax, ebx, ecx, edx] = [0, 4, 8, 12, 16, 20, 24].map((o) => view.getUint32(at + o, true)) as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    entries.push({ function: fn, index, flags, eax, ebx, ecx, edx });
  }
  return entries;
}

export function encodeCpuid2(entries: readonly CpuidEntry[]): Uint8Array {
  const bytes = cpuidBuffer(entries.length);
  const view = new DataView(bytes.buffer);
  entries.forEach((e, i) => {
    const at = CPUID2_HEADER + i * CPUID_ENTRY2_SIZE;
    [e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx].forEach((v, j) => view.setUint32(at + j * 4, v >>> 0, true));
  });
  return bytes;
}

/** struct kvm_msr_entry. */
export interface MsrEntry {
  index: number;
  data: bigint;
}

const MSRS_HEADER = 8; // u32 nmsrs, u32 pad
const MSR_ENTRY_SIZE = 16; // u32 index, u32 reserved, u64 data

export function encodeMsrs(entries: readonly MsrEntry[]): Uint8Array {
  const bytes = new Uint8Array(MSRS_HEADER + entries.length * MSR_ENTRY_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, entries.length, true);
  entries.forEach((e, i) => {
    view.setUint32(MSRS_HEADER + i * MSR_ENTRY_SIZE, e.index, true);
    view.setBigUint64(MSRS_HEADER + i * MSR_ENTRY_SIZE + 8, BigInt.asUintN(64, e.data), true);
  });
  return bytes;
}

export function decodeMsrs(bytes: Uint8Array, count: number): MsrEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: count }, (_, i) => ({
    index: view.getUint32(MSRS_HEADER + i * MSR_ENTRY_SIZE, true),
    data: view.getBigUint64(MSRS_HEADER + i * MSR_ENTRY_SIZE + 8, true),
  }));
}

/** struct kvm_pit_config: u32 flags, u32 pad[15]. */
export const KVM_PIT_CONFIG_SIZE = 64;
/** Emulate the PC speaker port (0x61) as a dummy so guests probing it don't take MMIO/PIO exits. */
export const KVM_PIT_SPEAKER_DUMMY = 1;

/** struct kvm_irq_level: u32 irq, u32 level. */
export const KVM_IRQ_LEVEL_SIZE = 8;

/** struct kvm_mp_state.mp_state values. */
export const KVM_MP_STATE_RUNNABLE = 0;
export const KVM_MP_STATE_UNINITIALIZED = 1;
export const KVM_MP_STATE_INIT_RECEIVED = 2;
export const KVM_MP_STATE_HALTED = 3;
export const KVM_MP_STATE_SIPI_RECEIVED = 4;

/** struct kvm_irq_routing_entry with a kvm_irq_routing_irqchip payload: GSI → irqchip pin. */
export interface IrqRoute {
  gsi: number;
  irqchip: number;
  pin: number;
}

export const KVM_IRQ_ROUTING_IRQCHIP = 1;
export const KVM_IRQCHIP_PIC_MASTER = 0;
export const KVM_IRQCHIP_PIC_SLAVE = 1;
export const KVM_IRQCHIP_IOAPIC = 2;

const IRQ_ROUTING_HEADER = 8; // u32 nr, u32 flags
export const KVM_IRQ_ROUTING_ENTRY_SIZE = 48; // gsi, type, flags, pad, then a 32-byte union

export function encodeIrqRouting(routes: readonly IrqRoute[]): Uint8Array {
  const bytes = new Uint8Array(IRQ_ROUTING_HEADER + routes.length * KVM_IRQ_ROUTING_ENTRY_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, routes.length, true);
  routes.forEach((route, i) => {
    const at = IRQ_ROUTING_HEADER + i * KVM_IRQ_ROUTING_ENTRY_SIZE;
    view.setUint32(at, route.gsi, true);
    view.setUint32(at + 4, KVM_IRQ_ROUTING_IRQCHIP, true);
    view.setUint32(at + 16, route.irqchip, true);
    view.setUint32(at + 20, route.pin, true);
  });
  return bytes;
}

/** struct kvm_guest_debug: u32 control, u32 pad, u64 debugreg[8]. */
export const KVM_GUEST_DEBUG_SIZE = 72;
export const KVM_GUESTDBG_ENABLE = 0x1;
export const KVM_GUESTDBG_SINGLESTEP = 0x2;
export const KVM_GUESTDBG_USE_SW_BP = 0x10000;
export const KVM_GUESTDBG_USE_HW_BP = 0x20000;

export interface GuestDebug {
  control: number;
  /** DR0-DR3 addresses and DR7 (debugreg[7]); DR6 is KVM's. */
  debugreg: [bigint, bigint, bigint, bigint];
  dr7: bigint;
}

export function encodeGuestDebug(debug: GuestDebug): Uint8Array {
  const bytes = new Uint8Array(KVM_GUEST_DEBUG_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, debug.control, true);
  debug.debugreg.forEach((addr, i) => view.setBigUint64(8 + i * 8, addr, true));
  view.setBigUint64(8 + 7 * 8, debug.dr7, true);
  return bytes;
}

/** struct kvm_translation: u64 linear_address, u64 physical_address, u8 valid, writeable, usermode, pad[5]. */
export const KVM_TRANSLATION_SIZE = 24;
