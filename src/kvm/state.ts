/**
 * The KVM structs that hold a running machine's state beyond its registers — what a snapshot
 * saves: per vCPU the FPU/XSAVE area, XCRs, LAPIC page, pending events and debug registers; per
 * VM the PIC pair and IOAPIC (struct kvm_irqchip), the PIT (struct kvm_pit_state2) and kvmclock
 * (struct kvm_clock_data). KVM defines their bytes, so they travel as bytes (x86-64 layout of
 * <linux/kvm.h>); the decoders here are for people and tests: they name the fields that matter.
 */

/**
 * Sizes and offsets, named as native/kvm_shim.c's shim_layout_values names them:
 * test/unit/kvm-layout.test.ts holds every one to what the C compiler computed.
 */
export const KVM_STATE_LAYOUT = {
  sizeofKvmMsrList: 4, // u32 nmsrs, then u32 indices[]
  sizeofKvmMsrs: 8,
  sizeofKvmCpuid2: 8,
  /** struct kvm_fpu: the legacy x87/SSE state, for hosts without KVM_CAP_XSAVE. */
  sizeofKvmFpu: 416,
  /** struct kvm_xsave: 4 KiB; larger (KVM_CAP_XSAVE2's answer) with dynamically enabled features such as AMX. */
  sizeofKvmXsave: 4096,
  /** struct kvm_xcrs: u32 nr_xcrs, u32 flags, struct kvm_xcr xcrs[16], u64 padding[16]. */
  sizeofKvmXcrs: 392,
  sizeofKvmXcr: 16, // u32 xcr, u32 reserved, u64 value
  xcrsFlags: 4,
  xcrsXcrs: 8,
  xcrValue: 8,
  /** struct kvm_lapic_state: the local APIC's 1 KiB register page. */
  sizeofKvmLapicState: 1024,
  sizeofKvmVcpuEvents: 64,
  eventsExceptionErrorCode: 4, // after u8 injected, nr, has_error_code, pending
  eventsInterrupt: 8, // u8 injected, nr, soft, shadow
  eventsNmi: 12, // u8 injected, pending, masked, pad
  eventsSipiVector: 16,
  eventsFlags: 20,
  eventsSmi: 24, // u8 smm, pending, smm_inside_nmi, latched_init
  eventsTripleFault: 28,
  eventsExceptionHasPayload: 55,
  eventsExceptionPayload: 56,
  /** struct kvm_debugregs: u64 db[4], dr6, dr7, flags, reserved[9]. */
  sizeofKvmDebugregs: 128,
  debugregsDr6: 32,
  debugregsDr7: 40,
  debugregsFlags: 48,
  /** struct kvm_irqchip: u32 chip_id, u32 pad, then a 512-byte union (kvm_pic_state or kvm_ioapic_state). */
  sizeofKvmIrqchip: 520,
  irqchipChip: 8,
  sizeofKvmPicState: 16,
  picElcr: 14,
  /** struct kvm_ioapic_state: u64 base_address, u32 ioregsel, u32 id, u32 irr, u32 pad, u64 redirtbl[24]. */
  sizeofKvmIoapicState: 216,
  ioapicId: 12,
  ioapicIrr: 16,
  ioapicRedirtbl: 24,
  /** struct kvm_pit_state2: three struct kvm_pit_channel_state, u32 flags, u32 reserved[9]. */
  sizeofKvmPitState2: 112,
  sizeofKvmPitChannelState: 24,
  pitChannelLatchedCount: 4,
  pitChannelMode: 13,
  pitChannelGate: 15,
  pitChannelCountLoadTime: 16,
  pitFlags: 72,
  /** struct kvm_clock_data: u64 clock, u32 flags, u32 pad0, u64 realtime, u64 host_tsc, u32 pad[4]. */
  sizeofKvmClockData: 48,
  clockFlags: 8,
  clockRealtime: 16,
  clockHostTsc: 24,
} as const;

