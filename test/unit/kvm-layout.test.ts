import { describe, expect, it } from 'vitest';
import {
  KVM_EXIT_FAIL_ENTRY,
  KVM_EXIT_HLT,
  KVM_EXIT_INTERNAL_ERROR,
  KVM_EXIT_INTR,
  KVM_EXIT_IO,
  KVM_EXIT_IO_IN,
  KVM_EXIT_IO_OUT,
  KVM_EXIT_MMIO,
  KVM_EXIT_SHUTDOWN,
  KVM_EXIT_SYSTEM_EVENT,
} from '../../src/kvm/constants.js';
import { native } from '../../src/kvm/native.js';
import {
  KVM_RUN_EXIT_REASON,
  KVM_RUN_EXIT_UNION,
  KVM_RUN_FAIL_ENTRY_CPU,
  KVM_RUN_FAIL_ENTRY_REASON,
  KVM_RUN_HW_EXIT_REASON,
  KVM_RUN_IMMEDIATE_EXIT,
  KVM_RUN_INTERNAL_DATA,
  KVM_RUN_INTERNAL_NDATA,
  KVM_RUN_INTERNAL_SUBERROR,
  KVM_RUN_IO_COUNT,
  KVM_RUN_IO_DATA_OFFSET,
  KVM_RUN_IO_DIRECTION,
  KVM_RUN_IO_PORT,
  KVM_RUN_IO_SIZE,
  KVM_RUN_MMIO_DATA,
  KVM_RUN_MMIO_IS_WRITE,
  KVM_RUN_MMIO_LEN,
  KVM_RUN_MMIO_PHYS_ADDR,
  KvmRun,
} from '../../src/kvm/run.js';
import {
  KVM_REGS_FIELDS,
  KVM_REGS_SIZE,
  KVM_SEGMENT_SIZE,
  KVM_SREGS_SEGMENTS,
  KVM_SREGS_SIZE,
  decodeRegs,
  decodeSregs,
  encodeRegs,
  encodeSregs,
  type KvmRegs,
  type KvmSegment,
  type KvmSregs,
} from '../../src/kvm/structs.js';

import {
  KVM_STATE_LAYOUT,
  decodeClock,
  decodeDebugRegs,
  decodeIoapic,
  decodePic,
  decodePit,
  decodeVcpuEvents,
  decodeXcrs,
  encodeDebugRegs,
  encodeXcrs,
} from '../../src/kvm/state.js';

const layout = native().layout;

const BIG = 0xfedc_ba98_7654_3210n; // above 2^53 and above 2^63

function distinctRegs(): KvmRegs {
  const regs = {} as KvmRegs;
  KVM_REGS_FIELDS.forEach((name, i) => {
    regs[name] = (BigInt(i + 1) << 56n) | (0x1111_1111_1111n * BigInt(i + 1));
  });
  regs.rip = 0x0020_0000_0000_7c00n; // > 2^53
  regs.rflags = 0x246n;
  regs.rax = BIG;
  return regs;
}

function segment(i: number): KvmSegment {
  return {
    base: 0xffff_8000_0000_0000n + BigInt(i) * 0x1000n,
    limit: 0xffff_fff0 + i,
    selector: 0x8000 + i * 8,
    type: 0x0b - (i % 4),
    present: 1,
    dpl: i % 4,
    db: i & 1,
    s: (i + 1) & 1,
    l: i === 0 ? 1 : 0,
    g: 1,
    avl: i === 3 ? 1 : 0,
    unusable: i === 7 ? 1 : 0,
  };
}

