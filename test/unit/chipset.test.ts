/**
 * The chipset on a board of plain buses: what sits where, the reset and sleep paths, and S3
 * resume as kvm-unit-tests' s3 test drives it (RTC alarm armed, RTC_EN set, SLP_TYP 1 | SLP_EN),
 * ending at the FACS waking vector in real mode. Also the firmware side: findFacs and the
 * power-on CPU state the resume enters.
 */
import { describe, expect, it } from 'vitest';
import { facsWakingVector, findFacs, writeAcpiTables } from '../../src/arch/x86/acpi.js';
import { applyResetState, type BootCpu } from '../../src/arch/x86/boot-cpu.js';
import { restoreBoardState, saveBoardState, type BoardState } from '../../src/board/board-state.js';
import { connectPcChipset, type PcChipsetBoard } from '../../src/board/chipset.js';
import { Bus, PIO_ADDRESS_SPACE_SIZE } from '../../src/devices/bus.js';
import type { MmioDevice, PioDevice } from '../../src/devices/device.js';
import { handleIo, handleMmio } from '../../src/devices/dispatch.js';
import { CMOS_CPU_COUNT, Mc146818Rtc } from '../../src/devices/rtc.js';
import { KVM_REGS_FIELDS, type KvmRegs, type KvmSegment, type KvmSregs } from '../../src/kvm/structs.js';

function rig() {
  const memory = new Uint8Array(2 * 2 ** 20);
  writeAcpiTables(memory, { cpus: 1 });
  const board: PcChipsetBoard = {
    memory,
    pio: new Bus<PioDevice>(PIO_ADDRESS_SPACE_SIZE),
    mmio: new Bus<MmioDevice>(),
    stop: undefined,
    inputPolls: [],
  };
  const irqs: [number, boolean][] = [];
  const chipset = connectPcChipset(board, { connectIrq: (irq) => (level) => irqs.push([irq, level]), memorySize: memory.length, cpus: 1 });
  const io = (direction: 'in' | 'out', port: number, size: 1 | 2 | 4, value = 0): number => {
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, value >>> 0, true);
    handleIo({ direction, port, size, count: 1, data: data.subarray(0, size) }, board.pio);
    return new DataView(data.buffer).getUint32(0, true);
  };
  return { memory, board, chipset, irqs, io };
}

