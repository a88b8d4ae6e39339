/**
 * Timer interrupts that come without the guest touching a device (issue 14): the board reports
 * its timers' next deadline after an access to a timer device, the vCPU's control block carries
 * it to the main thread, whose watcher turns a passed deadline into a 'poll-timers' request (a
 * kick); the poll raises the interrupt. And HPET legacy replacement tells the in-kernel PIT to
 * stop driving IRQ0 (KVM_PIT_FLAGS_HPET_LEGACY, as QEMU sets it). No KVM, no timing: tests wait
 * for states, never for a length of time.
 */
import { describe, expect, it } from 'vitest';
import { createPcBoard, localDevices, setPitHpetLegacy, UNCONNECTED_SERIAL } from '../../src/board/pc-board.js';
import { HPET_ADDRESS } from '../../src/arch/x86/pc-layout.js';
import {
  HPET_CLK_PERIOD_NS,
  HPET_CFG_ENABLE,
  HPET_CFG_LEGACY,
  HPET_GEN_CONF,
  HPET_TIMER_BASE,
  HPET_TN_COMPARATOR,
  HPET_TN_INT_ENB,
} from '../../src/devices/hpet.js';
import type { ExitDevices } from '../../src/devices/dispatch.js';
import { KVM_PIT_FLAGS_HPET_LEGACY, KVM_PIT_STATE2_SIZE, KVM_STATE_LAYOUT } from '../../src/kvm/state.js';
import { VcpuControl, type ThreadOps } from '../../src/vcpu/control.js';