function distinctSregs(): KvmSregs {
  return {
    cs: segment(0),
    ds: segment(1),
    es: segment(2),
    fs: segment(3),
    gs: segment(4),
    ss: segment(5),
    tr: segment(6),
    ldt: segment(7),
    gdt: { base: 0x0030_0000_1234_5000n, limit: 0x27 },
    idt: { base: 0xffff_ffff_ff00_0000n, limit: 0xfff },
    cr0: 0x8005_0033n,
    cr2: 0xdead_beef_cafe_f00dn,
    cr3: 0x0000_7fff_ffff_f000n,
    cr4: 0x0000_06a0n,
    cr8: 0xfn,
    efer: 0xd01n,
    apicBase: 0xfee0_0900n,
    interruptBitmap: [0x1n, 1n << 63n, 0x8000_0000_0000_0001n, BIG],
  };
}

describe('struct layout matches the addon (offsetof/sizeof from <linux/kvm.h>)', () => {
  it('the addon exports every layout key', () => {
    for (const key of [
      'sizeofKvmRegs',
      'sizeofKvmSregs',
      'sizeofKvmSegment',
      'runImmediateExit',
      'runExitReason',
      'runIoDirection',
      'runIoSize',
      'runIoPort',
      'runIoCount',
      'runIoDataOffset',
      'runMmioPhysAddr',
      'runMmioData',
      'runMmioLen',
      'runMmioIsWrite',
      'runFailEntryReason',
      'runFailEntryCpu',
      'runInternalSuberror',
      'runInternalNdata',
      'runInternalData',
      'runHwExitReason',
      'regsRip',
      'regsRflags',
      'sregsCs',
      'sregsGdt',
      'sregsCr0',
      'sregsEfer',
      'sregsApicBase',
      'sregsInterruptBitmap',
    ]) {
      expect(typeof layout[key], key).toBe('number');
    }
  });

  it('struct sizes', () => {
    expect(KVM_REGS_SIZE).toBe(layout.sizeofKvmRegs);
    expect(KVM_SREGS_SIZE).toBe(layout.sizeofKvmSregs);
    expect(KVM_SEGMENT_SIZE).toBe(layout.sizeofKvmSegment);
  });

  it.each([
    ['runImmediateExit', KVM_RUN_IMMEDIATE_EXIT],
    ['runExitReason', KVM_RUN_EXIT_REASON],
    ['runIoDirection', KVM_RUN_IO_DIRECTION],
    ['runIoSize', KVM_RUN_IO_SIZE],
    ['runIoPort', KVM_RUN_IO_PORT],
    ['runIoCount', KVM_RUN_IO_COUNT],
    ['runIoDataOffset', KVM_RUN_IO_DATA_OFFSET],
    ['runMmioPhysAddr', KVM_RUN_MMIO_PHYS_ADDR],
    ['runMmioData', KVM_RUN_MMIO_DATA],
    ['runMmioLen', KVM_RUN_MMIO_LEN],
    ['runMmioIsWrite', KVM_RUN_MMIO_IS_WRITE],
    ['runFailEntryReason', KVM_RUN_FAIL_ENTRY_REASON],
    ['runFailEntryCpu', KVM_RUN_FAIL_ENTRY_CPU],
    ['runInternalSuberror', KVM_RUN_INTERNAL_SUBERROR],
    ['runInternalNdata', KVM_RUN_INTERNAL_NDATA],
    ['runInternalData', KVM_RUN_INTERNAL_DATA],
    ['runHwExitReason', KVM_RUN_HW_EXIT_REASON],
  ])('kvm_run offset %s = %i', (key, offset) => {
    expect(offset).toBe(layout[key]);
  });

  it('the exit union starts where every exit struct starts', () => {
    expect(KVM_RUN_EXIT_UNION).toBe(layout.runIoDirection);
    expect(KVM_RUN_EXIT_UNION).toBe(layout.runMmioPhysAddr);
    expect(KVM_RUN_EXIT_UNION).toBe(layout.runHwExitReason);
  });

  it('encodeRegs puts rip and rflags where the kernel expects them', () => {
    const bytes = encodeRegs(distinctRegs());
    expect(bytes.length).toBe(layout.sizeofKvmRegs);
    const view = new DataView(bytes.buffer);
    expect(view.getBigUint64(layout.regsRip!, true)).toBe(0x0020_0000_0000_7c00n);
    expect(view.getBigUint64(layout.regsRflags!, true)).toBe(0x246n);
  });

  it('encodeSregs puts cs, gdt, cr0, efer, apic_base and the interrupt bitmap where the kernel expects them', () => {
    const s = distinctSregs();
    const bytes = encodeSregs(s);
    expect(bytes.length).toBe(layout.sizeofKvmSregs);
    const view = new DataView(bytes.buffer);
    expect(view.getBigUint64(layout.sregsCs!, true)).toBe(s.cs.base);
    expect(view.getBigUint64(layout.sregsGdt!, true)).toBe(s.gdt.base);
    expect(view.getUint16(layout.sregsGdt! + 8, true)).toBe(0x27);
    expect(view.getBigUint64(layout.sregsCr0!, true)).toBe(0x8005_0033n);
    expect(view.getBigUint64(layout.sregsEfer!, true)).toBe(0xd01n);
    expect(view.getBigUint64(layout.sregsApicBase!, true)).toBe(0xfee0_0900n);
    for (let i = 0; i < 4; i++) expect(view.getBigUint64(layout.sregsInterruptBitmap! + i * 8, true)).toBe(s.interruptBitmap[i]);
    // Segments follow cs back to back, KVM_SEGMENT_SIZE apart, in cs ds es fs gs ss tr ldt order.
    KVM_SREGS_SEGMENTS.forEach((name, i) => {
      const at = layout.sregsCs! + i * layout.sizeofKvmSegment!;
      expect(view.getBigUint64(at, true), name).toBe(s[name].base);
      expect(view.getUint32(at + 8, true), name).toBe(s[name].limit);
      expect(view.getUint16(at + 12, true), name).toBe(s[name].selector);
      expect(view.getUint8(at + 14), name).toBe(s[name].type);
    });
  });
});

