/**
 * The exit loop against a fake vCPU (no KVM): each exit kind reaches the right handler, kicks
 * carry the main thread's requests (stop, pause, poll-halt, poll-input, poll-timers), requests
 * made before the loop starts are answered, crashes are described, an I/O exit's registers are
 * fetched only for the device that asks (vmport), and a sleeping machine goes to the suspend hook.
 */
import { describe, expect, it } from 'vitest';
import { createPcBoard, localDevices, UNCONNECTED_SERIAL } from '../../src/board/pc-board.js';
import type { ExitDevices, IoAccess, MmioAccess } from '../../src/devices/dispatch.js';
import type { VcpuExit } from '../../src/kvm/run.js';
import { KVM_REGS_FIELDS, RFLAGS_IF, type KvmRegs } from '../../src/kvm/structs.js';
import { KVM_MP_STATE_HALTED, KVM_MP_STATE_RUNNABLE } from '../../src/kvm/x86.js';
import { VcpuControl, type ThreadOps } from '../../src/vcpu/control.js';
import { runVcpu, type DebugStop, type LoopVcpu } from '../../src/vcpu/exit-loop.js';
import { VMPORT_CMD_GETVERSION, VMPORT_MAGIC, VMPORT_PORT, VMPORT_VERSION } from '../../src/devices/vmport.js';
import { PM1_CNT, PM1_CNT_SLP_EN, PM1_CNT_SLP_TYP_SHIFT, SLP_TYP_S5 } from '../../src/devices/acpi-pm.js';
import { PM_IO_BASE } from '../../src/arch/x86/pc-layout.js';

/** One step of the fake vCPU's script: an exit, or a kick (KVM_RUN returning -EINTR). */
type Step = VcpuExit | { kick: true; before?: () => void };

const KICK = { kick: true } as const;
const zeroRegs = (): KvmRegs => Object.fromEntries(KVM_REGS_FIELDS.map((f) => [f, 0n])) as KvmRegs;

/** A vCPU that plays a script of exits; past its end it would spin, so the test fails loudly. */
class FakeVcpu implements LoopVcpu {
  runs = 0;
  immediateExitCleared = 0;
  mpState = KVM_MP_STATE_RUNNABLE;
  regs = zeroRegs();
  getRegsCalls = 0;
  setRegsCalls: KvmRegs[] = [];
  private current: VcpuExit | undefined;
  constructor(private readonly script: Step[]) {}
  run(): boolean {
    this.runs++;
    const step = this.script.shift();
    if (step === undefined) throw new Error('the fake vCPU ran past its script');
    if ('kick' in step) {
      step.before?.();
      return false;
    }
    this.current = step;
    return true;
  }
  exit(): VcpuExit {
    return this.current!;
  }
  clearImmediateExit(): void {
    this.immediateExitCleared++;
  }
  getMpState(): number {
    return this.mpState;
  }
  getRegs(): KvmRegs {
    this.getRegsCalls++;
    return { ...this.regs };
  }
  setRegs(regs: KvmRegs): void {
    this.setRegsCalls.push({ ...regs });
    this.regs = { ...regs };
  }
}

/** Devices that record what reached them. */
class RecordingDevices {
  io: IoAccess[] = [];
  mmio: MmioAccess[] = [];
  polls = 0;
  timerPolls = 0;
  suspended = false;
  stop: ExitDevices['stop'] = undefined;
  constructor(private readonly inValue = 0x5a) {}
  ioHandler = (access: IoAccess): string | undefined => {
    this.io.push({ ...access, data: access.data.slice() });
    if (access.direction === 'in') access.data.fill(this.inValue);
    if (access.port === 0xf4) this.stop = { reason: 'debug-exit', exitCode: access.data[0]! };
    return 'dev';
  };
}

function devicesOf(rec: RecordingDevices): ExitDevices {
  return {
    io: rec.ioHandler,
    mmio: (access) => {
      rec.mmio.push({ ...access, data: access.data.slice() });
      if (!access.isWrite) access.data.fill(0x11);
      return 'mmio-dev';
    },
    pollInput: () => {
      rec.polls++;
    },
    pollTimers: () => {
      rec.timerPolls++;
    },
    get stop() {
      return rec.stop;
    },
    get suspended() {
      return rec.suspended;
    },
  };
}

