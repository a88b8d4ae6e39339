/**
 * A parsed qemu-system-x86_64 command line, run through `tskvm run`'s code (cli/run-command.ts):
 * the checks QEMU makes before it loads the kernel, in its order and words (the vCPU limit, then
 * `could not open kernel file` — kvm-unit-tests runs every test once with a kernel that does not
 * exist and skips it unless it sees that), the -cpu features checked against this host's KVM,
 * disk images sized as the kind of drive they were given for, then the run, and its end as
 * QEMU's exit status (exit-status.ts).
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { Command } from 'commander';
import { cpuidVendor, hasCpuidFeature, vcpuCpuid, type CpuidAdjustments } from '../arch/x86/cpuid.js';
import { floppyFormat } from '../bios/disk.js';
import { UsageError } from '../errors.js';
import { Kvm } from '../kvm/ioctls.js';
import { PC_MAX_VCPUS } from '../machine/options.js';
import { runCommand, type RunFlags } from '../cli/run-command.js';
import { featureLocation } from './cpu.js';
import { qemuExitStatus } from './exit-status.js';
import { refuse, type QemuDisk, type QemuRun } from './parse.js';
import { MACHINE_NAME } from './texts.js';

export interface QemuRunOutcome {
  status: number;
  /** A write is still blocked on a reader that stopped: exit without joining it. */
  stuck: boolean;
}

/** Runs the guest; `say` writes one diagnostic line to stderr (the caller adds the program's name). */
export async function runQemu(run: QemuRun, say: (line: string) => void): Promise<QemuRunOutcome> {
  checkCpuLimit(run.cpus);
  if (run.kernel !== undefined) checkKernel(run.kernel);
  else checkDisks(run.disks);
  for (const warning of run.warnings) say(`warning: ${warning}`);
  const cpuid = cpuidFor(run, say);
  const flags: RunFlags = {
    memory: `${run.memoryBytes}B`,
    cpus: String(run.cpus),
    serial: run.serial,
    format: 'auto',
    append: run.append,
    initrd: run.initrd,
    gdb: run.gdbPort === undefined ? undefined : String(run.gdbPort),
    gdbWait: run.gdbWait,
    memPrealloc: run.memPrealloc,
    disk: run.disks.map((disk) => disk.path),
    // QEMU's default order boots the hard disk first.
    ...(run.disks.length
      ? { boot: run.boot ?? (run.disks.some((d) => d.kind === 'hard disk') ? 'c' : 'a'), diskWrite: run.diskWrite }
      : {}),
    display: 'none',
    bios: true,
  };
  const outcome = await runCommand(run.kernel, flags, new Command('tskvm-qemu'), { cpuid });
  if (!outcome.result) return { status: outcome.status, stuck: outcome.stuck };
  const end = qemuExitStatus({ result: outcome.result, stoppedBy: outcome.stoppedBy, noReboot: run.noReboot, tskvmStatus: outcome.status });
  if (end.message) say(end.message);
  return { status: end.status, stuck: outcome.stuck };
}

/** QEMU's check and words: kvm-unit-tests reads the last word as the most vCPUs it may ask for. */
function checkCpuLimit(cpus: number): void {
  const kvmMax = Kvm.hostMaxVcpus();
  const max = typeof kvmMax === 'number' ? Math.min(kvmMax, PC_MAX_VCPUS) : PC_MAX_VCPUS;
  if (cpus > max) throw new UsageError(`Invalid SMP CPUs ${cpus}. The max CPUs supported by machine '${MACHINE_NAME}' is ${max}`);
}

/** Where a Linux bzImage says so: "HdrS" at 0x202 (the x86 boot protocol's setup header). */
const LINUX_HEADER_OFFSET = 0x202;
const LINUX_HEADER_MAGIC = 'HdrS';

/**
 * QEMU's `could not open kernel file 'X': No such file or directory`, before anything is created;
 * and a Linux bzImage refused (tskvm would take it for a flat binary).
 */
function checkKernel(path: string): void {
  let fd: number | undefined;
  try {
    // O_NONBLOCK: a FIFO with no writer must not hang the check (tskvm's own checks refuse it next).
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    const st = fstatSync(fd);
    if (st.isDirectory()) throw Object.assign(new Error('Is a directory'), { code: 'EISDIR' });
    if (!st.isFile()) return;
    const magic = Buffer.alloc(LINUX_HEADER_MAGIC.length);
    if (readSync(fd, magic, 0, magic.length, LINUX_HEADER_OFFSET) === magic.length && magic.toString('latin1') === LINUX_HEADER_MAGIC) {
      throw new UsageError(
        `-kernel ${path} is not supported by tskvm (it is a Linux bzImage, and tskvm has no Linux boot protocol: give a multiboot or ELF kernel)`,
        'EIMAGE',
      );
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'No such file or directory'
        : code === 'EACCES' || code === 'EPERM'
          ? 'Permission denied'
          : code === 'EISDIR'
            ? 'Is a directory'
            : (err as Error).message;
    throw new UsageError(`could not open kernel file '${path}': ${why}`, 'EIMAGE');
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Disks as the BIOS will see them: tskvm makes a disk a floppy by its size (a standard floppy
 * format), so a -fda of another size or a -hda of a floppy's size would become the other kind.
 */
function checkDisks(disks: readonly QemuDisk[]): void {
  for (const disk of disks) {
    let size: number;
    try {
      size = statSync(disk.path).size;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UsageError(
        `${disk.option}: could not open disk image ${disk.path}: ${code === 'ENOENT' ? 'No such file or directory' : code}`,
        'EIMAGE',
      );
    }
    const floppy = floppyFormat(size) !== undefined;
    if (disk.kind === 'floppy' && !floppy) {
      throw refuse(
        disk.option,
        `tskvm's BIOS takes a floppy by its size, and ${size} bytes is no floppy format (360K, 720K, 1.2M, 1.44M, 2.88M...)`,
      );
    }
    if (disk.kind === 'hard disk' && floppy) {
      throw refuse(disk.option, `its size (${size} bytes) is a floppy's, which tskvm's BIOS makes floppy drive 0x00: give it with -fda`);
    }
  }
}

/**
 * The library's cpuid option from -cpu: features to take out, the vendor when it is not the
 * host's. Each +feature the guest would still lack is QEMU's warning (an error with enforce).
 */
function cpuidFor(run: QemuRun, say: (line: string) => void): CpuidAdjustments {
  const { cpu } = run;
  const adjust: CpuidAdjustments = { remove: cpu.remove };
  if (cpu.require.length === 0 && cpu.vendor === undefined) return adjust;
  const kvm = Kvm.open();
  let supported;
  try {
    supported = kvm.supportedCpuid();
  } finally {
    kvm.close();
  }
  const guest = vcpuCpuid(supported, 0, adjust);
  const missing = cpu.require.filter((name) => !hasCpuidFeature(guest, name));
  for (const name of missing) {
    const why = name === 'vmx' ? ' (tskvm gives guests no VMX: it has no nested virtualisation)' : '';
    if (!cpu.enforce) say(`warning: host doesn't support requested feature: ${featureLocation(name)}${why}`);
    else throw new UsageError(`-cpu ${cpu.model},enforce: host doesn't support requested feature: ${featureLocation(name)}${why}`);
  }
  if (cpu.vendor !== undefined && cpu.vendor !== cpuidVendor(guest)) adjust.vendor = cpu.vendor;
  return adjust;
}
