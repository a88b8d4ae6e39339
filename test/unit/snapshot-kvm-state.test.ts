/**
 * The KVM state a snapshot saves, against the real /dev/kvm through the low-level API
 * (src/kvm/ioctls.ts): a small 64-bit guest runs to a point, its state is captured, put back
 * into a fresh VM, and there it goes on exactly as the original does. Each piece is also read
 * back from the new VM and compared with what was saved.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { applyBootState } from '../../src/arch/x86/boot-cpu.js';
import { vcpuCpuid } from '../../src/arch/x86/cpuid.js';
import { pcIrqRoutes } from '../../src/arch/x86/irq-routing.js';
import { BOOT_MSRS, MSR_IA32_SYSENTER_CS, MSR_IA32_TSC, MSR_STAR } from '../../src/arch/x86/msrs.js';
import { KVM_IDENTITY_MAP_ADDRESS, KVM_TSS_ADDRESS } from '../../src/kvm/constants.js';
import { Kvm, type VcpuFd, type VmFd } from '../../src/kvm/ioctls.js';
import { native } from '../../src/kvm/native.js';
import {
  APIC_SVR,
  APIC_SVR_ENABLE,
  APIC_TIMER_DIVIDE,
  APIC_TPR,
  decodeClock,
  decodeDebugRegs,
  decodeIoapic,
  decodeLapic,
  decodePic,
  decodePit,
  decodeVcpuEvents,
  decodeXcrs,
  encodeDebugRegs,
} from '../../src/kvm/state.js';
import { decodeRegs } from '../../src/kvm/structs.js';
import { KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_UNINITIALIZED, KVM_PIT_SPEAKER_DUMMY, type CpuidEntry } from '../../src/kvm/x86.js';
import {
  captureVcpu,
  captureVm,
  restoreVcpu,
  restoreVm,
  stateSupport,
  type StateSupport,
  type VcpuSnapshot,
} from '../../src/snapshot/machine-state.js';
import type { RamMapping } from '../../src/snapshot/memory.js';
import { MSR_IA32_TSC_DEADLINE, MSR_MTRR_CAP, MSR_TSC_AUX, MsrProbe, readable, snapshotMsrIndices } from '../../src/snapshot/msrs.js';
import {
  captureMachine,
  checkHost,
  mapSnapshotMemory,
  openSnapshot,
  restoreHost,
  restoreMachine,
  writeSnapshot,
} from '../../src/snapshot/snapshot.js';
import { UsageError } from '../../src/errors.js';
import { assertKvm, describeKvm, requireKvm } from '../integration/helpers.js';

const RAM = 1 << 20;
const CODE = 0x1000;
const RESULT = 0x500;
const SOURCE = 0x600;
/** CR4.OSFXSR: SSE instructions allowed (the OS saves their state with FXSAVE/XSAVE). */
const CR4_OSFXSR = 1n << 9n;
const EXIT_PORT = 0x10;

/**
 * 64-bit code at 0x1000: XMM3 loaded from 0x600, the PIT programmed from inside the guest (the
 * in-kernel 8254 takes the port writes without an exit), `out 0x10` with 1 (the snapshot point),
 * then XMM3 stored at 0x500 before `out 0x10` with 2: what lands at 0x500 came through the
 * XSAVE area. (SSE moves, not x87 arithmetic: on nested hosts KVM's instruction emulator may run
 * this code, and it has no x87.)
 */
const GUEST = new Uint8Array([
  0xf3,
  0x0f,
  0x6f,
  0x1c,
  0x25,
  SOURCE & 0xff,
  SOURCE >> 8,
  0,
  0, // movdqu xmm3, [0x600]
  0xb0,
  0x34,
  0xe6,
  0x43, // mov al, 0x34; out 0x43, al   PIT channel 0, lobyte/hibyte, mode 2
  0xb0,
  0xa9,
  0xe6,
  0x40, // mov al, 0xa9; out 0x40, al
  0xb0,
  0x04,
  0xe6,
  0x40, // mov al, 0x04; out 0x40, al   count 0x04a9 = 1193
  0xb0,
  0x01,
  0xe6,
  EXIT_PORT, // mov al, 1; out 0x10, al   <- snapshot here
  0xf3,
  0x0f,
  0x7f,
  0x1c,
  0x25,
  RESULT & 0xff,
  RESULT >> 8,
  0,
  0, // movdqu [0x500], xmm3
  0xb0,
  0x02,
  0xe6,
  EXIT_PORT, // mov al, 2; out 0x10, al
  0xeb,
  0xfe, //             jmp $
]);
/** What XMM3 carries across the snapshot. */
const PATTERN = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);

