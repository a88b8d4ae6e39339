/**
 * tskvm-qemu as harnesses run it: a process started with qemu-system-x86_64's options, on
 * /dev/kvm. Checks QEMU's exit statuses ((v << 1) | 1 for isa-debug-exit, 0 for a reset with
 * -no-reboot and for a triple fault, 0 with "terminating on signal 15" for SIGTERM, 124 from
 * timeout(1)), guest output on stdout only (-serial stdio) or in a file (-serial file:), and
 * that -cpu -feature and vendor= change the CPUID the guest reads.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { assemble } from '../../dist/testing/index.js';
import { assertKvm, describeKvm, guest, requireKvm, ROOT } from './helpers.js';

const QEMU = path.join(ROOT, 'bin', 'tskvm-qemu.js');
/** What kvm-unit-tests' x86/run passes before -kernel. */
const KUT_ARGS = [
  '--no-reboot',
  '-nodefaults',
  '-device',
  'pc-testdev',
  '-device',
  'isa-debug-exit,iobase=0xf4,iosize=0x4',
  '-display',
  'none',
  '-serial',
  'stdio',
  '-device',
  'pci-testdev',
  '-machine',
  'accel=kvm',
];

/**
 * Reads CPUID and exits with a bit per finding: 1 x2apic (leaf 1 ECX 21), 2 pcid (leaf 1 ECX 17),
 * 4 invpcid (leaf 7 EBX 10), 8 vendor GenuineIntel (leaf 0 EBX "Genu").
 */
const CPUID_PROBE = `
  .set DEBUG_EXIT, 0xf4
  .set GENU, 0x756e6547
  xor %esi, %esi
  mov $1, %eax
  cpuid
  bt $21, %ecx
  jnc 1f
  or $1, %esi
1:
  bt $17, %ecx
  jnc 2f
  or $2, %esi
2:
  mov $7, %eax
  xor %ecx, %ecx
  cpuid
  bt $10, %ebx
  jnc 3f
  or $4, %esi
3:
  xor %eax, %eax
  cpuid
  cmp $GENU, %ebx
  jne 4f
  or $8, %esi
4:
  mov %esi, %eax
  mov $DEBUG_EXIT, %dx
  outl %eax, %dx
5:
  cli
  hlt
  jmp 5b
`;

interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command args`, killing it with `signal` once stdout ends with `killAfter`. */
function run(command: string, args: string[], options: { killAfter?: string; signal?: NodeJS.Signals } = {}): Promise<Ran> {
  const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    if (options.killAfter !== undefined && stdout.endsWith(options.killAfter)) child.kill(options.signal ?? 'SIGTERM');
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

const qemu = (args: string[], options?: { killAfter?: string; signal?: NodeJS.Signals }): Promise<Ran> =>
  run(process.execPath, [QEMU, ...args], options);

let tmp: string;
let probe: string;
beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'tskvm-qemu-'));
  probe = path.join(tmp, 'cpuid.bin');
  writeFileSync(probe, await assemble(CPUID_PROBE, { name: 'cpuid.S' }));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describeKvm('tskvm-qemu on KVM', () => {
  it('exits (v << 1) | 1 for a debug-exit write of v, with the guest on stdout and nothing on stderr', async () => {
    if (requireKvm) assertKvm();
    const r = await qemu([...KUT_ARGS, '-kernel', guest('hello')]);
    expect(r).toEqual({ status: (42 << 1) | 1, stdout: 'Hello from a tskvm guest!\n', stderr: '' });
  });

  it('refuses a FIFO as -kernel or -hda at once (status 1), never waiting for a writer', async () => {
    const fifo = path.join(tmp, 'kernel.fifo');
    execFileSync('mkfifo', [fifo]);
    const kernel = await qemu([...KUT_ARGS, '-kernel', fifo]);
    expect([kernel.status, kernel.stdout]).toEqual([1, '']);
    expect(kernel.stderr).toMatch(/is a FIFO, not a regular file/);
    const disk = await qemu(['-display', 'none', '-hda', fifo]);
    expect([disk.status, disk.stdout]).toEqual([1, '']);
    expect(disk.stderr).toMatch(/is not a regular file/);
  });

  it('writes COM1 to a file with -serial file:PATH, and nothing to stdout', async () => {
    const file = path.join(tmp, 'com1.txt');
    const r = await qemu(['-nodefaults', '-display', 'none', '-serial', `file:${file}`, '-kernel', guest('hello')]);
    expect([r.status, r.stdout, r.stderr]).toEqual([85, '', '']);
    expect(readFileSync(file, 'utf8')).toBe('Hello from a tskvm guest!\n');
  });

  it('exits 0 when the guest resets with -no-reboot; without it, 0 and a warning', async () => {
    expect(await qemu([...KUT_ARGS, '-kernel', guest('reset')])).toEqual({ status: 0, stdout: 'resetting\n', stderr: '' });
    const r = await qemu(['-nodefaults', '-display', 'none', '-serial', 'stdio', '-kernel', guest('reset')]);
    expect([r.status, r.stdout]).toEqual([0, 'resetting\n']);
    expect(r.stderr).toMatch(/^tskvm-qemu: warning: the guest reset; tskvm cannot reboot a guest/);
  });

  it('takes a triple fault as a reset: 0, with the crash on stderr', async () => {
    const r = await qemu([...KUT_ARGS, '-kernel', guest('triple')]);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/guest crashed: triple fault \(KVM_EXIT_SHUTDOWN\)/);
  });

  it('ends at SIGTERM as QEMU does: 0, and "terminating on signal 15"', async () => {
    const r = await qemu([...KUT_ARGS, '-kernel', guest('spin')], { killAfter: 'spinning\n' });
    expect([r.status, r.stdout]).toEqual([0, 'spinning\n']);
    expect(r.stderr).toBe('tskvm-qemu: terminating on signal 15\n');
  });

  it('ends promptly under timeout(1), which then exits 124 (as run_tests.sh runs it)', async () => {
    // SIGALRM is timeout's own timer signal: sent once the guest spins, it is the time running out, without waiting for it.
    const args = ['-k', '5s', '--foreground', '600s', process.execPath, QEMU, ...KUT_ARGS, '-kernel', guest('spin')];
    const r = await run('timeout', args, { killAfter: 'spinning\n', signal: 'SIGALRM' });
    // 124: timeout's SIGTERM ended the run; 137 would mean it had to send SIGKILL after 5 s.
    expect([r.status, r.stdout, r.stderr]).toEqual([124, 'spinning\n', 'tskvm-qemu: terminating on signal 15\n']);
  });

  it('takes features out of CPUID with -cpu -feature, and sets vendor=', async () => {
    const host = await qemu([...KUT_ARGS, '-cpu', 'host', '-kernel', probe]);
    expect(host.status! & 1).toBe(1);
    const seen = host.status! >> 1;
    const r = await qemu([...KUT_ARGS, '-cpu', 'max,-x2apic,-pcid,-invpcid,vendor=GenuineIntel', '-kernel', probe]);
    expect(r).toEqual({ status: (((seen & ~7) | 8) << 1) | 1, stdout: '', stderr: '' });
    const amd = await qemu([...KUT_ARGS, '-cpu', 'host,vendor=AuthenticAMD', '-kernel', probe]);
    expect(amd.status).toBe(((seen & ~8) << 1) | 1);
  });

  it('boots a disk image through the BIOS, writing it as QEMU does unless -snapshot', async () => {
    const disk = path.join(tmp, 'edd.img');
    const original = readFileSync(path.join(ROOT, 'guests', 'build', 'bios-edd.disk.img'));
    writeFileSync(disk, original);
    const kept = await qemu(['-nographic', '-drive', `file=${disk},format=raw`, '-snapshot']);
    // The guest writes LBA 2 with 0x5A bytes, reads it back, prints "edd ok" and writes 0x42 to 0xf4.
    expect([kept.status, kept.stdout.includes('edd ok'), kept.stderr]).toEqual([(0x42 << 1) | 1, true, '']);
    expect(readFileSync(disk).equals(original)).toBe(true);
    const written = await qemu(['-nographic', '-hda', disk]);
    expect(written.status).toBe((0x42 << 1) | 1);
    expect(
      readFileSync(disk)
        .subarray(2 * 512, 3 * 512)
        .every((b) => b === 0x5a),
    ).toBe(true);
    const floppy = await qemu(['-nographic', '-hda', path.join(ROOT, 'guests', 'build', 'bios-stages.floppy.img')]);
    expect([floppy.status, floppy.stdout]).toEqual([1, '']);
    expect(floppy.stderr).toMatch(/^tskvm-qemu: -hda .* is not supported by tskvm \(its size \(1474560 bytes\) is a floppy's/);
  });

  it('warns about a named model and a feature the guest cannot have, and still runs', async () => {
    const r = await qemu([...KUT_ARGS, '-cpu', 'qemu64,+vmx', '-kernel', guest('hello')]);
    expect(r.status).toBe(85);
    expect(r.stderr.split('\n').filter(Boolean)).toEqual([
      expect.stringMatching(/^tskvm-qemu: warning: -cpu qemu64: tskvm gives the guest this host's CPU/),
      expect.stringMatching(
        /^tskvm-qemu: warning: host doesn't support requested feature: CPUID\.01H:ECX\.vmx \[bit 5\] \(tskvm gives guests no VMX/,
      ),
    ]);
    const enforced = await qemu([...KUT_ARGS, '-cpu', 'host,+vmx,enforce', '-kernel', guest('hello')]);
    expect([enforced.status, enforced.stdout]).toEqual([1, '']);
    expect(enforced.stderr).toMatch(/^tskvm-qemu: -cpu host,enforce: host doesn't support requested feature: CPUID\.01H:ECX\.vmx/);
  });

  it("answers kvm-unit-tests' probe runs: a missing kernel, too many vCPUs, a refused option (status 1)", async () => {
    const missing = await qemu([...KUT_ARGS, '-kernel', '_NO_FILE_4Uhere_', '-smp', '2']);
    expect(missing).toEqual({
      status: 1,
      stdout: '',
      stderr: "tskvm-qemu: could not open kernel file '_NO_FILE_4Uhere_': No such file or directory\n",
    });
    const smp = await qemu([...KUT_ARGS, '-kernel', '_NO_FILE_4Uhere_', '-smp', '1000']);
    expect(smp.status).toBe(1);
    expect(smp.stderr).toMatch(/^tskvm-qemu: Invalid SMP CPUs 1000\. The max CPUs supported by machine 'pc-i440fx-7\.2' is \d+\n$/);
    const iommu = await qemu([...KUT_ARGS, '-kernel', '_NO_FILE_4Uhere_', '-device', 'intel-iommu']);
    expect([iommu.status, iommu.stdout]).toEqual([1, '']);
    expect(iommu.stderr).toMatch(/^tskvm-qemu: -device intel-iommu is not supported by tskvm \(/);
  });
});

it('refuses a Linux bzImage, which tskvm would take for a flat binary', async () => {
  const bz = path.join(tmp, 'bzImage');
  const bytes = Buffer.alloc(0x400);
  bytes.write('HdrS', 0x202, 'latin1');
  writeFileSync(bz, bytes);
  const r = await qemu([...KUT_ARGS, '-kernel', bz]);
  expect([r.status, r.stdout]).toEqual([1, '']);
  expect(r.stderr).toMatch(
    /^tskvm-qemu: -kernel .*bzImage is not supported by tskvm \(it is a Linux bzImage, and tskvm has no Linux boot protocol/,
  );
});

it('prints -h, -version and -device ? without /dev/kvm', async () => {
  const help = await qemu(['-h']);
  expect(help.status).toBe(0);
  expect(help.stdout.split('\n')[0]).toMatch(/^QEMU emulator version 7\.2\.0 \(tskvm \d+\.\d+\.\d+\)$/);
  const version = await qemu(['--version']);
  expect(version.stdout.split('\n')[0]).toBe(help.stdout.split('\n')[0]);
  const devices = await qemu(['-device', '?']);
  expect([devices.status, devices.stderr]).toEqual([0, '']);
  expect(devices.stdout).toContain('name "pc-testdev", bus ISA');
});
