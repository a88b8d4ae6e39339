/**
 * Issue 14's PC parity on /dev/kvm, with small kernels of our own (guests/*.mb.S; each header
 * gives QEMU 7.2's output on the kvm-unit-tests command line): an HPET comparator interrupt that
 * wakes a `hlt` (the timer deadline path, with one vCPU and with a board thread), ACPI S5 through
 * PM1a control ending the run as `poweroff`, S3 resumed in real mode at the FACS waking vector
 * after an RTC alarm, QEMU's vmport backdoor answering in EAX/EBX (the
 * lazily fetched registers, also from an SMP vCPU thread), and the PICs, PIT and IVT a multiboot
 * kernel finds as SeaBIOS leaves them.
 */
import path from 'node:path';
import { expect, it } from 'vitest';
import { runGuest } from '../../dist/index.js';
import { assertKvm, describeKvm, ROOT } from './helpers.js';

const kernel = (name: string): string => path.join(ROOT, 'guests', 'build', `${name}.elf`);
/** Generous: the guests finish in well under a second; a missed interrupt shows as reason 'timeout'. */
const TIMEOUT_MS = 30_000;

describeKvm('PC parity with QEMU (issue 14)', () => {
  it('wakes a guest waiting in hlt for an HPET comparator (legacy replacement on IRQ0)', async () => {
    assertKvm();
    const r = await runGuest({ image: kernel('hpetwait'), timeoutMs: TIMEOUT_MS });
    expect([r.reason, r.exitCode, r.serial]).toEqual(['debug-exit', 0, 'hpet irq0: after comparator\nhpet interrupts: 1\n']);
  });

  it('wakes it with two vCPUs too, the devices in the board thread', async () => {
    const r = await runGuest({ image: kernel('hpetwait'), cpus: 2, timeoutMs: TIMEOUT_MS });
    expect([r.reason, r.exitCode, r.serial]).toEqual(['debug-exit', 0, 'hpet irq0: after comparator\nhpet interrupts: 1\n']);
  });

  it('powers off through PM1a control (SLP_EN with the S5 type): reason poweroff', async () => {
    const r = await runGuest({ image: kernel('poweroff'), timeoutMs: TIMEOUT_MS });
    expect([r.reason, r.exitCode, r.serial]).toEqual(['poweroff', 0, 'powering off\n']);
  });

  it('powers off with two vCPUs (the stop crosses from the board thread)', async () => {
    const r = await runGuest({ image: kernel('poweroff'), cpus: 2, timeoutMs: TIMEOUT_MS });
    expect([r.reason, r.serial]).toEqual(['poweroff', 'powering off\n']);
  });

  it('suspends to RAM (S3) and resumes at the FACS waking vector in real mode when the RTC alarm fires', async () => {
    const r = await runGuest({ image: kernel('s3resume'), timeoutMs: TIMEOUT_MS });
    expect([r.reason, r.exitCode, r.serial]).toEqual(['debug-exit', 0x33, 'suspending\n']);
  });

  it("does both with the exit loop on the caller's thread (what `tskvm run` uses): the HPET deadline ends a slice, S3 sleeps without blocking", async () => {
    const hpet = await runGuest({ image: kernel('hpetwait'), timeoutMs: TIMEOUT_MS, vcpuThread: 'caller' });
    expect([hpet.reason, hpet.exitCode, hpet.serial]).toEqual(['debug-exit', 0, 'hpet irq0: after comparator\nhpet interrupts: 1\n']);
    const s3 = await runGuest({ image: kernel('s3resume'), timeoutMs: TIMEOUT_MS, vcpuThread: 'caller' });
    expect([s3.reason, s3.exitCode, s3.serial]).toEqual(['debug-exit', 0x33, 'suspending\n']);
  });

  it('answers the vmport backdoor in EAX and EBX: CMD_GETVERSION returns the magic in EBX', async () => {
    const expected = 'getversion: eax=00000006 ebx=564d5868\ngetramsize: ebx=00001177 eax=10000000\n';
    for (const cpus of [1, 2]) {
      const r = await runGuest({ image: kernel('vmport'), memory: '256M', cpus, timeoutMs: TIMEOUT_MS });
      expect([cpus, r.reason, r.exitCode, r.serial]).toEqual([cpus, 'debug-exit', 0, expected]);
    }
  });

  it('hands a multiboot kernel the PICs and PIT as SeaBIOS leaves them', async () => {
    const r = await runGuest({ image: kernel('picstate'), timeoutMs: TIMEOUT_MS });
    expect(r.serial).toBe('pic masks: master=b8 slave=8e\npit0 mode: 2\nelcr: 00 0c\nirq3 vector: 0b\nirq13 vector: 75\n');
    expect([r.reason, r.exitCode]).toEqual(['debug-exit', 0]);
  });
});
