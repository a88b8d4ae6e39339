/**
 * The tskvm command line: parse, call the library, map the result to an exit status. stdout
 * carries the guest's serial output and nothing else; every diagnostic goes to stderr.
 */
import { Command, CommanderError, Option } from 'commander';
import { UsageError } from '../errors.js';
import { KvmError } from '../kvm/error.js';
import { tskvmVersion } from '../snapshot/version.js';
import { backend } from '../kvm/native.js';
import { GUEST_FORMATS } from '../loader/guest.js';
import { DEFAULT_MEMORY } from '../machine/options.js';
import { addBiosOptions, BIOS_HELP } from './bios-options.js';
import { hardExit } from './hard-exit.js';
import { flushStdout, stderr, stdout } from './stdio.js';
import { addSnapshotOptions, SNAPSHOT_HELP } from './snapshot-options.js';
import { EXIT_HOST, EXIT_OK, EXIT_USAGE, runCommand, type RunFlags } from './run-command.js';

export { EXIT_CRASH, EXIT_HOST, EXIT_OK, EXIT_OUTPUT, EXIT_TIMEOUT, EXIT_USAGE, parseSerialRoutes } from './run-command.js';

/** Set when a write of the guest's output is still blocked (a reader that stopped): exit() must not wait for it. */
let exitWithoutJoin = false;

const HELP_AFTER = `
Exit status:
  v & 0xFF  the guest wrote v to the debug-exit port 0xF4
  0         the guest halted with nothing to wake it, or reset itself (0xFE to port 0x64),
            or --save wrote its snapshot
  124       --timeout passed
  125       the guest crashed (triple fault, KVM internal error, failed entry); stderr shows its registers
  130, 143  stopped by SIGINT (Ctrl-C) or SIGTERM
  3         the guest ran, but its output could not be written (stderr names the output and the guest's status)
  2         bad usage or a bad image
  1         this host cannot run KVM guests (stderr says what to do)

The machine: flat binaries load at 0x10000 and start in real mode at 1000:0000 (kvmtool's
convention); 512-byte images ending 0x55 0xAA are boot sectors, loaded at 0000:7C00 with DL=0x80.
COM1 (a 16550A at 0x3F8) is wired to stdin/stdout. On a terminal, Ctrl-C stops the guest and
Ctrl-A X quits (Ctrl-A Ctrl-A sends Ctrl-A).

Examples:
  tskvm run guests/build/hello.bin                 print a greeting, exit 42
  echo hi | tskvm run guests/build/echo.bin        COM1 input from a pipe
  tskvm run --timeout 2s guests/build/spin.bin     stop a guest that never ends (exit 124)
  tskvm run --result-json r.json guests/build/hello.bin
`;

export async function main(argv: readonly string[]): Promise<number> {
  const program = new Command('tskvm')
    .description('Run tiny x86 guests on Linux KVM (/dev/kvm).')
    // The version text loads the KVM backend: only when it is asked for.
    .version(argv.some((arg) => arg === '-V' || arg === '--version') ? await versionText() : 'tskvm', '-V, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => stdout().write(s),
      writeErr: (s) => stderr().write(s),
      outputError: (s, write) => write(`tskvm: ${s.replace(/^error: /, '')}`),
    })
    .showHelpAfterError('(run `tskvm run --help` for usage)');

  let status = EXIT_OK;
  addSnapshotOptions(addBiosOptions(program.command('run')))
    .description('boot IMAGE in a new VM, with COM1 on stdin/stdout, until the guest ends the run')
    .argument('[image]', 'flat binary, boot sector, ELF or multiboot kernel (optional with --disk or --restore)')
    .option('-m, --memory <size>', 'guest RAM, with suffix K, M or G (a bare number is MiB)', DEFAULT_MEMORY)
    .option('-c, --cpus <n>', 'vCPUs: vCPU 0 boots, the others wait for INIT/SIPI (default 1)')
    .option('-t, --timeout <duration>', 'stop the guest after this long: 500ms, 10s, 2m (a bare number is seconds)')
    .option('--serial-input <file>', 'feed COM1 from FILE instead of stdin')
    .addOption(new Option('-f, --format <format>', 'image format').choices(GUEST_FORMATS).default('auto'))
    .option('--append <cmdline>', "the kernel's command line (multiboot), as QEMU's -append")
    .option('--initrd <modules>', 'multiboot modules, as QEMU\'s -initrd: "file args,file2 args"')
    .option('--long-mode', 'start an ELF32 in 64-bit long mode (ELF64 always is)')
    .option('--serial <COMn=route>', 'route COM1-COM4: stdio, file:PATH or null (repeatable; default COM1=stdio)', collect, [])
    .option('--result-json <file>', 'write {reason, exitCode, durationMs, exits} to FILE at the end')
    .option(
      '--trace [kinds]',
      'one line per VM exit on stderr; kinds: io,mmio,hlt,shutdown,intr,internal-error,fail-entry,debug,unknown,all (default all but intr, the kicks)',
    )
    .option('--trace-file <file>', 'write the trace to FILE instead of stderr (implies --trace)')
    .option('--trace-port <ports>', 'trace only I/O exits on these ports: 0x3f8,0x2f8-0x2ff (implies --trace)')
    .option('--stats', 'at the end, a table of exits by reason and device, and where the time went')
    .option('--dump-on-exit', 'at the end, the vCPU registers, decoded, and the code at CS:RIP')
    .option('--step', 'run one instruction at a time, printing each with the registers it changed')
    .option('--mem-prealloc', 'commit all guest RAM up front (by default a page costs host memory once the guest touches it)')
    .option('--ksm', 'mark guest RAM mergeable so KSM can share identical pages between guests')
    .option('--hugepages', 'ask for transparent huge pages for guest RAM')
    .option('--gdb <port>', 'serve the GDB remote protocol on 127.0.0.1:PORT')
    .option('--gdb-wait', 'with --gdb: stop before the first instruction until gdb continues')
    .option('--gdb-arch <arch>', "with --gdb: the register layout gdb is served, i386 or x86-64 (default: the image's ELF class)")
    .addHelpText('after', HELP_AFTER + BIOS_HELP + SNAPSHOT_HELP)
    .action(async (image: string | undefined, flags: RunFlags, command: Command) => {
      const outcome = await runCommand(image, flags, command);
      status = outcome.status;
      exitWithoutJoin = outcome.stuck;
    });

  program
    .command('doctor')
    .description('check whether this host can run tskvm guests: /dev/kvm, KVM capabilities, CPU, KSM/THP, backend')
    .option('--json', 'print the diagnosis as JSON')
    .addHelpText('after', '\nExit status:\n  0  tskvm can run guests here\n  1  it cannot (the report says why and what to do)\n')
    .action(async (opts: { json?: boolean }) => {
      const { collectDiagnosis, formatDiagnosis } = await import('../doctor.js');
      const diagnosis = collectDiagnosis();
      stdout().write(opts.json ? `${JSON.stringify(diagnosis, null, 2)}\n` : formatDiagnosis(diagnosis));
      status = diagnosis.ok ? EXIT_OK : EXIT_HOST;
    });

  // The domain commands (and the XML parser and lock files behind them) only where they can be
  // the command or be listed: not for `run` and `doctor`.
  if (argv[0] !== 'run' && argv[0] !== 'doctor') (await import('./domains.js')).registerDomainCommands(program);

  try {
    await program.parseAsync(bareTraceFlag(argv), { from: 'user' });
    return status;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    return reportError(err);
  }
}