const L = KVM_STATE_LAYOUT;
export const KVM_FPU_SIZE = L.sizeofKvmFpu;
export const KVM_XSAVE_SIZE = L.sizeofKvmXsave;
export const KVM_XCRS_SIZE = L.sizeofKvmXcrs;
export const KVM_LAPIC_STATE_SIZE = L.sizeofKvmLapicState;
export const KVM_VCPU_EVENTS_SIZE = L.sizeofKvmVcpuEvents;
export const KVM_DEBUGREGS_SIZE = L.sizeofKvmDebugregs;
export const KVM_IRQCHIP_SIZE = L.sizeofKvmIrqchip;
export const KVM_PIT_STATE2_SIZE = L.sizeofKvmPitState2;
export const KVM_CLOCK_DATA_SIZE = L.sizeofKvmClockData;
export const KVM_MSR_LIST_HEADER = L.sizeofKvmMsrList;
const U32_SIZE = 4;
const U64_SIZE = 8;

// --- XCRs ---------------------------------------------------------------------------------------

export const KVM_MAX_XCRS = 16;
const XCRS_FLAGS = L.xcrsFlags;
const XCRS_ENTRIES = L.xcrsXcrs;
const XCR_SIZE = L.sizeofKvmXcr;
const XCR_VALUE = L.xcrValue;
/** XCR0, the only XCR KVM has: which state components XSAVE manages (bit 0 x87, 1 SSE, 2 AVX...). */
export const XCR_XFEATURE_ENABLED_MASK = 0;

export interface Xcr {
  xcr: number;
  value: bigint;
}

export function decodeXcrs(bytes: Uint8Array): Xcr[] {
  const view = viewOf(bytes, KVM_XCRS_SIZE);
  const count = Math.min(view.getUint32(0, true), KVM_MAX_XCRS);
  return Array.from({ length: count }, (_, i) => ({
    xcr: view.getUint32(XCRS_ENTRIES + i * XCR_SIZE, true),
    value: view.getBigUint64(XCRS_ENTRIES + i * XCR_SIZE + XCR_VALUE, true),
  }));
}

export function encodeXcrs(xcrs: readonly Xcr[]): Uint8Array {
  if (xcrs.length > KVM_MAX_XCRS) throw new RangeError(`${xcrs.length} XCRs: struct kvm_xcrs holds at most ${KVM_MAX_XCRS}`);
  const bytes = new Uint8Array(KVM_XCRS_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, xcrs.length, true);
  view.setUint32(XCRS_FLAGS, 0, true);
  xcrs.forEach((x, i) => {
    view.setUint32(XCRS_ENTRIES + i * XCR_SIZE, x.xcr, true);
    view.setBigUint64(XCRS_ENTRIES + i * XCR_SIZE + XCR_VALUE, BigInt.asUintN(64, x.value), true);
  });
  return bytes;
}

// --- vCPU events --------------------------------------------------------------------------------

/** struct kvm_vcpu_events.flags: which optional fields KVM_SET_VCPU_EVENTS should take. */
export const KVM_VCPUEVENT_VALID_NMI_PENDING = 0x01;
export const KVM_VCPUEVENT_VALID_SIPI_VECTOR = 0x02;
export const KVM_VCPUEVENT_VALID_SHADOW = 0x04;
export const KVM_VCPUEVENT_VALID_SMM = 0x08;
export const KVM_VCPUEVENT_VALID_PAYLOAD = 0x10;
export const KVM_VCPUEVENT_VALID_TRIPLE_FAULT = 0x20;

const VCPU_EVENTS_EXCEPTION = 0;
const VCPU_EVENTS_EXCEPTION_ERROR_CODE = L.eventsExceptionErrorCode;
const VCPU_EVENTS_INTERRUPT = L.eventsInterrupt;
const VCPU_EVENTS_NMI = L.eventsNmi;
const VCPU_EVENTS_SIPI_VECTOR = L.eventsSipiVector;
const VCPU_EVENTS_FLAGS = L.eventsFlags;
const VCPU_EVENTS_SMI = L.eventsSmi;
const VCPU_EVENTS_TRIPLE_FAULT = L.eventsTripleFault;
const VCPU_EVENTS_EXCEPTION_HAS_PAYLOAD = L.eventsExceptionHasPayload;
const VCPU_EVENTS_EXCEPTION_PAYLOAD = L.eventsExceptionPayload;