/** A control block whose kicks are recorded instead of signalling a thread. */
function fakeControl(): { control: VcpuControl; kicks: number[] } {
  const kicks: number[] = [];
  const threads: ThreadOps = { self: () => 1n, kick: () => void kicks.push(1) };
  return { control: new VcpuControl(undefined, threads), kicks };
}

const io = (direction: 'in' | 'out', port: number, bytes: number[] | number, size: 1 | 2 | 4 = 1, count = 1): VcpuExit => ({
  kind: 'io',
  direction,
  size,
  port,
  count,
  data: typeof bytes === 'number' ? new Uint8Array(bytes) : Uint8Array.from(bytes),
});

describe('runVcpu with a fake vCPU', () => {
  it('hands port output and input to the devices, string I/O whole', () => {
    const rec = new RecordingDevices();
    const input = io('in', 0x3fd, 1);
    const vcpu = new FakeVcpu([io('out', 0x3f8, [0x48]), io('out', 0x3f8, [0x61, 0x62, 0x63], 1, 3), input, io('out', 0xf4, [7])]);
    const { control } = fakeControl();
    const result = runVcpu(vcpu, devicesOf(rec), control);
    expect(result.outcome).toEqual({ reason: 'debug-exit', exitCode: 7 });
    expect(rec.io.map((a) => [a.direction, a.port, a.count, [...a.data]])).toEqual([
      ['out', 0x3f8, 1, [0x48]],
      ['out', 0x3f8, 3, [0x61, 0x62, 0x63]],
      ['in', 0x3fd, 1, [0]],
      ['out', 0xf4, 1, [7]],
    ]);
    // The answer to an `in` lands in the exit's own data (the kvm_run page in production).
    expect([...(input as { data: Uint8Array }).data]).toEqual([0x5a]);
    expect(result.exits).toMatchObject({ io: 4, mmio: 0, intr: 0 });
  });

  it('hands MMIO reads and writes to the devices', () => {
    const rec = new RecordingDevices();
    const read: VcpuExit = { kind: 'mmio', physAddr: 0xfed00000, len: 4, isWrite: false, data: new Uint8Array(4) };
    const write: VcpuExit = { kind: 'mmio', physAddr: 0xfee000b0, len: 4, isWrite: true, data: Uint8Array.of(1, 2, 3, 4) };
    const vcpu = new FakeVcpu([read, write, { kind: 'hlt' }]);
    const result = runVcpu(vcpu, devicesOf(rec), fakeControl().control);
    expect([...(read as { data: Uint8Array }).data]).toEqual([0x11, 0x11, 0x11, 0x11]);
    expect(rec.mmio.map((a) => [a.physAddr, a.isWrite, [...a.data]])).toEqual([
      [0xfed00000, false, [0, 0, 0, 0]],
      [0xfee000b0, true, [1, 2, 3, 4]],
    ]);
    expect(result.outcome).toEqual({ reason: 'halt' });
    expect(result.exits).toMatchObject({ mmio: 2, hlt: 1 });
  });

  it('ends with a crash on a triple fault, an internal error, a failed entry or an unknown exit, with the registers', () => {
    const cases: [VcpuExit, RegExp][] = [
      [{ kind: 'shutdown' }, /triple fault \(KVM_EXIT_SHUTDOWN\)/],
      [{ kind: 'internal-error', suberror: 1, data: [0x10n] }, /KVM internal error: .*suberror 1, data 0x10/],
      [{ kind: 'fail-entry', hardwareEntryFailureReason: 0x21n, cpu: 3 }, /VM entry failed .*0x21 on CPU 3/],
      [{ kind: 'unknown', exitReason: 99, hardwareExitReason: 0n }, /unhandled exit reason 99/],
    ];
    for (const [exit, description] of cases) {
      const result = runVcpu(new FakeVcpu([exit]), devicesOf(new RecordingDevices()), fakeControl().control, { describe: () => 'RIP=42' });
      expect(result.outcome).toMatchObject({ reason: 'crash', state: 'RIP=42' });
      expect((result.outcome as { description: string }).description).toMatch(description);
    }
  });

  it('ends with stopped on a stop request made before the loop starts, without running', () => {
    const { control } = fakeControl();
    control.request('stop', 0n);
    const vcpu = new FakeVcpu([]);
    expect(runVcpu(vcpu, devicesOf(new RecordingDevices()), control).outcome).toEqual({ reason: 'stopped' });
    expect(vcpu.runs).toBe(0);
  });

  it('sees a stop that a kick brought, and clears immediate_exit first', () => {
    const { control, kicks } = fakeControl();
    const vcpu = new FakeVcpu([io('out', 0x80, [1]), { kick: true, before: () => control.request('stop', 0n) }]);
    const result = runVcpu(vcpu, devicesOf(new RecordingDevices()), control);
    expect(result.outcome).toEqual({ reason: 'stopped' });
    expect(result.exits.intr).toBe(1);
    expect(vcpu.immediateExitCleared).toBe(1);
    expect(kicks.length).toBe(1); // the thread was published, so the request kicked it
  });

  it('pauses on request and goes on when told, or ends when told', () => {
    for (const command of ['resume', 'end'] as const) {
      const { control } = fakeControl();
      const stops: DebugStop[] = [];
      const vcpu = new FakeVcpu([{ kick: true, before: () => control.request('pause', 0n) }, io('out', 0xf4, [3])]);
      const result = runVcpu(vcpu, devicesOf(new RecordingDevices()), control, {
        paused: (why) => {
          stops.push(why);
          return command;
        },
      });
      expect(stops).toEqual([{ kind: 'interrupt' }]);
      expect(result.outcome).toEqual(command === 'resume' ? { reason: 'debug-exit', exitCode: 3 } : { reason: 'stopped' });
    }
  });

  it('answers a pause requested before the thread ran (state `starting`) before the first KVM_RUN', () => {
    const { control } = fakeControl();
    control.request('pause', 0n);
    let runsWhenPaused = -1;
    const vcpu = new FakeVcpu([{ kind: 'hlt' }]);
    runVcpu(vcpu, devicesOf(new RecordingDevices()), control, {
      paused: () => {
        runsWhenPaused = vcpu.runs;
        return 'resume';
      },
    });
    expect(runsWhenPaused).toBe(0);
  });

  it('stops for the debugger on debug exits only when one is attached', () => {
    const debugExit: VcpuExit = { kind: 'debug', exception: 1, pc: 0x1234n, dr6: 0x4000n, dr7: 0n };
    const stops: DebugStop[] = [];
    const hooks = { paused: (why: DebugStop) => (stops.push(why), 'resume' as const) };
    runVcpu(new FakeVcpu([debugExit, { kind: 'hlt' }]), devicesOf(new RecordingDevices()), fakeControl().control, hooks);
    expect(stops).toEqual([]);
    runVcpu(new FakeVcpu([debugExit, { kind: 'hlt' }]), devicesOf(new RecordingDevices()), fakeControl().control, {
      ...hooks,
      debugger: true,
    });
    expect(stops).toEqual([{ kind: 'debug', exception: 1, pc: 0x1234n, dr6: 0x4000n }]);
  });

  it('ends as a halt on a poll-halt kick only when halted with interrupts off', () => {
    const { control } = fakeControl();
    const vcpu: FakeVcpu = new FakeVcpu([
      {
        kick: true,
        before: () => ((vcpu.mpState = KVM_MP_STATE_HALTED), (vcpu.regs.rflags = RFLAGS_IF), control.request('poll-halt', 0n)),
      },
      { kick: true, before: () => ((vcpu.regs.rflags = 0n), control.request('poll-halt', 0n)) },
    ]);
    const result = runVcpu(vcpu, devicesOf(new RecordingDevices()), control);
    expect(result.outcome).toEqual({ reason: 'halt' });
    expect(result.exits.intr).toBe(2);
  });

  it('lets the devices take new input on a poll-input kick', () => {
    const { control } = fakeControl();
    const rec = new RecordingDevices();
    const vcpu = new FakeVcpu([{ kick: true, before: () => control.request('poll-input', 0n) }, KICK, io('out', 0xf4, [0])]);
    runVcpu(vcpu, devicesOf(rec), control);
    expect(rec.polls).toBe(1);
  });

  it('drives the real PC board: a UART echo through local devices', () => {
    const out: number[] = [];
    const input = [0x41];
    const board = createPcBoard({
      serial: [{ transmit: (b) => void out.push(b), txBacklog: () => 0, receive: () => input.shift() ?? -1 }, UNCONNECTED_SERIAL],
    });
    const rbr = io('in', 0x3f8, 1);
    const vcpu = new FakeVcpu([rbr, io('out', 0x3f8, [0x42]), io('out', 0xf4, [9], 1)]);
    const result = runVcpu(vcpu, localDevices(board), fakeControl().control);
    expect([...(rbr as { data: Uint8Array }).data]).toEqual([0x41]);
    expect(out).toEqual([0x42]);
    expect(result.outcome).toEqual({ reason: 'debug-exit', exitCode: 9 });
  });

  it('lets the timer devices raise what is due on a poll-timers kick', () => {
    const { control } = fakeControl();
    const rec = new RecordingDevices();
    const vcpu = new FakeVcpu([{ kick: true, before: () => control.request('poll-timers', 0n) }, KICK, io('out', 0xf4, [0])]);
    runVcpu(vcpu, devicesOf(rec), control);
    expect([rec.timerPolls, rec.polls]).toEqual([1, 0]);
  });

  it('fetches no registers for exits whose device does not ask for them', () => {
    const board = createPcBoard({ serial: [UNCONNECTED_SERIAL] });
    const vcpu = new FakeVcpu([io('out', 0x3f8, [0x42]), io('in', 0x3fd, 1), io('out', 0x80, [1]), io('out', 0xf4, [0])]);
    runVcpu(vcpu, localDevices(board), fakeControl().control);
    expect([vcpu.getRegsCalls, vcpu.setRegsCalls.length]).toEqual([0, 0]);
  });

  it("gives vmport the vCPU's registers: CMD_GETVERSION answers in EAX and EBX, written back before the next KVM_RUN", () => {
    const board = createPcBoard({ serial: [UNCONNECTED_SERIAL], memory: new Uint8Array(0x100000) });
    const backdoor = io('in', VMPORT_PORT, 4, 4);
    const vcpu = new FakeVcpu([backdoor, io('out', 0x80, [1]), io('out', 0xf4, [0])]);
    vcpu.regs.rax = BigInt(VMPORT_MAGIC);
    vcpu.regs.rcx = BigInt(VMPORT_CMD_GETVERSION);
    vcpu.regs.rdx = BigInt(VMPORT_PORT);
    runVcpu(vcpu, localDevices(board), fakeControl().control);
    // Fetched once for the backdoor exit, written once; the port write after it fetched nothing.
    expect([vcpu.getRegsCalls, vcpu.setRegsCalls.length]).toEqual([1, 1]);
    expect(vcpu.setRegsCalls[0]).toMatchObject({ rax: BigInt(VMPORT_VERSION), rbx: BigInt(VMPORT_MAGIC), rdx: BigInt(VMPORT_PORT) });
    // The `in` data is the answer too: KVM merges it into the RAX it finds.
    expect([...(backdoor as { data: Uint8Array }).data]).toEqual([VMPORT_VERSION, 0, 0, 0]);
  });

  it('ends with poweroff when the guest writes SLP_EN with the S5 type to PM1a control', () => {
    const board = createPcBoard({ serial: [UNCONNECTED_SERIAL] });
    const s5 = (SLP_TYP_S5 << PM1_CNT_SLP_TYP_SHIFT) | PM1_CNT_SLP_EN;
    const vcpu = new FakeVcpu([io('out', PM_IO_BASE + PM1_CNT, [s5 & 0xff, s5 >> 8], 2)]);
    expect(runVcpu(vcpu, localDevices(board), fakeControl().control).outcome).toEqual({ reason: 'poweroff' });
  });

  it('hands a sleeping machine to the suspend hook, which resumes it or ends the run', () => {
    const rec = new RecordingDevices();
    const seen: string[] = [];
    const vcpu = new FakeVcpu([io('out', 0x604, [0x00, 0x24], 2), io('out', 0x80, [1]), io('out', 0x604, [0x00, 0x24], 2)]);
    const original = rec.ioHandler;
    rec.ioHandler = (access) => {
      const name = original(access);
      if (access.port === 0x604) rec.suspended = true;
      return name;
    };
    let sleeps = 0;
    const result = runVcpu(vcpu, devicesOf(rec), fakeControl().control, {
      suspend: (stopRequested) => {
        seen.push(`suspend ${stopRequested()}`);
        rec.suspended = false; // woken: the chipset has left S3
        return ++sleeps === 1 ? undefined : { reason: 'reset' };
      },
    });
    expect(seen).toEqual(['suspend false', 'suspend false']);
    expect(result.outcome).toEqual({ reason: 'reset' });
    expect(result.exits.io).toBe(3);
  });
});