/**
 * `--trace` takes an optional kind list, so `--trace IMAGE` would read the image as kinds: a
 * `--trace` followed by anything that is not a kind list becomes `--trace=` (the default kinds).
 */
function bareTraceFlag(argv: readonly string[]): string[] {
  return argv.map((arg, i) => (arg === '--trace' && !/^[a-z-]+(,[a-z-]+)*$/.test(argv[i + 1] ?? '') ? '--trace=' : arg));
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** The library names its options (`options.memory`); on the command line they are flags. */
const OPTION_FLAGS: readonly [RegExp, string][] = [
  [/options\.memory\b/g, '--memory'],
  [/options\.cpus\b/g, '--cpus'],
  [/options\.timeoutMs\b/g, '--timeout'],
  [/options\.format\b/g, '--format'],
  [/options\.cmdline\b/g, '--append'],
  [/options\.modules(\[\d+\])?/g, '--initrd'],
  [/options\.longMode\b/g, '--long-mode'],
  [/options\.serialInput\b/g, '--serial-input'],
  [/options\.gdb\.arch\b/g, '--gdb-arch'],
  [/options\.gdb(\.port)?\b/g, '--gdb'],
  [/options\.trace(\.\w+)?\b/g, '--trace'],
  [/options\.image\b/g, 'IMAGE'],
  [/options\.restore\b/g, '--restore'],
  [/options\.save\.onSerial\b/g, '--save-on'],
  [/options\.save(\.path)?\b/g, '--save'],
];

/** A library message in the CLI's terms. */
export function cliMessage(message: string): string {
  return OPTION_FLAGS.reduce((text, [pattern, flag]) => text.replace(pattern, flag), message);
}

function reportError(err: unknown): number {
  if (err instanceof UsageError) {
    stderr().write(`tskvm: ${cliMessage(err.message)}\n`);
    return EXIT_USAGE;
  }
  if (err instanceof KvmError) {
    stderr().write(`tskvm: ${err.message}\n`);
    return EXIT_HOST;
  }
  const e = err as Error & { code?: string };
  if (e?.code === 'EUSAGE') {
    stderr().write(`tskvm: ${e.message}\n`);
    return EXIT_USAGE;
  }
  if (e?.code === 'ENOADDON') {
    stderr().write(`tskvm: ${e.message}\n`);
    return EXIT_HOST;
  }
  stderr().write(`tskvm: internal error: ${e?.stack ?? String(err)}\n`);
  return EXIT_HOST;
}

/** `tskvm 0.1.0 (backend: addon, Node v20.20.2)`: the version, and which KVM backend this install uses. */
async function versionText(): Promise<string> {
  let which: string;
  try {
    const chosen = backend();
    which = `${chosen.name}${chosen.name === 'addon' ? '' : `: ${chosen.why}`}`;
  } catch (err) {
    which = `none: ${(err as Error).message}`;
  }
  return `tskvm ${tskvmVersion()} (backend: ${which}; Node ${process.version})`;
}

/**
 * Flushes stdout and stderr, then exits: nothing the guest printed is lost. When a write to a
 * reader that stopped reading is still blocked, the process ends without joining it (see hard-exit.ts).
 */
export async function exit(status: number): Promise<never> {
  if (exitWithoutJoin) hardExit(status);
  await flushStdout();
  process.exit(status);
}
