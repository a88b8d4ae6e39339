/**
 * The interrupt hardware as a PC's BIOS leaves it when it hands over to a kernel it loaded (QEMU's
 * `-kernel`: SeaBIOS runs first, then the multiboot option ROM): both 8259A PICs initialised, the
 * 8254's channel 0 ticking, and a real-mode IVT whose hardware-interrupt vectors acknowledge the
 * PIC. tskvm has no BIOS in the way for multiboot and ELF kernels, so it sets that state directly
 * (KVM_SET_IRQCHIP, KVM_SET_PIT2, and a few bytes of handler code) before the first instruction.
 * A kernel that enables interrupts without programming the PICs itself (kvm-unit-tests' realmode)
 * sees what it sees under QEMU; kernels that program them see no difference.
 *
 * The values are SeaBIOS's, as read back under QEMU 7.2 by guests/picstate.mb.S: ICW2 vector
 * bases 0x08 (master) and 0x70 (slave), the slave cascaded on master IR2 (KVM wires the cascade
 * itself), ICW4 8086 mode, masks 0xB8/0x8E (IRQ 0, 1, 2, 6, 8, 12, 13, 14 open), ELCR 0x00/0x0C
 * (IRQ 10 and 11, the PCI links, level-triggered), and PIT channel 0 in mode 2 with count 65536
 * (18.2 Hz).
 */
import { KVM_IRQCHIP_SIZE, KVM_PIT_STATE2_SIZE, KVM_STATE_LAYOUT } from '../../kvm/state.js';
import { KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE } from '../../kvm/x86.js';
import { ACPI_AREA_END, BIOS_AREA_ADDRESS, IVT_ADDRESS } from './pc-layout.js';

/** The VM calls this needs (a VmFd). */
export interface FirmwareIrqVm {
  getIrqchip(chipId: number): Uint8Array;
  setIrqchip(bytes: Uint8Array): void;
  getPit2(): Uint8Array;
  setPit2(bytes: Uint8Array): void;
}

// struct kvm_pic_state fields, as offsets into struct kvm_irqchip's union.
const PIC = KVM_STATE_LAYOUT.irqchipChip;
const PIC_LAST_IRR = PIC + 0;
const PIC_IRR = PIC + 1;
const PIC_IMR = PIC + 2;
const PIC_ISR = PIC + 3;
const PIC_PRIORITY_ADD = PIC + 4;
const PIC_IRQ_BASE = PIC + 5;
const PIC_READ_REG_SELECT = PIC + 6;
const PIC_POLL = PIC + 7;
const PIC_SPECIAL_MASK = PIC + 8;
const PIC_INIT_STATE = PIC + 9;
const PIC_AUTO_EOI = PIC + 10;
const PIC_ROTATE_ON_AUTO_EOI = PIC + 11;
const PIC_SPECIAL_FULLY_NESTED = PIC + 12;
const PIC_INIT4 = PIC + 13;
const PIC_ELCR = PIC + KVM_STATE_LAYOUT.picElcr;

/** SeaBIOS's PIC set-up on QEMU's PC (see the header). */
export const FIRMWARE_PIC_MASTER = { vectorBase: 0x08, mask: 0xb8, elcr: 0x00 } as const;
export const FIRMWARE_PIC_SLAVE = { vectorBase: 0x70, mask: 0x8e, elcr: 0x0c } as const;

// struct kvm_pit_channel_state fields (channel 0 starts the struct).
const PIT_COUNT = 0;
const PIT_COUNT_LATCHED = 6;
const PIT_STATUS_LATCHED = 7;
const PIT_READ_STATE = 9;
const PIT_WRITE_STATE = 10;
const PIT_RW_MODE = 12;
const PIT_MODE = KVM_STATE_LAYOUT.pitChannelMode;
const PIT_BCD = 14;
const PIT_GATE = KVM_STATE_LAYOUT.pitChannelGate;
/** Access mode "lobyte/hibyte" (the kernel's RW_STATE_WORD0). */
const PIT_RW_LOBYTE_HIBYTE = 3;
/** Mode 2, rate generator: SeaBIOS's 18.2 Hz tick. */
const PIT_MODE_RATE_GENERATOR = 2;
/** A count of 0 means 65536: 1193182 Hz / 65536 = 18.2 Hz. */
const PIT_COUNT_65536 = 0;