describe('the snapshot state structs match the addon (sizes and offsets from C)', () => {
  it.each(Object.entries(KVM_STATE_LAYOUT))('%s = %i', (key, value) => {
    expect(layout[key], key).toBe(value);
  });

  it('the ioctl numbers for the state ioctls come from C, with the struct sizes in them', () => {
    const ioctls = native().ioctls;
    const size = (request: number): number => (request >>> 16) & 0x3fff; // _IOC_SIZE
    expect(size(ioctls.KVM_GET_XSAVE)).toBe(layout.sizeofKvmXsave);
    expect(size(ioctls.KVM_GET_XSAVE2)).toBe(layout.sizeofKvmXsave);
    expect(size(ioctls.KVM_SET_XCRS)).toBe(layout.sizeofKvmXcrs);
    expect(size(ioctls.KVM_GET_LAPIC)).toBe(layout.sizeofKvmLapicState);
    expect(size(ioctls.KVM_SET_VCPU_EVENTS)).toBe(layout.sizeofKvmVcpuEvents);
    expect(size(ioctls.KVM_GET_DEBUGREGS)).toBe(layout.sizeofKvmDebugregs);
    expect(size(ioctls.KVM_SET_IRQCHIP)).toBe(layout.sizeofKvmIrqchip);
    expect(size(ioctls.KVM_GET_PIT2)).toBe(layout.sizeofKvmPitState2);
    expect(size(ioctls.KVM_SET_CLOCK)).toBe(layout.sizeofKvmClockData);
    expect(size(ioctls.KVM_GET_CPUID2)).toBe(layout.sizeofKvmCpuid2);
    // The same command number, read vs write: KVM_GET_PIT2 0x9f shares its number with KVM_GET_VCPU_EVENTS.
    expect(ioctls.KVM_GET_PIT2 & 0xff).toBe(0x9f);
    expect(ioctls.KVM_GET_PIT2).not.toBe(ioctls.KVM_GET_VCPU_EVENTS);
  });

  it("decoders read the fields at the addon's offsets", () => {
    const events = new Uint8Array(layout.sizeofKvmVcpuEvents!);
    const ev = new DataView(events.buffer);
    ev.setUint32(layout.eventsExceptionErrorCode!, 0xdead, true);
    ev.setUint8(layout.eventsInterrupt! + 1, 0x30);
    ev.setUint8(layout.eventsNmi! + 2, 1);
    ev.setUint32(layout.eventsSipiVector!, 0x9a, true);
    ev.setUint32(layout.eventsFlags!, 0x25, true);
    ev.setUint8(layout.eventsSmi! + 3, 1);
    ev.setUint8(layout.eventsTripleFault!, 1);
    ev.setUint8(layout.eventsExceptionHasPayload!, 1);
    ev.setBigUint64(layout.eventsExceptionPayload!, BIG, true);
    const e = decodeVcpuEvents(events);
    expect(e.exception.errorCode).toBe(0xdead);
    expect(e.interrupt.nr).toBe(0x30);
    expect(e.nmi.masked).toBe(1);
    expect(e.sipiVector).toBe(0x9a);
    expect(e.flags).toBe(0x25);
    expect(e.smi.latchedInit).toBe(1);
    expect(e.tripleFaultPending).toBe(1);
    expect(e.exception).toMatchObject({ hasPayload: 1, payload: BIG });

    const dr = decodeDebugRegs(encodeDebugRegs({ db: [1n, 2n, 3n, BIG], dr6: 0xffff0ff0n, dr7: 0x400n, flags: 0n }));
    expect(dr).toEqual({ db: [1n, 2n, 3n, BIG], dr6: 0xffff0ff0n, dr7: 0x400n, flags: 0n });
    const drBytes = encodeDebugRegs(dr);
    expect(new DataView(drBytes.buffer).getBigUint64(layout.debugregsDr7!, true)).toBe(0x400n);

    const xcrs = encodeXcrs([{ xcr: 0, value: 0x207n }]);
    expect(new DataView(xcrs.buffer).getBigUint64(layout.xcrsXcrs! + layout.xcrValue!, true)).toBe(0x207n);
    expect(decodeXcrs(xcrs)).toEqual([{ xcr: 0, value: 0x207n }]);

    const chip = new Uint8Array(layout.sizeofKvmIrqchip!);
    const cv = new DataView(chip.buffer);
    cv.setUint8(layout.irqchipChip! + 5, 0x20); // irq_base
    cv.setUint8(layout.irqchipChip! + layout.picElcr!, 0x0c);
    expect(decodePic(chip)).toMatchObject({ irqBase: 0x20, elcr: 0x0c });
    cv.setUint32(layout.irqchipChip! + layout.ioapicId!, 0x0200_0000, true);
    cv.setUint32(layout.irqchipChip! + layout.ioapicIrr!, 0x10, true);
    cv.setBigUint64(layout.irqchipChip! + layout.ioapicRedirtbl! + 2 * 8, 0x30n, true);
    expect(decodeIoapic(chip)).toMatchObject({ id: 0x0200_0000, irr: 0x10 });
    expect(decodeIoapic(chip).redirtbl[2]).toBe(0x30n);

    const pit = new Uint8Array(layout.sizeofKvmPitState2!);
    const pv = new DataView(pit.buffer);
    const ch1 = layout.sizeofKvmPitChannelState!;
    pv.setUint32(ch1, 1193, true);
    pv.setUint16(ch1 + layout.pitChannelLatchedCount!, 77, true);
    pv.setUint8(ch1 + layout.pitChannelMode!, 2);
    pv.setUint8(ch1 + layout.pitChannelGate!, 1);
    pv.setBigInt64(ch1 + layout.pitChannelCountLoadTime!, -5n, true);
    pv.setUint32(layout.pitFlags!, 2, true);
    const p = decodePit(pit);
    expect(p.channels[1]).toMatchObject({ count: 1193, latchedCount: 77, mode: 2, gate: 1, countLoadTime: -5n });
    expect(p.flags).toBe(2);

    const clock = new Uint8Array(layout.sizeofKvmClockData!);
    const kv = new DataView(clock.buffer);
    kv.setBigUint64(0, BIG, true);
    kv.setUint32(layout.clockFlags!, 6, true);
    kv.setBigUint64(layout.clockRealtime!, 5n, true);
    kv.setBigUint64(layout.clockHostTsc!, 7n, true);
    expect(decodeClock(clock)).toEqual({ clock: BIG, flags: 6, realtime: 5n, hostTsc: 7n });
  });
});