describe('the PC chipset on the board', () => {
  it('puts each device where QEMU PC has it', () => {
    const { board } = rig();
    const pio = (port: number) => board.pio.find(port)?.name;
    expect(pio(0x92)).toMatch(/port 92/);
    expect(pio(0xcf8)).toMatch(/PCI host bridge/);
    expect(pio(0xcf9)).toMatch(/PCI host bridge/);
    expect(pio(0x600)).toMatch(/ACPI PM/);
    expect(pio(0x608)).toMatch(/ACPI PM/);
    expect(pio(0x70)).toMatch(/RTC/);
    expect(pio(0xe0)).toBe('pc-testdev');
    expect(pio(0x2017)).toMatch(/pc-testdev IRQ/);
    expect(pio(0x5658)).toBe('vmport');
    expect(pio(0xc000)).toMatch(/PCI I\/O/);
    expect(board.mmio.find(0xfed000f0)?.name).toBe('HPET');
    expect(board.mmio.find(0xfebff000)?.name).toMatch(/PCI memory/);
    expect(board.mmio.find(0xff00ffff)?.name).toMatch(/pc-testdev iomem/);
    expect(board.mmio.find(0xfec00000)).toBeUndefined(); // the in-kernel I/O APIC's
  });

  it('leaves 0x70 to a CMOS clock registered before it (the BIOS one)', () => {
    const pio = new Bus<PioDevice>(PIO_ADDRESS_SPACE_SIZE);
    pio.register(0x70, 2, { pioRead: () => 0x12, pioWrite: () => {} }, 'bios cmos');
    const board: PcChipsetBoard = { memory: new Uint8Array(0), pio, mmio: new Bus<MmioDevice>(), stop: undefined, inputPolls: [] };
    const chipset = connectPcChipset(board, { connectIrq: () => () => {}, memorySize: 0, cpus: 1 });
    expect(chipset.rtc).toBeUndefined();
    expect(pio.find(0x70)?.name).toBe('bios cmos');
  });

  it('takes over an MC146818 the BIOS registered, with the CPU count in CMOS', () => {
    const pio = new Bus<PioDevice>(PIO_ADDRESS_SPACE_SIZE);
    const biosRtc = new Mc146818Rtc({}, { base: 'localtime' });
    pio.register(0x70, 2, biosRtc, 'cmos-rtc');
    const board: PcChipsetBoard = { memory: new Uint8Array(0), pio, mmio: new Bus<MmioDevice>(), stop: undefined, inputPolls: [] };
    const chipset = connectPcChipset(board, { connectIrq: () => () => {}, memorySize: 0, cpus: 4 });
    expect(chipset.rtc).toBe(biosRtc);
    expect(biosRtc.readRegister(CMOS_CPU_COUNT)).toBe(3);
  });

  it('saves every device on its buses, and a fresh chipset takes the state back (JSON, nothing left out)', () => {
    const a = rig();
    a.io('out', 0xcf8, 4, 0x80001000);
    a.io('out', 0x92, 1, 0x02); // A20
    a.io('out', 0xe0, 4, 0x12345678); // pc-testdev's scratch register
    a.io('out', 0x602, 2, 0x0001); // TMR_EN
    const hpetConf = new Uint8Array(8);
    hpetConf[0] = 1;
    handleMmio({ physAddr: 0xfed00010, isWrite: true, data: hpetConf }, a.board.mmio);
    const stateful = { serial: [], pio: a.board.pio, mmio: a.board.mmio };
    const saved = JSON.parse(JSON.stringify(saveBoardState(stateful, []))) as BoardState;
    expect(saved.unsaved).toEqual([]);
    const b = rig();
    restoreBoardState({ serial: [], pio: b.board.pio, mmio: b.board.mmio }, [], saved);
    expect(b.io('in', 0xcf8, 4)).toBe(0x80001000);
    expect(b.io('in', 0x92, 1) & 0xff).toBe(0x02);
    expect(b.io('in', 0xe0, 4)).toBe(0x12345678);
    expect(b.io('in', 0x602, 2) & 0xffff).toBe(0x0001);
    expect(b.chipset.hpet.enabled).toBe(true);
    expect(b.board.stop).toBeUndefined(); // restoring the reset latches reset nothing
  });

  it('ends the run with reset for port 0x92 and the FADT reset value at 0xCF9', () => {
    for (const [port, value] of [
      [0x92, 1],
      [0xcf9, 6],
    ] as const) {
      const { board, io } = rig();
      io('out', port, 1, value);
      expect(board.stop).toEqual({ reason: 'reset' });
    }
  });

  it('keeps an S5 request for the run to act on', () => {
    const { chipset, io } = rig();
    io('out', 0x604, 2, 0x2000);
    expect(chipset.sleepRequested).toBe('S5');
  });

  it('reads the HPET counter through the MMIO bus', () => {
    const { board } = rig();
    const data = new Uint8Array(8);
    data[0] = 1;
    handleMmio({ physAddr: 0xfed00010, isWrite: true, data }, board.mmio);
    const counter = new Uint8Array(8);
    handleMmio({ physAddr: 0xfed000f0, isWrite: false, data: counter }, board.mmio);
    expect(new DataView(counter.buffer).getBigUint64(0, true)).toBeGreaterThanOrEqual(0n);
    handleMmio({ physAddr: 0xfed00000, isWrite: false, data: counter }, board.mmio);
    expect(new DataView(counter.buffer).getUint32(0, true)).toBe(0x8086a201);
  });

  it("suspends on s3.c's sequence and resumes at the FACS waking vector when the RTC alarm fires", () => {
    const { memory, chipset, io } = rig();
    const facs = findFacs(memory)!;
    expect(facs).toBe(0xf2040);
    new DataView(memory.buffer).setUint32(facs + 12, 0x1000, true); // facs->firmware_waking_vector = 0x1000
    expect(facsWakingVector(memory)).toBe(0x1000);
    io('out', 0x602, 2, 0x400); // RTC_EN
    for (const reg of [1, 3, 5]) {
      io('out', 0x70, 1, reg);
      io('out', 0x71, 1, 0xc0); // alarm: every second
    }
    io('out', 0x70, 1, 0x0b);
    const b = io('in', 0x71, 1) & 0xff;
    io('out', 0x70, 1, 0x0b);
    io('out', 0x71, 1, b | 0x20); // AIE
    io('out', 0x604, 2, 0x2400); // SLP_TYP 1 | SLP_EN
    expect(chipset.sleepRequested).toBe('S3');
    expect(chipset.rtc!.readRegister(0x0f)).toBe(0xfe); // the shutdown status says "resume"
    const resumed = chipset.resumeFromS3(() => false);
    expect(resumed).toEqual({ kind: 'wake', entry: { cs: 0x100, ip: 0, ds: 0, es: 0, fs: 0, gs: 0, ss: 0, sp: 0, bp: 0, dx: 0 } });
    expect(chipset.sleepRequested).toBeUndefined();
    expect(io('in', 0x600, 2) & 0x8400).toBe(0x8400); // WAK_STS | RTC_STS
    expect(chipset.rtc!.readRegister(0x0f)).toBe(0);
  });

  it('stops sleeping when asked to, and reboots when the OS left no waking vector', () => {
    const { chipset, io } = rig();
    io('out', 0x604, 2, 0x2400); // no wake source armed
    let polls = 0;
    expect(chipset.resumeFromS3(() => ++polls > 2)).toBeUndefined();
    io('out', 0x602, 2, 0x400);
    io('out', 0x70, 1, 0x0b);
    io('out', 0x71, 1, 0x22);
    for (const reg of [1, 3, 5]) {
      io('out', 0x70, 1, reg);
      io('out', 0x71, 1, 0xc0);
    }
    expect(chipset.resumeFromS3(() => false)).toEqual({ kind: 'reboot' });
  });
});