/** What is in flight between instructions: an exception or interrupt being delivered, a blocked NMI, the STI/MOV SS shadow. */
export interface VcpuEvents {
  exception: {
    injected: number;
    nr: number;
    hasErrorCode: number;
    pending: number;
    errorCode: number;
    hasPayload: number;
    payload: bigint;
  };
  interrupt: { injected: number; nr: number; soft: number; shadow: number };
  nmi: { injected: number; pending: number; masked: number };
  sipiVector: number;
  flags: number;
  smi: { smm: number; pending: number; smmInsideNmi: number; latchedInit: number };
  tripleFaultPending: number;
}

export function decodeVcpuEvents(bytes: Uint8Array): VcpuEvents {
  const view = viewOf(bytes, KVM_VCPU_EVENTS_SIZE);
  const u8 = (at: number): number => view.getUint8(at);
  return {
    exception: {
      injected: u8(VCPU_EVENTS_EXCEPTION),
      nr: u8(VCPU_EVENTS_EXCEPTION + 1),
      hasErrorCode: u8(VCPU_EVENTS_EXCEPTION + 2),
      pending: u8(VCPU_EVENTS_EXCEPTION + 3),
      errorCode: view.getUint32(VCPU_EVENTS_EXCEPTION_ERROR_CODE, true),
      hasPayload: u8(VCPU_EVENTS_EXCEPTION_HAS_PAYLOAD),
      payload: view.getBigUint64(VCPU_EVENTS_EXCEPTION_PAYLOAD, true),
    },
    interrupt: {
      injected: u8(VCPU_EVENTS_INTERRUPT),
      nr: u8(VCPU_EVENTS_INTERRUPT + 1),
      soft: u8(VCPU_EVENTS_INTERRUPT + 2),
      shadow: u8(VCPU_EVENTS_INTERRUPT + 3),
    },
    nmi: { injected: u8(VCPU_EVENTS_NMI), pending: u8(VCPU_EVENTS_NMI + 1), masked: u8(VCPU_EVENTS_NMI + 2) },
    sipiVector: view.getUint32(VCPU_EVENTS_SIPI_VECTOR, true),
    flags: view.getUint32(VCPU_EVENTS_FLAGS, true),
    smi: {
      smm: u8(VCPU_EVENTS_SMI),
      pending: u8(VCPU_EVENTS_SMI + 1),
      smmInsideNmi: u8(VCPU_EVENTS_SMI + 2),
      latchedInit: u8(VCPU_EVENTS_SMI + 3),
    },
    tripleFaultPending: u8(VCPU_EVENTS_TRIPLE_FAULT),
  };
}

/**
 * The same events with `flags` replaced: KVM_GET_VCPU_EVENTS does not mark the SIPI vector or the
 * pending NMI as valid, but a restore needs KVM_SET_VCPU_EVENTS to take both. Returns a copy.
 */
export function withVcpuEventFlags(bytes: Uint8Array, flags: number): Uint8Array {
  const copy = bytes.slice(0, KVM_VCPU_EVENTS_SIZE);
  new DataView(copy.buffer).setUint32(VCPU_EVENTS_FLAGS, flags >>> 0, true);
  return copy;
}

// --- debug registers ----------------------------------------------------------------------------

/** struct kvm_debugregs. */
export interface DebugRegs {
  db: [bigint, bigint, bigint, bigint];
  dr6: bigint;
  dr7: bigint;
  flags: bigint;
}

const DEBUGREGS_DR6 = L.debugregsDr6;
const DEBUGREGS_DR7 = L.debugregsDr7;
const DEBUGREGS_FLAGS = L.debugregsFlags;

export function decodeDebugRegs(bytes: Uint8Array): DebugRegs {
  const view = viewOf(bytes, KVM_DEBUGREGS_SIZE);
  return {
    db: [0, 1, 2, 3].map((i) => view.getBigUint64(i * U64_SIZE, true)) as DebugRegs['db'],
    dr6: view.getBigUint64(DEBUGREGS_DR6, true),
    dr7: view.getBigUint64(DEBUGREGS_DR7, true),
    flags: view.getBigUint64(DEBUGREGS_FLAGS, true),
  };
}