const until = async (done: () => boolean, what: string): Promise<void> => {
  for (let i = 0; i < 400 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  if (!done()) throw new Error(`never happened: ${what}`);
};

/**
 * 200 ms of the HPET's 100 MHz counter: long enough that a loaded machine cannot pass it between
 * arming the comparator and reading the deadline back (1 ms could, in CI).
 */
const COMPARATOR_TICKS = 20_000_000n;

function fakeControl(): { control: VcpuControl; kicks: bigint[] } {
  const kicks: bigint[] = [];
  const threads: ThreadOps = { self: () => 1n, kick: (runAddr) => void kicks.push(runAddr) };
  const control = new VcpuControl(undefined, threads);
  control.publishThread();
  return { control, kicks };
}

/** A 64-bit little-endian MMIO write to the HPET. */
function hpetWrite(devices: ExitDevices, offset: number, value: bigint): void {
  const data = new Uint8Array(8);
  new DataView(data.buffer).setBigUint64(0, value, true);
  devices.mmio({ physAddr: HPET_ADDRESS + offset, isWrite: true, data });
}

describe('the main thread watches the published timer deadline', () => {
  it('requests poll-timers (a kick) once a published deadline has passed', async () => {
    const { control, kicks } = fakeControl();
    const unwatch = control.watchDeadlines(0x1000n);
    try {
      control.publishDeadline(process.hrtime.bigint());
      await until(() => control.pending('poll-timers'), 'a poll-timers request');
      expect(kicks).toEqual([0x1000n]);
      expect(control.take('poll-timers')).toBe(true);
    } finally {
      unwatch();
    }
  });

  it('follows the deadline as it moves: a later one replaces an earlier one, and none means no request', async () => {
    const { control } = fakeControl();
    const unwatch = control.watchDeadlines(0n);
    try {
      const hour = 3600n * 1_000_000_000n;
      control.publishDeadline(process.hrtime.bigint() + hour);
      control.publishDeadline(undefined);
      expect(control.deadlineNs).toBeUndefined();
      // A past deadline after them still comes through: the watcher re-arms on every publication.
      control.publishDeadline(process.hrtime.bigint() - hour);
      await until(() => control.pending('poll-timers'), 'a poll-timers request');
    } finally {
      unwatch();
    }
  });

  it('makes no request once it stops watching', async () => {
    const { control } = fakeControl();
    control.watchDeadlines(0n)();
    control.publishDeadline(process.hrtime.bigint());
    // Another watcher, started after, sees the same deadline: by the time it has asked, the
    // stopped one would have asked too.
    const { control: other } = fakeControl();
    const unwatch = other.watchDeadlines(0n);
    other.publishDeadline(process.hrtime.bigint());
    await until(() => other.pending('poll-timers'), 'the live watcher');
    unwatch();
    expect(control.pending('poll-timers')).toBe(false);
  });
});

describe('the board reports its timers and raises their interrupts when polled', () => {
  it('reports an armed HPET comparator, and the poll after it raises IRQ0 in legacy mode (and tells the PIT)', async () => {
    const lines: [number, boolean][] = [];
    const legacy: boolean[] = [];
    const board = createPcBoard({
      serial: [UNCONNECTED_SERIAL],
      irqLine: (irq, level) => void lines.push([irq, level]),
      pitLegacy: (on) => void legacy.push(on),
    });
    const deadlines: (bigint | undefined)[] = [];
    const devices = localDevices(board, (deadline) => void deadlines.push(deadline));
    const timer0 = HPET_TIMER_BASE;
    hpetWrite(devices, timer0, HPET_TN_INT_ENB);
    hpetWrite(devices, timer0 + HPET_TN_COMPARATOR, COMPARATOR_TICKS);
    expect(deadlines).toEqual([]); // nothing armed while the counter is halted
    const before = process.hrtime.bigint();
    hpetWrite(devices, HPET_GEN_CONF, HPET_CFG_ENABLE | HPET_CFG_LEGACY);
    expect(legacy).toEqual([true]);
    expect(deadlines.length).toBe(1);
    expect(deadlines[0]).toBeGreaterThanOrEqual(before + COMPARATOR_TICKS * BigInt(HPET_CLK_PERIOD_NS));
    expect(lines.filter(([irq]) => irq === 0)).toEqual([]); // not yet
    await until(() => process.hrtime.bigint() > deadlines[0]!, 'the deadline passing');
    devices.pollTimers();
    // An edge on GSI 0 (timer 0's legacy route, IRQ0), and the new deadline reported: none (a one-shot).
    expect(lines.filter(([irq]) => irq === 0)).toEqual([
      [0, true],
      [0, false],
    ]);
    expect(deadlines.at(-1)).toBeUndefined();
    expect(deadlines.length).toBe(2);
  });

  it('reports only when the deadline moved, except after a poll', () => {
    const board = createPcBoard({ serial: [UNCONNECTED_SERIAL] });
    const deadlines: (bigint | undefined)[] = [];
    const devices = localDevices(board, (deadline) => void deadlines.push(deadline));
    hpetWrite(devices, HPET_GEN_CONF, 0n); // a timer device, nothing armed: no change from "none"
    devices.io({ direction: 'out', size: 1, port: 0x80, count: 1, data: Uint8Array.of(1) });
    expect(deadlines).toEqual([]);
    devices.pollTimers();
    expect(deadlines).toEqual([undefined]);
  });
});

describe('HPET legacy replacement and the in-kernel PIT', () => {
  it('sets and clears KVM_PIT_FLAGS_HPET_LEGACY, leaving the channels as they were', () => {
    let state = new Uint8Array(KVM_PIT_STATE2_SIZE).fill(0x5a);
    const flags = (): number => new DataView(state.buffer).getUint32(KVM_STATE_LAYOUT.pitFlags, true);
    new DataView(state.buffer).setUint32(KVM_STATE_LAYOUT.pitFlags, 0x2, true); // speaker data on
    const vm = { getPit2: () => state.slice(), setPit2: (bytes: Uint8Array) => void (state = bytes.slice()) };
    setPitHpetLegacy(vm, true);
    expect(flags()).toBe(0x2 | KVM_PIT_FLAGS_HPET_LEGACY);
    expect(state[0]).toBe(0x5a);
    setPitHpetLegacy(vm, false);
    expect(flags()).toBe(0x2);
  });
});