describe('applyResetState', () => {
  it('enters real mode at the entry with paging, protection and EFER off', () => {
    const seg = (): KvmSegment => ({
      base: 0n,
      limit: 0xffffffff,
      selector: 0x10,
      type: 3,
      present: 1,
      dpl: 0,
      db: 1,
      s: 1,
      l: 0,
      g: 1,
      avl: 0,
      unusable: 0,
    });
    let sregs: KvmSregs = {
      cs: { ...seg(), type: 0xb, l: 1, db: 0 },
      ds: seg(),
      es: seg(),
      fs: seg(),
      gs: seg(),
      ss: seg(),
      tr: seg(),
      ldt: seg(),
      gdt: { base: 0xc0000n, limit: 31 },
      idt: { base: 0x1000n, limit: 0xfff },
      cr0: 0x80000011n,
      cr2: 5n,
      cr3: 0xc1000n,
      cr4: 0x20n,
      cr8: 0n,
      efer: 0x500n,
      apicBase: 0xfee00900n,
      interruptBitmap: [0n, 0n, 0n, 0n],
    };
    let regs: KvmRegs | undefined;
    const cpu: BootCpu = { getSregs: () => structuredClone(sregs), setSregs: (s) => (sregs = s), setRegs: (r) => (regs = r) };
    applyResetState(cpu, { cs: 0x100, ip: 0, ds: 0, es: 0, fs: 0, gs: 0, ss: 0, sp: 0, bp: 0, dx: 0 });
    expect(sregs.cs).toMatchObject({ selector: 0x100, base: 0x1000n, limit: 0xffff, db: 0, l: 0, g: 0 });
    expect(sregs.ds).toMatchObject({ selector: 0, base: 0n, limit: 0xffff, db: 0 });
    expect([sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer]).toEqual([0x10n, 0n, 0n, 0n]);
    expect(sregs.idt).toEqual({ base: 0n, limit: 0x3ff });
    expect(regs!.rip).toBe(0n);
    expect(regs!.rflags).toBe(2n);
    expect(Object.keys(regs!).sort()).toEqual([...KVM_REGS_FIELDS].sort());
  });
});