export function encodeDebugRegs(regs: DebugRegs): Uint8Array {
  const bytes = new Uint8Array(KVM_DEBUGREGS_SIZE);
  const view = new DataView(bytes.buffer);
  regs.db.forEach((v, i) => view.setBigUint64(i * U64_SIZE, BigInt.asUintN(64, v), true));
  view.setBigUint64(DEBUGREGS_DR6, BigInt.asUintN(64, regs.dr6), true);
  view.setBigUint64(DEBUGREGS_DR7, BigInt.asUintN(64, regs.dr7), true);
  view.setBigUint64(DEBUGREGS_FLAGS, BigInt.asUintN(64, regs.flags), true);
  return bytes;
}

// --- local APIC ---------------------------------------------------------------------------------

// Register offsets in the LAPIC page (Intel SDM vol. 3, table 11-1).
export const APIC_ID = 0x20;
export const APIC_VERSION = 0x30;
export const APIC_TPR = 0x80;
export const APIC_LDR = 0xd0;
export const APIC_SVR = 0xf0;
export const APIC_ISR = 0x100; // 8 × 32 bits, 16 bytes apart
export const APIC_IRR = 0x200;
export const APIC_ICR_LOW = 0x300;
export const APIC_LVT_TIMER = 0x320;
export const APIC_LVT_LINT0 = 0x350;
export const APIC_LVT_LINT1 = 0x360;
export const APIC_TIMER_INITIAL_COUNT = 0x380;
export const APIC_TIMER_CURRENT_COUNT = 0x390;
export const APIC_TIMER_DIVIDE = 0x3e0;
/** SVR bit 8: the APIC is software-enabled. */
export const APIC_SVR_ENABLE = 1 << 8;
/** LVT bit 16: the entry is masked. */
export const APIC_LVT_MASKED = 1 << 16;
/** LVT timer bits 17–18: 0 one-shot, 1 periodic, 2 TSC-deadline. */
export const APIC_LVT_TIMER_MODE_SHIFT = 17;
export const APIC_LVT_TIMER_MODE_MASK = 0x3;
const APIC_VECTOR_MASK = 0xff;
/** In xAPIC mode the ID sits in bits 24–31 of its register. */
const APIC_XAPIC_ID_SHIFT = 24;
const APIC_VECTOR_WORDS = 8;
const APIC_VECTOR_WORD_STRIDE = 0x10;
const BITS_PER_WORD = 32;

export interface LapicSummary {
  /** The xAPIC ID (bits 24–31 of the ID register). */
  id: number;
  tpr: number;
  softwareEnabled: boolean;
  spuriousVector: number;
  timer: {
    vector: number;
    masked: boolean;
    mode: 'one-shot' | 'periodic' | 'tsc-deadline' | 'reserved';
    initialCount: number;
    currentCount: number;
    divide: number;
  };
  /** Vectors requested (IRR) and in service (ISR). */
  irr: number[];
  isr: number[];
}

const TIMER_MODES = ['one-shot', 'periodic', 'tsc-deadline', 'reserved'] as const;

/** The registers of a LAPIC page that say what the APIC is doing (for people; the page itself is what is saved). */
export function decodeLapic(bytes: Uint8Array): LapicSummary {
  const view = viewOf(bytes, KVM_LAPIC_STATE_SIZE);
  const reg = (at: number): number => view.getUint32(at, true);
  const vectors = (base: number): number[] => {
    const out: number[] = [];
    for (let w = 0; w < APIC_VECTOR_WORDS; w++) {
      const word = reg(base + w * APIC_VECTOR_WORD_STRIDE);
      for (let b = 0; b < BITS_PER_WORD; b++) if ((word >>> b) & 1) out.push(w * BITS_PER_WORD + b);
    }
    return out;
  };
  const svr = reg(APIC_SVR);
  const lvtt = reg(APIC_LVT_TIMER);
  return {
    id: reg(APIC_ID) >>> APIC_XAPIC_ID_SHIFT,
    tpr: reg(APIC_TPR),
    softwareEnabled: (svr & APIC_SVR_ENABLE) !== 0,
    spuriousVector: svr & APIC_VECTOR_MASK,
    timer: {
      vector: lvtt & APIC_VECTOR_MASK,
      masked: (lvtt & APIC_LVT_MASKED) !== 0,
      mode: TIMER_MODES[(lvtt >>> APIC_LVT_TIMER_MODE_SHIFT) & APIC_LVT_TIMER_MODE_MASK] ?? 'reserved',
      initialCount: reg(APIC_TIMER_INITIAL_COUNT),
      currentCount: reg(APIC_TIMER_CURRENT_COUNT),
      divide: reg(APIC_TIMER_DIVIDE),
    },
    irr: vectors(APIC_IRR),
    isr: vectors(APIC_ISR),
  };
}