// --- The real-mode IVT and its handlers ---------------------------------------------------------

/** The handlers go where tskvm's BIOS ROM goes when a guest boots through it (pc-layout.ts): free otherwise. */
export const FIRMWARE_IRQ_STUBS_ADDRESS = ACPI_AREA_END;
const STUBS_SEGMENT = BIOS_AREA_ADDRESS >>> 4; // F000
const IVT_VECTORS = 256;
const IRQ_VECTORS_PER_PIC = 8;
/** int 1Ch: the BIOS's user timer tick hook, called from IRQ0 (an iret unless the OS hooks it). */
const USER_TICK_VECTOR = 0x1c;
/** BDA 0x46C: timer ticks since midnight (u32), which a BIOS's IRQ0 handler counts. */
const BDA_TICK_COUNT = 0x46c;
const PIC_MASTER_COMMAND = 0x20;
const PIC_SLAVE_COMMAND = 0xa0;
const OCW2_NON_SPECIFIC_EOI = 0x20;

// 8086 opcodes of the handlers (hand-assembled: they are a few bytes each).
const IRET = 0xcf;
const PUSH_AX = 0x50;
const POP_AX = 0x58;
const PUSH_DS = 0x1e;
const POP_DS = 0x1f;
const MOV_AL_IMM = 0xb0;
const OUT_IMM_AL = 0xe6;
const INT_IMM = 0xcd;
const XOR_AX_AX = [0x31, 0xc0];
const MOV_DS_AX = [0x8e, 0xd8];
const ADD_WORD_MEM_IMM8 = [0x83, 0x06]; // add word [disp16], imm8
const ADC_WORD_MEM_IMM8 = [0x83, 0x16]; // adc word [disp16], imm8

const le16 = (value: number): number[] => [value & 0xff, value >>> 8];
const eoi = (port: number): number[] => [MOV_AL_IMM, OCW2_NON_SPECIFIC_EOI, OUT_IMM_AL, port];

/** Every vector the PICs do not use: return at once. */
const DEFAULT_HANDLER = [IRET];
/** IRQ0: count the tick in the BDA, call int 1Ch, acknowledge the master (SeaBIOS's handle_08, without midnight). */
const TIMER_HANDLER = [
  PUSH_DS,
  PUSH_AX,
  ...XOR_AX_AX,
  ...MOV_DS_AX,
  ...ADD_WORD_MEM_IMM8,
  ...le16(BDA_TICK_COUNT),
  1,
  ...ADC_WORD_MEM_IMM8,
  ...le16(BDA_TICK_COUNT + 2),
  0,
  INT_IMM,
  USER_TICK_VECTOR,
  ...eoi(PIC_MASTER_COMMAND),
  POP_AX,
  POP_DS,
  IRET,
];
/** IRQ1-7: acknowledge the master. */
const MASTER_HANDLER = [PUSH_AX, ...eoi(PIC_MASTER_COMMAND), POP_AX, IRET];
/** IRQ8-15: acknowledge the slave, then the master (its IR2 was in service too). */
const SLAVE_HANDLER = [PUSH_AX, ...eoi(PIC_SLAVE_COMMAND), ...eoi(PIC_MASTER_COMMAND), POP_AX, IRET];

/**
 * The PICs and the PIT as the BIOS leaves them, and the IVT with its handlers in guest memory.
 * Call once the image is loaded: the IVT and the handlers are written only where the image put
 * nothing (the bytes are still zero), so a kernel loaded over either keeps its own bytes.
 */
export function applyFirmwareIrqState(vm: FirmwareIrqVm, memory: Uint8Array): void {
  initPic(vm, KVM_IRQCHIP_PIC_MASTER, FIRMWARE_PIC_MASTER);
  initPic(vm, KVM_IRQCHIP_PIC_SLAVE, FIRMWARE_PIC_SLAVE);
  startPitTick(vm);
  writeIvt(memory);
}

const blank = (memory: Uint8Array, start: number, size: number): boolean => memory.subarray(start, start + size).every((b) => b === 0);