interface Machine {
  vm: VmFd;
  vcpus: VcpuFd[];
  memory: Uint8Array;
  ram: RamMapping;
  close(): void;
}

let kvm: Kvm;
let supported: CpuidEntry[];
const open: Machine[] = [];

/** A VM as tskvm builds one (TSS, identity map, RAM in slot 0, irqchip, GSI routing, PIT), with `cpus` vCPUs. */
function machine(cpus = 1, irqchip = true): Machine {
  const vm = kvm.createVm();
  vm.setTssAddr(KVM_TSS_ADDRESS);
  vm.setIdentityMapAddr(KVM_IDENTITY_MAP_ADDRESS);
  const addr = native().mmapAnonymous(RAM, true);
  vm.setUserMemoryRegion(0, 0, RAM, addr);
  if (irqchip) {
    vm.createIrqchip();
    vm.setGsiRouting(pcIrqRoutes());
    vm.createPit2(KVM_PIT_SPEAKER_DUMMY);
  }
  const vcpus = Array.from({ length: cpus }, (_, id) => {
    const fd = vm.createVcpu(id);
    fd.setCpuid2(vcpuCpuid(supported, id));
    fd.setMsrs(BOOT_MSRS);
    return fd;
  });
  const memory = new Uint8Array(native().externalBuffer(addr, RAM));
  const m: Machine = {
    vm,
    vcpus,
    memory,
    ram: { hostAddr: addr, size: RAM, bytes: memory },
    close() {
      for (const v of vcpus) v.close();
      vm.close();
      native().munmap(addr, RAM);
    },
  };
  open.push(m);
  return m;
}

/** Puts vCPU 0 at the guest code in long mode, as tskvm boots an ELF64. */
function boot(m: Machine): void {
  m.memory.set(GUEST, CODE);
  m.memory.set(PATTERN, SOURCE);
  const v = m.vcpus[0]!;
  applyBootState(v, m.memory, { mode: 'long', rip: BigInt(CODE), regs: {} });
  const sregs = v.getSregs();
  sregs.cr4 |= CR4_OSFXSR;
  v.setSregs(sregs);
}

/** Runs vCPU 0 to its next `out 0x10`; returns the byte written. */
function runToExit(v: VcpuFd): number {
  for (;;) {
    if (!v.run()) continue;
    const exit = v.kvmRun.exit();
    if (exit.kind !== 'io')
      throw new Error(`unexpected exit ${JSON.stringify(exit, (_k, x: unknown) => (typeof x === 'bigint' ? `0x${x.toString(16)}` : x))}`);
    if (exit.port === EXIT_PORT) return exit.data[0]!;
  }
}

/** Completes the pending `out` (KVM finishes it on the next entry) without running further, as a pause does. */
function settle(v: VcpuFd): void {
  v.kvmRun.immediateExit = true;
  expect(v.run()).toBe(false);
  v.kvmRun.immediateExit = false;
}

function resultAt(m: Machine): number[] {
  return Array.from(m.memory.subarray(RESULT, RESULT + PATTERN.length));
}