describe('regs and sregs round trip', () => {
  it('decodeRegs(encodeRegs(r)) is r, u64s above 2^53 included', () => {
    const regs = distinctRegs();
    const bytes = encodeRegs(regs);
    expect(bytes.length).toBe(144);
    const back = decodeRegs(bytes);
    expect(back).toEqual(regs);
    expect(back.rax).toBe(0xfedc_ba98_7654_3210n);
    expect(new DataView(bytes.buffer).getBigUint64(0, true)).toBe(BIG);
    // r15 is the 16th u64.
    expect(new DataView(bytes.buffer).getBigUint64(15 * 8, true)).toBe(regs.r15);
  });

  it('encodeRegs wraps negative values to u64 and writes into a given buffer at its offset', () => {
    const regs = distinctRegs();
    regs.rbx = -1n;
    const backing = new Uint8Array(8 + 144).fill(0xee);
    const bytes = encodeRegs(regs, backing.subarray(8));
    expect(bytes.byteOffset).toBe(8);
    expect(Array.from(backing.subarray(0, 8))).toEqual(new Array(8).fill(0xee));
    const back = decodeRegs(backing.subarray(8));
    expect(back.rbx).toBe(0xffff_ffff_ffff_ffffn);
    expect(back.rax).toBe(BIG);
  });

  it('decodeSregs(encodeSregs(s)) is s', () => {
    const s = distinctSregs();
    const bytes = encodeSregs(s);
    expect(bytes.length).toBe(312);
    expect(decodeSregs(bytes)).toEqual(s);
  });

  it('encodeSregs clears stale bytes (padding) and round-trips at an offset', () => {
    const s = distinctSregs();
    const backing = new Uint8Array(16 + 312).fill(0xab);
    encodeSregs(s, backing.subarray(16));
    expect(backing[0]).toBe(0xab);
    expect(backing[15]).toBe(0xab);
    // gdt.limit is a u16 followed by 6 bytes of padding.
    expect(Array.from(backing.subarray(16 + 192 + 10, 16 + 192 + 16))).toEqual([0, 0, 0, 0, 0, 0]);
    // The last byte of a segment (padding after `unusable`) is zero.
    expect(backing[16 + 23]).toBe(0);
    expect(decodeSregs(backing.subarray(16))).toEqual(s);
  });
});

