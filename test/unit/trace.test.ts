import { describe, expect, it } from 'vitest';
import {
  formatData,
  formatTraceLine,
  parseTraceKinds,
  parseTracePorts,
  portInRanges,
  TRACE_KINDS,
  type TraceEvent,
} from '../../src/debug/trace.js';
import { UsageError } from '../../src/errors.js';
import type { VcpuExit } from '../../src/kvm/run.js';

const event = (exit: VcpuExit, extra: Partial<TraceEvent> = {}): TraceEvent => ({
  elapsedNs: 1_234_567n,
  vcpu: 0,
  exit,
  device: undefined,
  rip: 0x12n,
  cs: 0x1000,
  ...extra,
});

describe('parseTraceKinds', () => {
  it('takes a comma-separated list of exit kinds, or all', () => {
    expect([...parseTraceKinds('io,mmio,hlt')]).toEqual(['io', 'mmio', 'hlt']);
    expect([...parseTraceKinds(' IO , internal-error ')]).toEqual(['io', 'internal-error']);
    expect(parseTraceKinds('all')).toEqual(new Set(TRACE_KINDS));
    expect(parseTraceKinds('fail-entry,debug,unknown,shutdown,intr').size).toBe(5);
  });

  it('rejects unknown kinds with the valid list', () => {
    expect(() => parseTraceKinds('io,pio')).toThrow(UsageError);
    expect(() => parseTraceKinds('io,pio')).toThrow(
      /bad --trace kind 'pio'.*io, mmio, hlt, shutdown, intr, internal-error, fail-entry, debug, unknown, or all/,
    );
    expect(() => parseTraceKinds('')).toThrow(UsageError);
    expect(() => parseTraceKinds('io,')).toThrow(UsageError);
  });
});

describe('parseTracePorts', () => {
  it('takes ports and ranges in hex or decimal', () => {
    expect(parseTracePorts('0x3f8')).toEqual([[0x3f8, 0x3f8]]);
    expect(parseTracePorts('0x3f8,0x2f8-0x2ff, 128 , 0X60-0x64')).toEqual([
      [0x3f8, 0x3f8],
      [0x2f8, 0x2ff],
      [128, 128],
      [0x60, 0x64],
    ]);
    expect(parseTracePorts('0-0xffff')).toEqual([[0, 0xffff]]);
  });

  it('rejects what is not a port or a range', () => {
    for (const bad of ['', 'com1', '0x', '0x10000', '65536', '-1', '0x3ff-0x3f8', '1-2-3', '0x3f8,', '3f8', '1.5']) {
      expect(() => parseTracePorts(bad), bad).toThrow(UsageError);
    }
    expect(() => parseTracePorts('0x3ff-0x3f8')).toThrow(/ends before it starts/);
  });

  it('matches ports against the ranges', () => {
    const ranges = parseTracePorts('0x3f8,0x2f8-0x2ff');
    expect(portInRanges(ranges, 0x3f8)).toBe(true);
    expect(portInRanges(ranges, 0x2fc)).toBe(true);
    expect(portInRanges(ranges, 0x3f9)).toBe(false);
    expect(portInRanges([], 0x3f8)).toBe(false);
  });
});

