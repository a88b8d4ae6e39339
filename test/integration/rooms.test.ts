/**
 * What the machine's stages and the vCPU lifecycle guarantee, on /dev/kvm: the builder builds
 * a machine from a validated config and releases it on failure; input reaches a halted,
 * interrupt-driven guest at once; a pause made while the vCPUs start is kept; a KvmError from a
 * vCPU thread keeps its class and code.
 */
import { readdirSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { expect, it } from 'vitest';
import { KvmError, releaseIdleResources, startGuest, UsageError, Vm } from '../../dist/index.js';
import { buildMachine } from '../../dist/machine/builder.js';
import { readGuestFiles } from '../../dist/machine/guest-files.js';
import { validateRunOptions } from '../../dist/machine/options.js';
import { native } from '../../dist/kvm/native.js';
import { assertKvm, describeKvm, guest, ROOT } from './helpers.js';
import path from 'node:path';

const openFds = (): number => readdirSync('/proc/self/fd').length;
const kernel = (name: string): string => path.join(ROOT, 'guests', 'build', name);

describeKvm('the machine builder', () => {
  it('builds a PC from a validated config: RAM, vCPUs, firmware tables, the image and the boot registers', async () => {
    assertKvm();
    const config = validateRunOptions({ image: guest('hello'), memory: '2M', cpus: 2 });
    const machine = buildMachine(config, await readGuestFiles(config));
    try {
      expect(machine.vcpus.map((v) => v.id)).toEqual([0, 1]);
      expect(machine.vcpus.map((v) => v.state)).toEqual(['created', 'created']);
      expect(machine.vm.memory.size).toBe(2 * 2 ** 20);
      expect(machine.loaded.format).toBe('flat');
      // Copies: guest RAM is unmapped once the VM closes, so nothing may keep a view of it.
      const memory = machine.vm.memory.bytes;
      const image = (await readGuestFiles(config)).image!.bytes;
      expect(Buffer.from(memory.slice(0x10000, 0x10000 + image.length)).equals(Buffer.from(image))).toBe(true); // kvmtool's load address
      expect(memory[0x400]! | (memory[0x401]! << 8)).toBe(0x3f8); // BDA: COM1's base
      expect(Buffer.from(memory.slice(0xf0000, 0x100000)).indexOf('_MP_')).toBeGreaterThanOrEqual(0); // MP table
      const { regs, sregs } = { regs: machine.vcpus[0]!.getRegs(), sregs: machine.vcpus[0]!.getSregs() };
      expect([sregs.cs.selector, regs.rip, regs.rsp]).toEqual([0x1000, 0n, 0x8000n]);
      expect(machine.firmware).toMatchObject({ ramSize: 2 * 2 ** 20, cpus: 2 });
    } finally {
      await machine.vm.close();
    }
  });

  it('releases everything it built when a later stage fails', async () => {
    await releaseIdleResources();
    const before = openFds();
    const config = validateRunOptions({ image: Buffer.alloc(100), format: 'bootsector', cpus: 3 });
    expect(() => buildMachine(config, { image: { bytes: Buffer.alloc(100), name: 'short' }, modules: [] })).toThrow(/exactly 512/);
    await releaseIdleResources();
    expect(openFds()).toBe(before);
  });
});

describeKvm('a run whose vCPU thread builds the board while the machine loads', () => {
  it('ends the held run and closes the VM when the load fails, and the next run goes', async () => {
    assertKvm();
    await releaseIdleResources();
    const before = openFds();
    // Fits in RAM but not above the flat load address: the loader refuses it after the VM and
    // its vCPU exist, with the job already in a vCPU thread.
    for (let i = 0; i < 5; i++) {
      await expect(startGuest({ image: Buffer.alloc(2 ** 20 - 4096), memory: '1M' })).rejects.toThrow(/does not fit/);
    }
    const good = await startGuest({ image: guest('hello'), timeoutMs: 30_000 });
    const r = await good.result;
    expect([r.reason, r.exitCode, r.serial, r.format]).toEqual(['debug-exit', 42, 'Hello from a tskvm guest!\n', 'flat']);
    await releaseIdleResources();
    expect(openFds()).toBe(before);
  });

  it('pauses and stops a run whose vCPU thread may still be building its board', async () => {
    const run = await startGuest({ image: guest('spin'), timeoutMs: 30_000 });
    await run.pause();
    expect(run.state).toBe('paused');
    run.stop();
    expect((await run.result).reason).toBe('stopped');
  });
});

describeKvm('the vCPU lifecycle', () => {
  it('tells a UART about input that arrives while the guest is halted waiting for its interrupt', async () => {
    const input = new PassThrough();
    let output = '';
    let sawReady!: () => void;
    const ready = new Promise<void>((resolve) => (sawReady = resolve));
    const run = await startGuest({
      image: kernel('irqecho.elf'),
      serialInput: input,
      timeoutMs: 30_000,
      onSerial: (chunk) => {
        output += chunk.toString();
        if (output.includes('ready\n')) sawReady();
      },
    });
    await ready;
    await new Promise((resolve) => setTimeout(resolve, 300)); // halted with IF=1, nothing pending
    input.end(Buffer.from('late\0'));
    const r = await run.result;
    expect([r.reason, r.exitCode, r.serial]).toEqual(['debug-exit', 4, 'irqecho ready\nlate']);
  });

  it('keeps a pause requested while several vCPUs are still starting', async () => {
    const run = await startGuest({ image: guest('spin'), cpus: 2, timeoutMs: 30_000 });
    await run.pause();
    expect(run.state).toBe('paused');
    const first = run.registers();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(run.registers().regs).toEqual(first.regs); // nothing runs while paused
    expect(first.sregs.cs.selector).toBe(0x1000);
    run.resume();
    run.stop();
    expect((await run.result).reason).toBe('stopped');
  });

  it('brings a KvmError raised in a vCPU thread back as a KvmError with its code', async () => {
    const vm = Vm.create({ memorySize: 2 ** 20, irqchip: false });
    try {
      const vcpu = vm.createVcpu();
      native().close(vcpu.fd.fd); // KVM_RUN on a closed fd fails with EBADF in the vCPU thread
      const err = await vcpu.run([]).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(KvmError);
      expect(err).not.toBeInstanceOf(UsageError);
      expect((err as KvmError).code).toBe('EKVM');
      expect((err as KvmError).syscall).toBe('KVM_RUN');
      expect((err as KvmError).message).toMatch(/^KVM_RUN failed: E[A-Z]+ \(errno \d+\)/);
    } finally {
      await vm.close();
    }
  });
});