/** The fake vCPU with the addon's fast path, modelled: it takes exits to unassigned ports itself. */
class NativeUnassignedVcpu extends FakeVcpu {
  fastRuns = 0;
  runPastUnassigned(unassigned: Uint8Array, handled: Float64Array): boolean {
    this.fastRuns++;
    for (;;) {
      if (!this.run()) return false;
      const exit = this.exit();
      if (exit.kind !== 'io' || (unassigned[exit.port >>> 3]! & (1 << (exit.port & 7))) === 0) return true;
      if (exit.direction === 'in') exit.data.fill(0xff);
      handled[0]!++;
    }
  }
}

describe('runVcpu with the native side taking exits to unassigned ports', () => {
  const board = (): ExitDevices => {
    const rec = new RecordingDevices();
    const devices = devicesOf(rec);
    // Only 0x3f8-0x3ff and 0xf4 are decoded.
    const map = new Uint8Array(8192).fill(0xff);
    map[0x3f8 >>> 3] = 0;
    map[0xf4 >>> 3]! &= ~(1 << (0xf4 & 7));
    return Object.assign(devices, { unassignedPorts: map, rec });
  };

  it('hands only the decoded ports to the devices and counts every I/O exit', () => {
    const devices = board();
    const probe = io('in', 0x80, 1);
    const vcpu = new NativeUnassignedVcpu([
      io('out', 0x80, [1]),
      probe,
      io('out', 0x3f8, [0x41]),
      io('out', 0x80, [2]),
      KICK,
      io('out', 0xf4, [3]),
    ]);
    const result = runVcpu(vcpu, devices, fakeControl().control);
    expect(result.outcome).toEqual({ reason: 'debug-exit', exitCode: 3 });
    const rec = (devices as unknown as { rec: RecordingDevices }).rec;
    expect(rec.io.map((a) => a.port)).toEqual([0x3f8, 0xf4]);
    expect([...(probe as { data: Uint8Array }).data]).toEqual([0xff]);
    expect(result.exits).toMatchObject({ io: 5, intr: 1 });
    expect(vcpu.fastRuns).toBeGreaterThan(0);
  });

  it('shows an observer every exit: the fast path is off while one watches', () => {
    const devices = board();
    const seen: number[] = [];
    const observer = { timed: false, afterExit: (exit: VcpuExit) => void (exit.kind === 'io' && seen.push(exit.port)) };
    const vcpu = new NativeUnassignedVcpu([io('out', 0x80, [1]), io('out', 0x3f8, [0x41]), io('out', 0xf4, [0])]);
    const result = runVcpu(vcpu, devices, fakeControl().control, { observer });
    expect(seen).toEqual([0x80, 0x3f8, 0xf4]);
    expect(vcpu.fastRuns).toBe(0);
    expect(result.exits.io).toBe(3);
  });
});