describe('formatTraceLine', () => {
  it('formats port output with the device', () => {
    const exit: VcpuExit = { kind: 'io', direction: 'out', size: 1, port: 0x3f8, count: 1, data: new Uint8Array(1) };
    expect(formatTraceLine(event(exit, { data: Uint8Array.of(0x48), device: 'COM1 (16550A)' }))).toBe(
      '  0.001234567 cpu0 io    out port=0x3f8 size=1 count=1 data=48 dev=COM1 (16550A)  rip=0x0000000000000012 cs=0x1000',
    );
  });

  it('formats port input, wide values, unassigned ports and long times', () => {
    const exit: VcpuExit = { kind: 'io', direction: 'in', size: 4, port: 0x510, count: 1, data: new Uint8Array(4) };
    expect(
      formatTraceLine(
        event(exit, { elapsedNs: 12_000_000_001n, vcpu: 3, data: Uint8Array.of(0x2a, 0, 0, 0), rip: 0xffffffff81000000n, cs: 0x18 }),
      ),
    ).toBe(' 12.000000001 cpu3 io    in  port=0x510 size=4 count=1 data=0000002a dev=unassigned  rip=0xffffffff81000000 cs=0x0018');
    expect(formatTraceLine(event(exit, { elapsedNs: 0n }))).toBe(
      '  0.000000000 cpu0 io    in  port=0x510 size=4 count=1 data=- dev=unassigned  rip=0x0000000000000012 cs=0x1000',
    );
  });

  it('truncates string I/O data to 16 bytes', () => {
    const exit: VcpuExit = { kind: 'io', direction: 'out', size: 1, port: 0x3f8, count: 20, data: new Uint8Array(20) };
    const data = new TextEncoder().encode('Hello from a guest!\n');
    expect(formatTraceLine(event(exit, { data, device: 'COM1 (16550A)' }))).toContain(
      'out port=0x3f8 size=1 count=20 data=48656c6c6f2066726f6d206120677565…+4 dev=COM1 (16550A)',
    );
    expect(formatData(Uint8Array.from([1, 0, 2, 0, 3, 0]), 2)).toBe('0001,0002,0003');
    expect(formatData(new Uint8Array(24).fill(0xff), 4)).toBe('ffffffff,ffffffff,ffffffff,ffffffff…+8');
    expect(formatData(new Uint8Array(0), 1)).toBe('-');
  });

  it('formats MMIO reads and writes', () => {
    const write: VcpuExit = { kind: 'mmio', physAddr: 0xfee000b0, len: 4, isWrite: true, data: new Uint8Array(4) };
    expect(formatTraceLine(event(write, { data: Uint8Array.of(0, 0, 0, 0), device: 'LAPIC' }))).toBe(
      '  0.001234567 cpu0 mmio  write addr=0xfee000b0 len=4 data=00000000 dev=LAPIC  rip=0x0000000000000012 cs=0x1000',
    );
    const read: VcpuExit = { kind: 'mmio', physAddr: 0xd0000000, len: 8, isWrite: false, data: new Uint8Array(8) };
    expect(formatTraceLine(event(read, { data: new Uint8Array(8).fill(0xff) }))).toBe(
      '  0.001234567 cpu0 mmio  read  addr=0xd0000000 len=8 data=ffffffffffffffff dev=unassigned  rip=0x0000000000000012 cs=0x1000',
    );
  });

  it('names the reason of the other exits', () => {
    const tail = '  rip=0x0000000000000012 cs=0x1000';
    expect(formatTraceLine(event({ kind: 'hlt' }))).toBe(`  0.001234567 cpu0 hlt   reason=KVM_EXIT_HLT${tail}`);
    expect(formatTraceLine(event({ kind: 'shutdown' }))).toBe(`  0.001234567 cpu0 shutdown reason=KVM_EXIT_SHUTDOWN${tail}`);
    expect(formatTraceLine(event({ kind: 'intr' }))).toBe(`  0.001234567 cpu0 intr  reason=KVM_EXIT_INTR${tail}`);
    expect(formatTraceLine(event({ kind: 'internal-error', suberror: 1, data: [0x10n, 0x2n] }))).toBe(
      `  0.001234567 cpu0 internal-error suberror=1 (instruction emulation failed) data=0x10,0x2${tail}`,
    );
    expect(formatTraceLine(event({ kind: 'internal-error', suberror: 99, data: [] }))).toBe(
      `  0.001234567 cpu0 internal-error suberror=99${tail}`,
    );
    expect(formatTraceLine(event({ kind: 'fail-entry', hardwareEntryFailureReason: 0x21n, cpu: 1 }))).toBe(
      `  0.001234567 cpu0 fail-entry reason=KVM_EXIT_FAIL_ENTRY hw_reason=0x21 cpu=1${tail}`,
    );
    expect(formatTraceLine(event({ kind: 'debug', exception: 1, pc: 0x12n, dr6: 0xffff4ff0n, dr7: 0x400n }))).toBe(
      `  0.001234567 cpu0 debug reason=KVM_EXIT_DEBUG exception=#DB pc=0x12 dr6=0xffff4ff0 dr7=0x400${tail}`,
    );
    expect(formatTraceLine(event({ kind: 'unknown', exitReason: 24, hardwareExitReason: 0n }))).toBe(
      `  0.001234567 cpu0 unknown reason=KVM_EXIT_SYSTEM_EVENT hw_reason=0x0${tail}`,
    );
    expect(formatTraceLine(event({ kind: 'unknown', exitReason: 77, hardwareExitReason: 0x30n }))).toBe(
      `  0.001234567 cpu0 unknown reason=77 hw_reason=0x30${tail}`,
    );
  });
});