// --- irqchip: PIC and IOAPIC --------------------------------------------------------------------

const IRQCHIP_CHIP = L.irqchipChip;
export const KVM_NR_IOAPIC_PINS = 24;

/** A KVM_GET_IRQCHIP buffer asking for `chipId` (KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE or _IOAPIC). */
export function irqchipBuffer(chipId: number): Uint8Array {
  const bytes = new Uint8Array(KVM_IRQCHIP_SIZE);
  new DataView(bytes.buffer).setUint32(0, chipId, true);
  return bytes;
}

export function irqchipId(bytes: Uint8Array): number {
  return viewOf(bytes, KVM_IRQCHIP_SIZE).getUint32(0, true);
}

/** struct kvm_pic_state, one 8259A: 16 bytes. */
export interface PicState {
  lastIrr: number;
  /** Interrupt request, mask and in-service registers: one bit per IRQ line. */
  irr: number;
  imr: number;
  isr: number;
  priorityAdd: number;
  /** The vector of IR0 (ICW2). */
  irqBase: number;
  readRegSelect: number;
  poll: number;
  specialMask: number;
  initState: number;
  autoEoi: number;
  rotateOnAutoEoi: number;
  specialFullyNestedMode: number;
  init4: number;
  /** Edge/level control: bit n set = IRQ n level-triggered. */
  elcr: number;
  elcrMask: number;
}

const PIC_FIELDS = [
  'lastIrr',
  'irr',
  'imr',
  'isr',
  'priorityAdd',
  'irqBase',
  'readRegSelect',
  'poll',
  'specialMask',
  'initState',
  'autoEoi',
  'rotateOnAutoEoi',
  'specialFullyNestedMode',
  'init4',
  'elcr',
  'elcrMask',
] as const satisfies readonly (keyof PicState)[];

export function decodePic(bytes: Uint8Array): PicState {
  const view = viewOf(bytes, KVM_IRQCHIP_SIZE);
  const pic = {} as PicState;
  PIC_FIELDS.forEach((name, i) => {
    pic[name] = view.getUint8(IRQCHIP_CHIP + i);
  });
  return pic;
}

/** struct kvm_ioapic_state. */
export interface IoapicState {
  baseAddress: bigint;
  ioregsel: number;
  id: number;
  irr: number;
  /** The 24 redirection entries: vector, delivery mode, destination, mask... (82093AA data sheet). */
  redirtbl: bigint[];
}

const IOAPIC_IOREGSEL = U64_SIZE; // after u64 base_address
const IOAPIC_ID = L.ioapicId;
const IOAPIC_IRR = L.ioapicIrr;
const IOAPIC_REDIRTBL = L.ioapicRedirtbl;

export function decodeIoapic(bytes: Uint8Array): IoapicState {
  const view = viewOf(bytes, KVM_IRQCHIP_SIZE);
  const at = IRQCHIP_CHIP;
  return {
    baseAddress: view.getBigUint64(at, true),
    ioregsel: view.getUint32(at + IOAPIC_IOREGSEL, true),
    id: view.getUint32(at + IOAPIC_ID, true),
    irr: view.getUint32(at + IOAPIC_IRR, true),
    redirtbl: Array.from({ length: KVM_NR_IOAPIC_PINS }, (_, i) => view.getBigUint64(at + IOAPIC_REDIRTBL + i * U64_SIZE, true)),
  };
}

// --- PIT ----------------------------------------------------------------------------------------