/** ICW1-ICW4 and OCW1 as the BIOS wrote them: no request or service pending, the vector base and mask set. */
function initPic(vm: FirmwareIrqVm, chipId: number, pic: { vectorBase: number; mask: number; elcr: number }): void {
  const bytes = vm.getIrqchip(chipId);
  if (bytes.length < KVM_IRQCHIP_SIZE) throw new RangeError(`KVM_GET_IRQCHIP returned ${bytes.length} bytes`);
  const values: [number, number][] = [
    [PIC_LAST_IRR, 0],
    [PIC_IRR, 0],
    [PIC_IMR, pic.mask],
    [PIC_ISR, 0],
    [PIC_PRIORITY_ADD, 0],
    [PIC_IRQ_BASE, pic.vectorBase],
    [PIC_READ_REG_SELECT, 0],
    [PIC_POLL, 0],
    [PIC_SPECIAL_MASK, 0],
    [PIC_INIT_STATE, 0],
    [PIC_AUTO_EOI, 0],
    [PIC_ROTATE_ON_AUTO_EOI, 0],
    [PIC_SPECIAL_FULLY_NESTED, 0],
    [PIC_INIT4, 1],
    [PIC_ELCR, pic.elcr],
  ];
  for (const [offset, value] of values) bytes[offset] = value;
  vm.setIrqchip(bytes);
}

/** Channel 0: mode 2, lobyte/hibyte, count 65536; KVM_SET_PIT2 starts it counting from now. */
function startPitTick(vm: FirmwareIrqVm): void {
  const bytes = vm.getPit2();
  if (bytes.length < KVM_PIT_STATE2_SIZE) throw new RangeError(`KVM_GET_PIT2 returned ${bytes.length} bytes`);
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(PIT_COUNT, PIT_COUNT_65536, true);
  bytes[PIT_COUNT_LATCHED] = 0;
  bytes[PIT_STATUS_LATCHED] = 0;
  bytes[PIT_READ_STATE] = PIT_RW_LOBYTE_HIBYTE;
  bytes[PIT_WRITE_STATE] = PIT_RW_LOBYTE_HIBYTE;
  bytes[PIT_RW_MODE] = PIT_RW_LOBYTE_HIBYTE;
  bytes[PIT_MODE] = PIT_MODE_RATE_GENERATOR;
  bytes[PIT_BCD] = 0;
  bytes[PIT_GATE] = 1;
  vm.setPit2(bytes);
}

/** The handlers, and IVT entries pointing at them (F000:offset, as a BIOS's are). */
function writeIvt(memory: Uint8Array): void {
  const handlers = [DEFAULT_HANDLER, TIMER_HANDLER, MASTER_HANDLER, SLAVE_HANDLER];
  const size = handlers.reduce((n, h) => n + h.length, 0);
  const ivtSize = IVT_VECTORS * 4;
  if (memory.length < FIRMWARE_IRQ_STUBS_ADDRESS + size) return; // a machine without the BIOS area
  if (!blank(memory, IVT_ADDRESS, ivtSize) || !blank(memory, FIRMWARE_IRQ_STUBS_ADDRESS, size)) return;
  const offsets: number[] = [];
  let at = FIRMWARE_IRQ_STUBS_ADDRESS;
  for (const handler of handlers) {
    memory.set(handler, at);
    offsets.push(at - BIOS_AREA_ADDRESS);
    at += handler.length;
  }
  const [defaultOffset, timerOffset, masterOffset, slaveOffset] = offsets as [number, number, number, number];
  const view = new DataView(memory.buffer, memory.byteOffset);
  for (let vector = 0; vector < IVT_VECTORS; vector++) {
    const master = vector - FIRMWARE_PIC_MASTER.vectorBase;
    const slave = vector - FIRMWARE_PIC_SLAVE.vectorBase;
    let offset = defaultOffset;
    if (master === 0) offset = timerOffset;
    else if (master > 0 && master < IRQ_VECTORS_PER_PIC) offset = masterOffset;
    else if (slave >= 0 && slave < IRQ_VECTORS_PER_PIC) offset = slaveOffset;
    view.setUint16(IVT_ADDRESS + vector * 4, offset, true);
    view.setUint16(IVT_ADDRESS + vector * 4 + 2, STUBS_SEGMENT, true);
  }
}