describe('KvmRun', () => {
  function runPage(): { run: KvmRun; view: DataView } {
    // kvm_run's mmap is several pages: KVM puts string I/O data in the page after the struct.
    const buffer = new ArrayBuffer(2 * 4096);
    return { run: new KvmRun(buffer), view: new DataView(buffer) };
  }

  it('reads the exit reason and reads/writes immediate_exit', () => {
    const { run, view } = runPage();
    view.setUint32(KVM_RUN_EXIT_REASON, 0x1234_5678, true);
    expect(run.exitReason).toBe(0x1234_5678);
    expect(run.immediateExit).toBe(false);
    run.immediateExit = true;
    expect(view.getUint8(1)).toBe(1);
    expect(run.immediateExit).toBe(true);
    run.immediateExit = false;
    expect(view.getUint8(1)).toBe(0);
  });

  it('decodes an IO OUT exit', () => {
    const { run, view } = runPage();
    view.setUint32(8, KVM_EXIT_IO, true);
    view.setUint8(32, KVM_EXIT_IO_OUT);
    view.setUint8(33, 2);
    view.setUint16(34, 0x3f8, true);
    view.setUint32(36, 3, true);
    view.setBigUint64(40, 0x1000n, true);
    view.setUint16(0x1000, 0x4142, true);
    const exit = run.exit();
    expect(exit).toMatchObject({ kind: 'io', direction: 'out', size: 2, port: 0x3f8, count: 3 });
    // The data is the kvm_run page itself at data_offset, size × count bytes, not a copy.
    const data = (exit as { data: Uint8Array }).data;
    expect(data.length).toBe(6);
    expect(data.byteOffset).toBe(0x1000);
    expect([data[0], data[1]]).toEqual([0x42, 0x41]);
    data[2] = 0x99;
    expect(view.getUint8(0x1002)).toBe(0x99);
  });

  it('decodes an IO IN exit with a high port', () => {
    const { run, view } = runPage();
    view.setUint32(8, KVM_EXIT_IO, true);
    view.setUint8(32, KVM_EXIT_IO_IN);
    view.setUint8(33, 4);
    view.setUint16(34, 0xfff4, true);
    view.setUint32(36, 1, true);
    view.setBigUint64(40, 0x100n, true);
    const exit = run.exit();
    expect(exit).toMatchObject({ kind: 'io', direction: 'in', size: 4, port: 0xfff4, count: 1 });
    expect((exit as { data: Uint8Array }).data.byteOffset).toBe(0x100);
  });

  it('refills one io exit object for every io exit (nothing allocated per exit)', () => {
    const { run, view } = runPage();
    view.setUint32(8, KVM_EXIT_IO, true);
    view.setUint8(32, KVM_EXIT_IO_OUT);
    view.setUint8(33, 1);
    view.setUint16(34, 0x3f8, true);
    view.setUint32(36, 1, true);
    view.setBigUint64(40, 0x1000n, true);
    const first = run.exit();
    view.setUint8(32, KVM_EXIT_IO_IN);
    view.setUint8(33, 2);
    view.setUint16(34, 0x64, true);
    const second = run.exit();
    expect(second).toBe(first);
    expect(second).toMatchObject({ kind: 'io', direction: 'in', size: 2, port: 0x64, count: 1 });
    const secondData = (second as { data: Uint8Array }).data;
    expect(secondData.length).toBe(2);
    // Same offset and length as the exit before: the same view as well.
    view.setUint16(34, 0x60, true);
    expect(run.exit()).toMatchObject({ port: 0x60, data: secondData });
    expect((run.exit() as { data: Uint8Array }).data).toBe(secondData);
    // The other exits still decode to their own kinds in between.
    view.setUint32(8, KVM_EXIT_HLT, true);
    expect(run.exit()).toEqual({ kind: 'hlt' });
  });

  it('clamps an I/O data offset whose high half is set instead of wrapping it into the page', () => {
    const { run, view } = runPage();
    view.setUint32(8, KVM_EXIT_IO, true);
    view.setUint8(32, KVM_EXIT_IO_IN);
    view.setUint8(33, 1);
    view.setUint32(36, 1, true);
    view.setBigUint64(40, 0x1_0000_0100n, true);
    const exit = run.exit() as { data: Uint8Array };
    expect(exit.data.length).toBe(0);
    expect(exit.data.byteOffset).toBe(2 * 4096);
  });

  it('clamps an I/O data offset past the kvm_run mapping instead of reading beyond it', () => {
    const { run, view } = runPage();
    view.setUint32(8, KVM_EXIT_IO, true);
    view.setUint8(32, KVM_EXIT_IO_IN);
    view.setUint8(33, 4);
    view.setUint32(36, 4096, true);
    view.setBigUint64(40, 0x1ff0n, true);
    const exit = run.exit() as { data: Uint8Array };
    expect(exit.data.byteOffset + exit.data.length).toBeLessThanOrEqual(2 * 4096);
  });

  it('decodes an MMIO write and read', () => {
    const { run, view } = runPage();
    view.setUint32(8, KVM_EXIT_MMIO, true);
    view.setBigUint64(32, 0xfee0_0030n, true);
    view.setBigUint64(40, 0x1122_3344_5566_7788n, true); // data
    view.setUint32(48, 4, true);
    view.setUint8(52, 1);
    expect(run.exit()).toMatchObject({
      kind: 'mmio',
      physAddr: 0xfee0_0030,
      len: 4,
      isWrite: true,
      data: Uint8Array.of(0x88, 0x77, 0x66, 0x55),
    });
    view.setUint8(52, 0);
    view.setUint32(48, 8, true);
    expect(run.exit()).toMatchObject({ kind: 'mmio', physAddr: 0xfee0_0030, len: 8, isWrite: false });
  });

  it('decodes HLT, SHUTDOWN and INTR', () => {
    const { run, view } = runPage();
    view.setUint32(8, KVM_EXIT_HLT, true);
    expect(run.exit()).toEqual({ kind: 'hlt' });
    view.setUint32(8, KVM_EXIT_SHUTDOWN, true);
    expect(run.exit()).toEqual({ kind: 'shutdown' });
    view.setUint32(8, KVM_EXIT_INTR, true);
    expect(run.exit()).toEqual({ kind: 'intr' });
  });

  it('decodes INTERNAL_ERROR with its suberror and ndata u64s', () => {
    const { run, view } = runPage();
    view.setUint32(8, KVM_EXIT_INTERNAL_ERROR, true);
    view.setUint32(32, 1, true); // KVM_INTERNAL_ERROR_EMULATION
    view.setUint32(36, 3, true);
    view.setBigUint64(40, 0xaaaa_bbbb_cccc_ddddn, true);
    view.setBigUint64(48, 2n, true);
    view.setBigUint64(56, 0x7c00n, true);
    view.setBigUint64(64, 0x9999n, true); // beyond ndata: ignored
    expect(run.exit()).toEqual({ kind: 'internal-error', suberror: 1, data: [0xaaaa_bbbb_cccc_ddddn, 2n, 0x7c00n] });
  });

  it('caps INTERNAL_ERROR data at 16 u64s', () => {
    const { run, view } = runPage();
    view.setUint32(8, KVM_EXIT_INTERNAL_ERROR, true);
    view.setUint32(32, 4, true);
    view.setUint32(36, 1000, true);
    for (let i = 0; i < 20; i++) view.setBigUint64(40 + i * 8, BigInt(i + 1), true);
    const exit = run.exit();
    expect(exit.kind).toBe('internal-error');
    if (exit.kind !== 'internal-error') return;
    expect(exit.suberror).toBe(4);
    expect(exit.data).toEqual(Array.from({ length: 16 }, (_, i) => BigInt(i + 1)));
  });

  it('decodes FAIL_ENTRY', () => {
    const { run, view } = runPage();
    view.setUint32(8, KVM_EXIT_FAIL_ENTRY, true);
    view.setBigUint64(32, 0x8000_0000_0000_0021n, true);
    view.setUint32(40, 1, true);
    expect(run.exit()).toEqual({ kind: 'fail-entry', hardwareEntryFailureReason: 0x8000_0000_0000_0021n, cpu: 1 });
  });

  it('decodes an unknown reason with the hardware exit reason', () => {
    const { run, view } = runPage();
    view.setUint32(8, KVM_EXIT_SYSTEM_EVENT, true);
    view.setBigUint64(32, 0x30n, true);
    expect(run.exit()).toEqual({ kind: 'unknown', exitReason: KVM_EXIT_SYSTEM_EVENT, hardwareExitReason: 0x30n });
    view.setUint32(8, 0xffff_ffff, true);
    view.setBigUint64(32, BIG, true);
    expect(run.exit()).toEqual({ kind: 'unknown', exitReason: 0xffff_ffff, hardwareExitReason: BIG });
  });
});
