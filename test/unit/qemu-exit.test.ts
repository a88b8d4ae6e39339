/**
 * tskvm-qemu's exit statuses and probe answers, as harnesses read them: (v << 1) | 1 for
 * isa-debug-exit, 0 for a reset, power-off or signal (with QEMU's "terminating on signal N"),
 * `-h`'s first line parsed as kvm-unit-tests parses it, `-device '?'` in QEMU's format.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { RunResult } from '../../src/machine/result.js';
import { debugExitStatus, QEMU_EXIT_KVM_FAILED, QEMU_EXIT_OK, QEMU_EXIT_OUTPUT, qemuExitStatus } from '../../src/qemu/exit-status.js';
import {
  accelListText,
  cpuListText,
  DEVICES,
  deviceListText,
  helpText,
  machineListText,
  QEMU_VERSION,
  versionText,
} from '../../src/qemu/texts.js';

type Ending = Pick<RunResult, 'reason' | 'exitCode' | 'crash'>;
const ended = (reason: RunResult['reason'], exitCode = 0, crash?: string): Ending => ({
  reason,
  exitCode,
  ...(crash === undefined ? {} : { crash: { description: crash, state: '' } }),
});

describe('qemuExitStatus', () => {
  it('is (v << 1) | 1, in 8 bits, for a debug-exit write of v', () => {
    expect(debugExitStatus(0)).toBe(1);
    expect(debugExitStatus(1)).toBe(3);
    expect(debugExitStatus(0x7f)).toBe(0xff);
    expect(debugExitStatus(0x80)).toBe(1);
    expect(debugExitStatus(0xffffffff)).toBe(0xff);
    for (const v of [0, 1, 2, 21, 63, 127]) {
      expect(qemuExitStatus({ result: ended('debug-exit', v), noReboot: true, tskvmStatus: v })).toEqual({ status: (v << 1) | 1 });
    }
  });

  it('is 0 for a reset: quietly with -no-reboot, with a warning without it', () => {
    expect(qemuExitStatus({ result: ended('reset'), noReboot: true, tskvmStatus: 0 })).toEqual({ status: QEMU_EXIT_OK });
    const without = qemuExitStatus({ result: ended('reset'), noReboot: false, tskvmStatus: 0 });
    expect(without.status).toBe(QEMU_EXIT_OK);
    expect(without.message).toMatch(/^warning: the guest reset; tskvm cannot reboot a guest/);
  });

  it('is a reset for a triple fault, and 125 for what KVM cannot run', () => {
    expect(qemuExitStatus({ result: ended('crash', 0, 'triple fault (KVM_EXIT_SHUTDOWN)'), noReboot: true, tskvmStatus: 125 })).toEqual({
      status: QEMU_EXIT_OK,
    });
    expect(
      qemuExitStatus({ result: ended('crash', 0, 'triple fault (KVM_EXIT_SHUTDOWN)'), noReboot: false, tskvmStatus: 125 }).message,
    ).toMatch(/a triple fault resets a PC/);
    for (const why of [
      'KVM internal error: emulation (KVM_EXIT_INTERNAL_ERROR, suberror 1)',
      'unhandled exit FAIL_ENTRY (hardware exit reason 0x21)',
    ]) {
      expect(qemuExitStatus({ result: ended('crash', 0, why), noReboot: true, tskvmStatus: 125 })).toEqual({
        status: QEMU_EXIT_KVM_FAILED,
      });
    }
  });

  it("is 0 with QEMU's line for a signal, 0 for Ctrl-A x", () => {
    expect(qemuExitStatus({ result: ended('stopped'), stoppedBy: 'SIGTERM', noReboot: true, tskvmStatus: 143 })).toEqual({
      status: QEMU_EXIT_OK,
      message: 'terminating on signal 15',
    });
    expect(qemuExitStatus({ result: ended('stopped'), stoppedBy: 'SIGINT', noReboot: true, tskvmStatus: 130 }).message).toBe(
      'terminating on signal 2',
    );
    expect(qemuExitStatus({ result: ended('stopped'), stoppedBy: 'quit', noReboot: true, tskvmStatus: 0 })).toEqual({
      status: QEMU_EXIT_OK,
    });
  });

  it("is 0 for a halt and a power-off, and keeps tskvm run's 3 when output was lost", () => {
    expect(qemuExitStatus({ result: ended('halt'), noReboot: true, tskvmStatus: 0 })).toEqual({ status: QEMU_EXIT_OK });
    expect(qemuExitStatus({ result: { reason: 'poweroff' as RunResult['reason'], exitCode: 0 }, noReboot: true, tskvmStatus: 0 })).toEqual({
      status: QEMU_EXIT_OK,
    });
    expect(qemuExitStatus({ result: ended('debug-exit', 0), noReboot: true, tskvmStatus: 3 })).toEqual({ status: QEMU_EXIT_OUTPUT });
    // A signal's status wins over lost output, as in tskvm run.
    expect(qemuExitStatus({ result: ended('stopped'), stoppedBy: 'SIGTERM', noReboot: true, tskvmStatus: 143 }).status).toBe(QEMU_EXIT_OK);
  });
});

describe('what the probes print', () => {
  it("-h's first line reads as kvm-unit-tests reads it (IFS='[ .]' read -r _ _ _ MAJOR MINOR MICRO rest)", () => {
    const first = helpText('0.1.0').split('\n')[0]!;
    expect(first).toBe(`QEMU emulator version ${QEMU_VERSION} (tskvm 0.1.0)`);
    expect(versionText('0.1.0').split('\n')[0]).toBe(first);
    const script = `IFS='[ .]' read -r _ _ _ MAJOR MINOR MICRO rest <<<"$1"; echo "$MAJOR $MINOR $MICRO"`;
    expect(execFileSync('bash', ['-c', script, 'bash', first], { encoding: 'utf8' })).toBe('7 2 0\n');
    expect(helpText('0.1.0')).toMatch(/QEMU/);
  });

  it("lists -device '?' in QEMU's format, with the names run_tests.sh greps for", () => {
    const text = deviceListText();
    for (const name of ['"pc-testdev"', '"pci-testdev"', '"isa-debug-exit"']) expect(text).toContain(`name ${name}`);
    expect(text.split('\n')[0]).toBe('Misc devices:');
    for (const line of text.trim().split('\n').slice(1)) expect(line).toMatch(/^name "[\w-]+", bus (ISA|PCI)(, desc "[^"]+")?$/);
    expect(text.trim().split('\n')).toHaveLength(DEVICES.length + 1);
    // kvm-unit-tests' older test device is not there, so it uses pc-testdev.
    expect(text).not.toContain('"testdev"');
  });

  it('lists the CPUs, machines and accelerators tskvm has', () => {
    expect(cpuListText()).toMatch(/^Available CPUs:\nx86 host .*\nx86 max /);
    expect(cpuListText()).toMatch(/ x2apic /);
    expect(machineListText()).toMatch(/^Supported machines are:\npc +Standard PC \(i440FX \+ PIIX, 1996\) \(alias of pc-i440fx-7\.2\)\n/);
    expect(machineListText()).not.toMatch(/q35/);
    expect(accelListText()).toBe('Accelerators supported in QEMU binary:\nkvm\n');
  });
});
