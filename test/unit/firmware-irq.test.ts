/**
 * The interrupt hardware a multiboot or ELF kernel starts with (src/arch/x86/firmware-irq.ts):
 * the PIC pair and PIT channel 0 as SeaBIOS programs them, and a real-mode IVT whose hardware
 * interrupt vectors acknowledge the PIC — written only where the image left memory untouched.
 */
import { describe, expect, it } from 'vitest';
import { applyFirmwareIrqState, FIRMWARE_IRQ_STUBS_ADDRESS } from '../../src/arch/x86/firmware-irq.js';
import { decodePic, decodePit, KVM_IRQCHIP_SIZE, KVM_PIT_STATE2_SIZE } from '../../src/kvm/state.js';
import { KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE } from '../../src/kvm/x86.js';

function fakeVm(): { chips: Map<number, Uint8Array>; pit: () => Uint8Array; vm: Parameters<typeof applyFirmwareIrqState>[0] } {
  const chips = new Map<number, Uint8Array>();
  let pit = new Uint8Array(KVM_PIT_STATE2_SIZE);
  const vm = {
    getIrqchip: (chip: number) => {
      const bytes = new Uint8Array(KVM_IRQCHIP_SIZE);
      new DataView(bytes.buffer).setUint32(0, chip, true);
      bytes[8 + 15] = chip === KVM_IRQCHIP_PIC_MASTER ? 0xf8 : 0xde; // elcr_mask, as KVM has it
      return bytes;
    },
    setIrqchip: (bytes: Uint8Array) => void chips.set(new DataView(bytes.buffer).getUint32(0, true), bytes.slice()),
    getPit2: () => pit.slice(),
    setPit2: (bytes: Uint8Array) => void (pit = bytes.slice()),
  };
  return { chips, pit: () => pit, vm };
}

/** Real-mode IVT entry `vector` as a linear address. */
const vectorAddress = (memory: Uint8Array, vector: number): number => {
  const view = new DataView(memory.buffer);
  return view.getUint16(vector * 4 + 2, true) * 16 + view.getUint16(vector * 4, true);
};

describe('the interrupt state SeaBIOS leaves', () => {
  it('programs both PICs: vector bases 0x08/0x70, masks 0xB8/0x8E, ELCR 0x00/0x0C, ICW4 given', () => {
    const { chips, vm } = fakeVm();
    applyFirmwareIrqState(vm, new Uint8Array(0x100000));
    const master = decodePic(chips.get(KVM_IRQCHIP_PIC_MASTER)!);
    const slave = decodePic(chips.get(KVM_IRQCHIP_PIC_SLAVE)!);
    expect(master).toMatchObject({ irqBase: 0x08, imr: 0xb8, elcr: 0x00, elcrMask: 0xf8, init4: 1, initState: 0, irr: 0, isr: 0 });
    expect(slave).toMatchObject({ irqBase: 0x70, imr: 0x8e, elcr: 0x0c, elcrMask: 0xde, init4: 1, initState: 0 });
  });

  it('starts PIT channel 0 as a rate generator with count 65536 (18.2 Hz)', () => {
    const { pit, vm } = fakeVm();
    applyFirmwareIrqState(vm, new Uint8Array(0x100000));
    expect(decodePit(pit()).channels[0]).toMatchObject({ count: 0, mode: 2, rwMode: 3, gate: 1, bcd: 0 });
  });

  it('points IRQ vectors at handlers that send EOI, and every other vector at an iret', () => {
    const memory = new Uint8Array(0x100000);
    applyFirmwareIrqState(fakeVm().vm, memory);
    const IRET = 0xcf;
    const EOI_TO = (port: number): number[] => [0xb0, 0x20, 0xe6, port];
    const code = (vector: number, length: number): number[] => [
      ...memory.subarray(vectorAddress(memory, vector), vectorAddress(memory, vector) + length),
    ];
    expect(code(0x00, 1)).toEqual([IRET]);
    expect(code(0x1c, 1)).toEqual([IRET]);
    expect(vectorAddress(memory, 0x10)).toBe(vectorAddress(memory, 0x00));
    const master = code(0x0b, 7);
    expect(master).toEqual([0x50, ...EOI_TO(0x20), 0x58, IRET]);
    expect(code(0x75, 11)).toEqual([0x50, ...EOI_TO(0xa0), ...EOI_TO(0x20), 0x58, IRET]);
    // IRQ0 counts the BIOS tick at 0x46C, calls int 1Ch, then acknowledges the master.
    const timer = code(0x08, 25);
    expect(timer.slice(6, 9)).toEqual([0x83, 0x06, 0x6c]);
    expect(timer.slice(16, 22)).toEqual([0xcd, 0x1c, ...EOI_TO(0x20)]);
    expect(timer.at(-1)).toBe(IRET);
    expect(vectorAddress(memory, 0x08)).toBeGreaterThanOrEqual(FIRMWARE_IRQ_STUBS_ADDRESS);
  });

  it('leaves an IVT the image wrote alone', () => {
    const memory = new Uint8Array(0x100000);
    memory[0x20] = 0x34; // the image's own vector 8
    applyFirmwareIrqState(fakeVm().vm, memory);
    expect([...memory.subarray(0x20, 0x24)]).toEqual([0x34, 0, 0, 0]);
    expect(memory[FIRMWARE_IRQ_STUBS_ADDRESS]).toBe(0);
  });
});