const PIT_CHANNEL_SIZE = L.sizeofKvmPitChannelState;
const PIT_CHANNELS = 3;
const PIT_FLAGS = L.pitFlags;
/** struct kvm_pit_channel_state's u8 fields, in order after u32 count and u16 latched_count. */
const PIT_CHANNEL_BYTE_FIELDS = [
  'countLatched',
  'statusLatched',
  'status',
  'readState',
  'writeState',
  'writeLatch',
  'rwMode',
  'mode',
  'bcd',
  'gate',
] as const;
const PIT_CHANNEL_LATCHED_COUNT = L.pitChannelLatchedCount;
const PIT_CHANNEL_BYTES = PIT_CHANNEL_LATCHED_COUNT + 2;
const PIT_CHANNEL_COUNT_LOAD_TIME = L.pitChannelCountLoadTime;
/** kvm_pit_state2.flags: the HPET has taken the PIT's interrupt (legacy replacement). */
export const KVM_PIT_FLAGS_HPET_LEGACY = 0x1;
/** kvm_pit_state2.flags: channel 2's gate and output are the speaker port's (kept as saved). */
export const KVM_PIT_FLAGS_SPEAKER_DATA_ON = 0x2;

export interface PitChannel extends Record<(typeof PIT_CHANNEL_BYTE_FIELDS)[number], number> {
  /** The reload value (0 means 65536). */
  count: number;
  latchedCount: number;
  /** When the count was loaded, in the host's ktime (ns): KVM_SET_PIT2 restarts the count from now. */
  countLoadTime: bigint;
}

export interface PitState {
  channels: [PitChannel, PitChannel, PitChannel];
  flags: number;
}

export function decodePit(bytes: Uint8Array): PitState {
  const view = viewOf(bytes, KVM_PIT_STATE2_SIZE);
  const channels = Array.from({ length: PIT_CHANNELS }, (_, i) => {
    const at = i * PIT_CHANNEL_SIZE;
    const channel = {
      count: view.getUint32(at, true),
      latchedCount: view.getUint16(at + PIT_CHANNEL_LATCHED_COUNT, true),
      countLoadTime: view.getBigInt64(at + PIT_CHANNEL_COUNT_LOAD_TIME, true),
    } as PitChannel;
    PIT_CHANNEL_BYTE_FIELDS.forEach((name, j) => {
      channel[name] = view.getUint8(at + PIT_CHANNEL_BYTES + j);
    });
    return channel;
  }) as PitState['channels'];
  return { channels, flags: view.getUint32(PIT_FLAGS, true) };
}

// --- kvmclock -----------------------------------------------------------------------------------

/** struct kvm_clock_data. */
export interface ClockData {
  /** kvmclock's value in ns: the guest's idea of time since the VM was created. */
  clock: bigint;
  flags: number;
  realtime: bigint;
  hostTsc: bigint;
}

export const KVM_CLOCK_TSC_STABLE = 0x2;
export const KVM_CLOCK_REALTIME = 0x4;
export const KVM_CLOCK_HOST_TSC = 0x8;
const CLOCK_FLAGS = L.clockFlags;
const CLOCK_REALTIME = L.clockRealtime;
const CLOCK_HOST_TSC = L.clockHostTsc;

export function decodeClock(bytes: Uint8Array): ClockData {
  const view = viewOf(bytes, KVM_CLOCK_DATA_SIZE);
  return {
    clock: view.getBigUint64(0, true),
    flags: view.getUint32(CLOCK_FLAGS, true),
    realtime: view.getBigUint64(CLOCK_REALTIME, true),
    hostTsc: view.getBigUint64(CLOCK_HOST_TSC, true),
  };
}

/** A KVM_SET_CLOCK argument: the clock value alone (flags 0), so the guest's time goes on from where it stopped. */
export function encodeClock(clock: bigint): Uint8Array {
  const bytes = new Uint8Array(KVM_CLOCK_DATA_SIZE);
  new DataView(bytes.buffer).setBigUint64(0, BigInt.asUintN(64, clock), true);
  return bytes;
}

// --- MSR index list -----------------------------------------------------------------------------

export function msrListBuffer(capacity: number): Uint8Array {
  const bytes = new Uint8Array(KVM_MSR_LIST_HEADER + capacity * U32_SIZE);
  new DataView(bytes.buffer).setUint32(0, capacity, true);
  return bytes;
}

export function decodeMsrList(bytes: Uint8Array): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(0, true);
  return Array.from({ length: count }, (_, i) => view.getUint32(KVM_MSR_LIST_HEADER + i * U32_SIZE, true));
}

function viewOf(bytes: Uint8Array, size: number): DataView {
  if (bytes.byteLength < size) throw new RangeError(`${bytes.byteLength} bytes: the struct needs ${size}`);
  return new DataView(bytes.buffer, bytes.byteOffset, size);
}
