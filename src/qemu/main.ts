/**
 * tskvm-qemu: qemu-system-x86_64's command line (the part test harnesses use) over tskvm. Answers
 * -h, -version and the -device/-cpu/-machine/-accel lists at once, without loading KVM or the
 * machine; a run goes through `tskvm run`'s own code (run.ts). stdout carries the guest's serial
 * output only; every diagnostic goes to stderr as `tskvm-qemu: ...`, warnings as `tskvm-qemu:
 * warning: ...` (kvm-unit-tests takes any other stderr line with a status of 1 as a failure).
 */
import { UsageError } from '../errors.js';
import { destroyVmsAfterExit } from '../kvm/background-close.js';
import { KvmError } from '../kvm/error.js';
import { tskvmVersion } from '../snapshot/version.js';
import { hardExit } from '../cli/hard-exit.js';
import { flushStdout, stderr, stdout } from '../cli/stdio.js';
import { parseQemuArgs, type QemuInvocation } from './parse.js';
import { QEMU_EXIT_ERROR, QEMU_EXIT_OK } from './exit-status.js';
import { accelListText, cpuListText, deviceListText, helpText, machineListText, versionText } from './texts.js';

export const PROGRAM = 'tskvm-qemu';
/** Set when a write of the guest's output is still blocked: exit() must not wait for it. */
let exitWithoutJoin = false;

export async function qemuMain(argv: readonly string[]): Promise<number> {
  try {
    const invocation = parseQemuArgs(argv);
    if (invocation.kind === 'print') {
      stdout().write(printText(invocation.what));
      return QEMU_EXIT_OK;
    }
    const { runQemu } = await import('./run.js');
    destroyVmsAfterExit(); // one guest, then exit: the kernel destroys its VM once the process has gone
    const outcome = await runQemu(invocation.run, (line) => stderr().write(`${PROGRAM}: ${line}\n`));
    exitWithoutJoin = outcome.stuck;
    return outcome.status;
  } catch (err) {
    return reportError(err);
  }
}

function printText(what: Extract<QemuInvocation, { kind: 'print' }>['what']): string {
  switch (what) {
    case 'help':
      return helpText(tskvmVersion());
    case 'version':
      return versionText(tskvmVersion());
    case 'devices':
      return deviceListText();
    case 'cpus':
      return cpuListText();
    case 'machines':
      return machineListText();
    case 'accels':
      return accelListText();
  }
}

/** The library names its options (`options.cpus`); here they are QEMU's. */
const OPTION_NAMES: readonly [RegExp, string][] = [
  [/options\.memory\b/g, '-m'],
  [/options\.cpus\b/g, '-smp'],
  [/options\.cmdline\b/g, '-append'],
  [/options\.modules(\[\d+\])?/g, '-initrd'],
  [/options\.gdb(\.\w+)?\b/g, '-gdb'],
  [/options\.image\b/g, '-kernel'],
  [/options\.cpuid(\.\w+)?\b/g, '-cpu'],
  [/--memory\b/g, '-m'],
  [/--cpus\b/g, '-smp'],
  [/--append\b/g, '-append'],
  [/--initrd\b/g, '-initrd'],
  [/--gdb\b/g, '-gdb'],
  [/--serial\b/g, '-serial'],
];

export function qemuMessage(message: string): string {
  return OPTION_NAMES.reduce((text, [pattern, name]) => text.replace(pattern, name), message);
}

/** Every failure before or instead of a run is QEMU's status 1, with one line on stderr. */
function reportError(err: unknown): number {
  if (err instanceof UsageError || err instanceof KvmError) {
    stderr().write(`${PROGRAM}: ${qemuMessage(err.message)}\n`);
    return QEMU_EXIT_ERROR;
  }
  const e = err as Error & { code?: string };
  if (e?.code === 'EUSAGE' || e?.code === 'ENOADDON') {
    stderr().write(`${PROGRAM}: ${qemuMessage(e.message)}\n`);
    return QEMU_EXIT_ERROR;
  }
  stderr().write(`${PROGRAM}: internal error: ${e?.stack ?? String(err)}\n`);
  return QEMU_EXIT_ERROR;
}

/** Flushes stdout, then exits; without joining a write still blocked on a reader that stopped (see cli/hard-exit.ts). */
export async function exit(status: number): Promise<never> {
  if (exitWithoutJoin) hardExit(status);
  await flushStdout();
  process.exit(status);
}
