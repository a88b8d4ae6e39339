/**
 * Issue 4's PC machine on /dev/kvm: multiboot and ELF kernels (guests/*.mb.S, *.elf64.S), the
 * firmware tables they read, interrupts through the in-kernel PIC/IOAPIC, COM2-COM4, and bad
 * kernels. Where QEMU is installed, a kernel's output under QEMU is compared with tskvm's.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { runGuest } from '../../dist/index.js';
import { assertKvm, describeKvm, ROOT, runCli } from './helpers.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'tskvm-kernels-'));
const kernel = (name: string): string => path.join('guests', 'build', name); // relative: it shows in the command line
const MODULE_TEXT = 'hello module\n';

describeKvm('multiboot and ELF kernels', () => {
  it('passes the command line, memory map and modules in the multiboot info block', async () => {
    assertKvm();
    const module = path.join(tmp, 'module.txt');
    writeFileSync(module, MODULE_TEXT);
    const r = await runCli(['run', '--append', 'hello world', '--initrd', `${module} modarg`, kernel('mbinfo.elf')]);
    expect(r.stderr).toBe('');
    expect(r.stdout.toString()).toBe(
      [
        `cmdline: ${kernel('mbinfo.elf')} hello world`,
        'mem_lower: 639 KiB',
        'mem_upper: 15360 KiB',
        'mmap: base=0x0000000000000000 len=0x000000000009fc00 type=1',
        'mmap: base=0x000000000009fc00 len=0x0000000000000400 type=2',
        'mmap: base=0x00000000000f0000 len=0x0000000000010000 type=2',
        'mmap: base=0x0000000000100000 len=0x0000000000f00000 type=1',
        `module: ${module} modarg size=${MODULE_TEXT.length}`,
        'module text: hello module',
        '',
      ].join('\n'),
    );
    expect(r.status).toBe(0);
  });

  it('sizes the memory map from --memory', async () => {
    const r = await runGuest({ image: kernel('mbinfo.elf'), memory: '64M', cmdline: '' });
    expect(r.serial).toContain('mem_upper: 64512 KiB\n');
    expect(r.serial).toContain('mmap: base=0x0000000000100000 len=0x0000000003f00000 type=1\n');
  });

  it('loads an a.out-kludge multiboot kernel', async () => {
    const r = await runGuest({ image: kernel('mbaout.bin'), format: 'multiboot' });
    expect([r.format, r.serial, r.reason, r.exitCode]).toEqual(['multiboot', 'a.out kludge ok\n', 'debug-exit', 0]);
  });

  it('answers fw_cfg like QEMU: signature, RAM size, CPU count', async () => {
    const r = await runGuest({ image: kernel('fwcfg.elf'), memory: '32M' });
    expect(r.serial).toBe('fw_cfg signature: QEMU\nram: 32 MiB\ncpus: 1\n');
    expect(r.exitCode).toBe(0);
  });

  it('describes the CPUs and the IOAPIC in an MP table', async () => {
    const r = await runGuest({ image: kernel('mptable.elf') });
    expect(r.serial).toBe('mp: cpus=1 ioapics=1\n');
    expect(r.exitCode).toBe(1);
  });

  it('enters a 64-bit ELF in long mode', async () => {
    const r = await runGuest({ image: kernel('long64.elf') });
    expect(r.format).toBe('elf');
    expect(r.serial).toBe('Hello from long mode\nrip=0x0000000000100000\n');
    expect(r.exitCode).toBe(64);
  });
});

describeKvm('interrupts through the in-kernel irqchip', () => {
  it('counts PIT ticks through the PIC and then the IOAPIC', async () => {
    const r = await runGuest({ image: kernel('ticks.elf'), timeoutMs: 60_000 });
    expect(r.serial).toBe('ticks: 20\nioapic ticks: 20\n');
    expect([r.reason, r.exitCode]).toEqual(['debug-exit', 40]);
  });

  it('echoes serial input with RDA and THRE interrupts only', async () => {
    const input = Buffer.from('interrupt-driven echo, every byte\n'.repeat(20));
    const r = await runGuest({ image: kernel('irqecho.elf'), serialInput: Buffer.concat([input, Buffer.from([0])]), timeoutMs: 60_000 });
    expect(r.serial).toBe(`irqecho ready\n${input.toString()}`);
    expect([r.reason, r.exitCode]).toEqual(['debug-exit', input.length]);
  });
});

describeKvm('COM2-COM4', () => {
  // mov $'X',%al; mov $0x2f8,%dx; out %al,%dx; mov $0,%al; out %al,$0xf4
  const com2Writer = new Uint8Array([0xb0, 0x58, 0xba, 0xf8, 0x02, 0xee, 0xb0, 0x00, 0xe6, 0xf4]);

  it('routes COM2 to its own sink in the library', async () => {
    const com2: Buffer[] = [];
    const r = await runGuest({ image: com2Writer, serialPorts: { COM2: { output: (chunk) => void com2.push(chunk) } } });
    expect(Buffer.concat(com2).toString()).toBe('X');
    expect(r.serial).toBe('');
  });

  it('routes COM2 to a file and COM1 to null from the CLI', async () => {
    const image = path.join(tmp, 'com2.bin');
    const out = path.join(tmp, 'com2.txt');
    writeFileSync(image, com2Writer);
    const r = await runCli(['run', '--serial', 'COM1=null', '--serial', `COM2=file:${out}`, image]);
    expect([r.status, r.stdout.length, r.stderr]).toEqual([0, 0, '']);
    expect(readFileSync(out, 'utf8')).toBe('X');
  });

  it('rejects bad routes with exit status 2', async () => {
    for (const [spec, message] of [
      ['COM5=stdio', /invalid --serial 'COM5=stdio'/],
      ['COM2=tcp:1234', /invalid --serial 'COM2=tcp:1234'/],
      ['COM2=stdio', /only one port can be on stdio, but COM1 and COM2/],
    ] as const) {
      const r = await runCli(['run', '--serial', spec, path.join(ROOT, kernel('fwcfg.elf'))]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });
});

describeKvm('bad kernels exit 2 with the problem named', () => {
  const bad = async (bytes: Uint8Array, args: string[], message: RegExp): Promise<void> => {
    const file = path.join(tmp, `bad-${Math.random().toString(36).slice(2)}`);
    writeFileSync(file, bytes);
    const r = await runCli(['run', ...args, file]);
    expect(r.status).toBe(2);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toMatch(message);
  };

  it('a truncated ELF', async () => {
    const elf = readFileSync(path.join(ROOT, kernel('long64.elf')));
    await bad(elf.subarray(0, 100), [], /is truncated/);
  });

  it('a multiboot header with a bad checksum', async () => {
    const elf = Buffer.from(readFileSync(path.join(ROOT, kernel('mbinfo.elf'))));
    const at = elf.indexOf(Buffer.from([0x02, 0xb0, 0xad, 0x1b]));
    expect(at).toBeGreaterThan(0);
    elf.writeUInt32LE((elf.readUInt32LE(at + 8) + 1) >>> 0, at + 8);
    await bad(elf, [], /bad checksum/);
  });

  it('segments outside guest RAM', async () => {
    await bad(readFileSync(path.join(ROOT, kernel('long64.elf'))), ['--memory', '1M'], /outside guest RAM.*raise --memory/);
  });

  it('--append on an image that is not a multiboot kernel', async () => {
    await bad(readFileSync(path.join(ROOT, 'guests', 'build', 'hello.bin')), ['--append', 'x'], /--append needs a multiboot kernel/);
  });
});

const qemu = ['/usr/bin/qemu-system-x86_64', '/usr/local/bin/qemu-system-x86_64'].find((p) => existsSync(p));
// .ci/run installs QEMU and sets TSKVM_REQUIRE_QEMU=1: there, a missing QEMU fails instead of skipping.
if (!qemu && process.env.TSKVM_REQUIRE_QEMU === '1') throw new Error('TSKVM_REQUIRE_QEMU=1 but qemu-system-x86_64 is not installed');

describeKvm('the same output as QEMU', () => {
  // The command line of issue 4: qemu-system-x86_64 -kernel K -serial stdio -device isa-debug-exit.
  const qemuArgs = ['-accel', 'tcg', '-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot', '-net', 'none', '-m', '16M'];
  const runQemu = async (file: string): Promise<{ stdout: string; code: number }> => {
    try {
      const { stdout } = await promisify(execFile)(
        qemu!,
        [...qemuArgs, '-device', 'isa-debug-exit,iobase=0xf4,iosize=4', '-kernel', file],
        { cwd: ROOT, timeout: 60_000 },
      );
      return { stdout, code: 0 };
    } catch (err) {
      const e = err as { stdout: string; code: number };
      return { stdout: e.stdout, code: e.code };
    }
  };

  it.skipIf(!qemu).each([
    ['fwcfg.elf', 0],
    ['ticks.elf', 40],
    ['mbaout.bin', 0],
  ])('%s prints the same under `qemu-system-x86_64 -kernel` and `tskvm run`', async (name, exitCode) => {
    const fromQemu = await runQemu(kernel(name));
    // isa-debug-exit makes QEMU exit with (value << 1) | 1; tskvm exits with the value itself.
    expect(fromQemu.code).toBe((exitCode << 1) | 1);
    const r = await runCli(['run', '--memory', '16M', kernel(name)]);
    expect(r.stdout.toString()).toBe(fromQemu.stdout);
    expect(r.status).toBe(exitCode);
  });
});