describeKvm('KVM state for snapshots (real /dev/kvm)', () => {
  let support: StateSupport;
  afterAll(() => kvm?.close());

  beforeAll(() => {
    if (requireKvm) assertKvm();
    kvm = Kvm.open();
    supported = kvm.supportedCpuid();
    const probe = kvm.createVm();
    support = stateSupport(probe);
    probe.close();
  });

  let probe: MsrProbe;
  beforeEach(() => {
    probe = new MsrProbe(kvm, true);
  });
  afterEach(() => {
    probe.close();
    while (open.length) open.pop()!.close();
  });

  it('reports what this host offers: XSAVE with its size, XCRs', () => {
    expect(support.xsave).toBe(true);
    expect(support.xsaveSize).toBeGreaterThanOrEqual(4096);
    expect(support.xcrs).toBe(true);
  });

  it('a guest restored into a fresh VM goes on exactly as the original', () => {
    const a = machine();
    boot(a);
    expect(runToExit(a.vcpus[0]!)).toBe(1);
    settle(a.vcpus[0]!);
    const vcpu = captureVcpu(kvm, a.vcpus[0]!, 0, support, true, probe);
    const vmState = captureVm(a.vm, true);
    const memory = a.memory.slice();

    // The original goes on to its end.
    expect(runToExit(a.vcpus[0]!)).toBe(2);
    expect(resultAt(a)).toEqual(Array.from(PATTERN));

    const b = machine();
    b.memory.set(memory);
    restoreVm(b.vm, vmState, true);
    expect(restoreVcpu(b.vcpus[0]!, vcpu, support, true)).toEqual([]);
    // XMM3 came back through the XSAVE area (the copy of memory at 0x500 was still zero).
    expect(resultAt(b)).toEqual(new Array(16).fill(0));
    expect(runToExit(b.vcpus[0]!)).toBe(2);
    expect(resultAt(b)).toEqual(Array.from(PATTERN));
  });

  it('every piece reads back from the new VM as it was saved', () => {
    const a = machine(2);
    boot(a);
    expect(runToExit(a.vcpus[0]!)).toBe(1);
    settle(a.vcpus[0]!);
    const v0 = a.vcpus[0]!;
    // Give each piece a value of its own, as a guest would have left it.
    v0.setDebugRegs(encodeDebugRegs({ db: [0x1000n, 0x2000n, 0x3000n, 0x4000n], dr6: 0xffff0ff0n, dr7: 0x455n, flags: 0n }));
    const lapic = v0.getLapic();
    const lapicView = new DataView(lapic.buffer);
    lapicView.setUint32(APIC_TPR, 0x20, true);
    lapicView.setUint32(APIC_SVR, APIC_SVR_ENABLE | 0xff, true);
    lapicView.setUint32(APIC_TIMER_DIVIDE, 0xb, true);
    v0.setLapic(lapic);
    v0.setMsrs([
      { index: MSR_IA32_SYSENTER_CS, data: 0x10n },
      { index: MSR_STAR, data: 0x0023_0010_0000_0000n },
      { index: MSR_TSC_AUX, data: 7n },
    ]);

    const saved = [0, 1].map((id) => captureVcpu(kvm, a.vcpus[id]!, id, support, true, probe));
    const vmState = captureVm(a.vm, true);
    expect(saved[1]!.mpState).toBe(KVM_MP_STATE_UNINITIALIZED); // an AP waiting for INIT/SIPI
    expect(saved[0]!.mpState).toBe(KVM_MP_STATE_RUNNABLE);

    const b = machine(2);
    b.memory.set(a.memory);
    restoreVm(b.vm, vmState, true);
    saved.forEach((s, id) => expect(restoreVcpu(b.vcpus[id]!, s, support, true)).toEqual([]));
    const again = [0, 1].map((id) => captureVcpu(kvm, b.vcpus[id]!, id, support, true, probe));

    for (const id of [0, 1]) {
      const before = saved[id]!;
      const after = again[id]!;
      expect(after.cpuid).toEqual(before.cpuid);
      expect(after.mpState).toBe(before.mpState);
      expect(decodeRegs(after.regs)).toEqual(decodeRegs(before.regs));
      expect(after.sregs).toEqual(before.sregs);
      expect(after.fpu).toEqual(before.fpu);
      expect(decodeXcrs(after.xcrs!)).toEqual(decodeXcrs(before.xcrs!));
      expect(decodeDebugRegs(after.debugRegs)).toEqual(decodeDebugRegs(before.debugRegs));
      expect(decodeVcpuEvents(after.events)).toEqual(decodeVcpuEvents(before.events));
      // The timer's current count runs on its own; every other register of the page is as saved.
      expect({ ...decodeLapic(after.lapic!), timer: undefined }).toEqual({ ...decodeLapic(before.lapic!), timer: undefined });
      // The same MSRs, the same values, except the TSC, which has moved on by the time it is read again.
      expect(after.msrs.map((m) => m.index)).toEqual(before.msrs.map((m) => m.index));
      const timeless = (s: VcpuSnapshot): [number, bigint][] =>
        s.msrs.filter((m) => m.index !== MSR_IA32_TSC).map((m) => [m.index, m.data]);
      expect(timeless(after)).toEqual(timeless(before));
      const tsc = (s: VcpuSnapshot): bigint => s.msrs.find((m) => m.index === MSR_IA32_TSC)!.data;
      expect(tsc(after) >= tsc(before)).toBe(true);
    }
    const lapic0 = decodeLapic(again[0]!.lapic!);
    expect(lapic0).toMatchObject({ tpr: 0x20, softwareEnabled: true, spuriousVector: 0xff });
    expect(lapic0.timer.divide).toBe(0xb);
    expect(decodeDebugRegs(again[0]!.debugRegs).dr7).toBe(0x455n);
    expect(again[0]!.msrs.find((m) => m.index === MSR_TSC_AUX)?.data).toBe(7n);

    const vmAgain = captureVm(b.vm, true);
    // The PIT keeps running (the guest programmed it), so IRQ0 may be requested by now; the rest is as saved.
    const withoutIrq0 = (bytes: Uint8Array): ReturnType<typeof decodePic> => {
      const pic = decodePic(bytes);
      return { ...pic, irr: pic.irr & ~1, lastIrr: pic.lastIrr & ~1 };
    };
    expect(withoutIrq0(vmAgain.irqchip!.picMaster)).toEqual(withoutIrq0(vmState.irqchip!.picMaster));
    expect(decodePic(vmAgain.irqchip!.picSlave)).toEqual(decodePic(vmState.irqchip!.picSlave));
    expect(decodeIoapic(vmAgain.irqchip!.ioapic)).toEqual(decodeIoapic(vmState.irqchip!.ioapic));
    // The guest's own PIT programming came across: channel 0, mode 2, count 1193.
    const pit = decodePit(vmAgain.pit!);
    expect(pit.channels[0]).toMatchObject({ count: 1193, mode: 2, rwMode: 3 });
    const { countLoadTime: _t0, ...ch0 } = pit.channels[0];
    const { countLoadTime: _t1, ...ch0Saved } = decodePit(vmState.pit!).channels[0];
    expect(ch0).toEqual(ch0Saved);
    // kvmclock goes on from the saved value, not from zero.
    expect(decodeClock(vmAgain.clock).clock >= decodeClock(vmState.clock).clock).toBe(true);
  });

  it('saves only MSRs this vCPU reads and that can be set back; MTRRcap is read-only and left out', () => {
    const a = machine();
    const indices = snapshotMsrIndices(kvm, a.vcpus[0]!);
    expect(indices).not.toContain(MSR_MTRR_CAP);
    expect(indices).toEqual(expect.arrayContaining([MSR_IA32_TSC, MSR_STAR, MSR_TSC_AUX, MSR_IA32_TSC_DEADLINE, 0x2ff, 0x200, 0x250]));
    expect(new Set(indices).size).toBe(indices.length);
    // All of them, at once, onto a fresh vCPU.
    const values = a.vcpus[0]!.getMsrs(indices);
    expect(values.length).toBe(indices.length);
    const b = machine();
    expect(() => b.vcpus[0]!.setMsrs(values)).not.toThrow();
    // readable() skips what KVM_GET_MSRS refuses and goes on after it.
    const NOT_AN_MSR = 0x4000_0fff;
    expect(readable(a.vcpus[0]!, [MSR_STAR, NOT_AN_MSR, MSR_IA32_SYSENTER_CS]).map((m) => m.index)).toEqual([
      MSR_STAR,
      MSR_IA32_SYSENTER_CS,
    ]);
  });

  it('through a file: written, checked, memory mapped copy-on-write, and the guest goes on', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tskvm-snapshot-kvm-'));
    try {
      const a = machine();
      boot(a);
      expect(runToExit(a.vcpus[0]!)).toBe(1);
      settle(a.vcpus[0]!);
      const file = path.join(dir, 'guest.snap');
      const machineConfig = { memorySize: RAM, cpus: 1, irqchip: true, board: {} };
      const stats = await writeSnapshot(
        file,
        captureMachine({ kvm, vm: a.vm, vcpus: a.vcpus, irqchip: true, machine: machineConfig, devices: { none: {} } }),
        a.ram,
      );
      // The code page, the XMM source page and the boot GDT and page tables: a handful of pages of 256.
      expect(stats.pages).toBeGreaterThanOrEqual(3);
      expect(stats.pages).toBeLessThan(16);

      const opened = openSnapshot(file, restoreHost(kvm));
      const b = machine();
      try {
        checkHost(opened, { ...restoreHost(kvm), cpuid: b.vcpus[0]!.getCpuid2() });
        expect(opened.snapshot.machine).toEqual(machineConfig);
        expect(opened.snapshot.devices).toEqual({ none: {} });
        mapSnapshotMemory(opened, b.ram);
        expect(restoreMachine(file, opened.snapshot, { vm: b.vm, vcpus: b.vcpus, irqchip: true })).toEqual([]);
      } finally {
        opened.file.close();
      }
      expect(runToExit(b.vcpus[0]!)).toBe(2);
      expect(resultAt(b)).toEqual(Array.from(PATTERN));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a snapshot for more vCPUs than the host allows, or CPU features it lacks', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tskvm-snapshot-kvm-'));
    try {
      const a = machine(2);
      const file = path.join(dir, 'two.snap');
      await writeSnapshot(
        file,
        captureMachine({
          kvm,
          vm: a.vm,
          vcpus: a.vcpus,
          irqchip: true,
          machine: { memorySize: RAM, cpus: 2, irqchip: true, board: {} },
          devices: {},
        }),
        a.ram,
      );
      const b = machine();
      const host = { ...restoreHost(kvm), cpuid: b.vcpus[0]!.getCpuid2() };
      expect(() => openSnapshot(file, host).file.close()).not.toThrow();
      const refuse = (h: typeof host): string => {
        try {
          openSnapshot(file, h).file.close();
        } catch (err) {
          expect(err).toBeInstanceOf(UsageError);
          return (err as Error).message;
        }
        throw new Error('expected a refusal');
      };
      expect(refuse({ ...host, maxVcpus: 1 })).toMatch(/needs 2 vCPUs and this host allows at most 1 \(KVM_CAP_MAX_VCPUS\)/);
      // A host whose CPUID has no SSE2 (leaf 1 EDX bit 26) and no AVX (leaf 1 ECX bit 28).
      const poorer = host.cpuid.map((e) => (e.function === 1 ? { ...e, edx: e.edx & ~(1 << 26), ecx: e.ecx & ~(1 << 28) } : e));
      const reopened = openSnapshot(file);
      const saved = reopened.snapshot.vcpus[0]!.cpuid.find((e) => e.function === 1)!;
      reopened.file.close();
      const reason = refuse({ ...host, cpuid: poorer });
      expect(reason).toMatch(/CPU features this host's KVM cannot give it: .*sse2/);
      if (saved.ecx & (1 << 28)) expect(reason).toMatch(/avx/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('without an in-kernel irqchip: no LAPIC, PIC or PIT is saved, MSRs that need a LAPIC are left out, and the guest goes on', () => {
    const a = machine(1, false);
    boot(a);
    expect(runToExit(a.vcpus[0]!)).toBe(1);
    settle(a.vcpus[0]!);
    const bare = new MsrProbe(kvm, false);
    let vcpu: VcpuSnapshot;
    try {
      vcpu = captureVcpu(kvm, a.vcpus[0]!, 0, support, false, bare);
    } finally {
      bare.close();
    }
    const vmState = captureVm(a.vm, false);
    expect(vcpu.lapic).toBeUndefined();
    expect(vmState.irqchip).toBeUndefined();
    expect(vmState.pit).toBeUndefined();
    // kvm's async page-fault vector MSR reads fine but takes no write without an in-kernel LAPIC.
    const MSR_KVM_ASYNC_PF_INT = 0x4b564d06;
    if (snapshotMsrIndices(kvm, a.vcpus[0]!).includes(MSR_KVM_ASYNC_PF_INT)) {
      expect(vcpu.msrs.map((m) => m.index)).not.toContain(MSR_KVM_ASYNC_PF_INT);
    }
    const b = machine(1, false);
    b.memory.set(a.memory);
    restoreVm(b.vm, vmState, false);
    expect(restoreVcpu(b.vcpus[0]!, vcpu, support, false)).toEqual([]);
    expect(runToExit(b.vcpus[0]!)).toBe(2);
    expect(resultAt(b)).toEqual(Array.from(PATTERN));
  });

  it('refuses an XSAVE area larger than this host has, naming both sizes', () => {
    const a = machine();
    const s = captureVcpu(kvm, a.vcpus[0]!, 0, support, true, probe);
    const b = machine();
    const big = { ...s, fpu: { kind: 'xsave' as const, bytes: new Uint8Array(support.xsaveSize + 4096) } };
    expect(() => restoreVcpu(b.vcpus[0]!, big, support, true)).toThrow(
      new RegExp(`XSAVE area is ${support.xsaveSize + 4096} bytes; this host's is ${support.xsaveSize}`),
    );
  });
});
