/**
 * The tskvm command line: parse, call the library, map the result to an exit status. stdout
 * carries the guest's serial output and nothing else; every diagnostic goes to stderr.
 */
import { closeSync, createReadStream, createWriteStream, openSync, type WriteStream } from 'node:fs';
import { access, readFile, writeFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import { Command, CommanderError, Option } from 'commander';
import { TerminalEscapes } from './terminal.js';
import { formatStatsTable } from '../debug/stats.js';
import { collectDiagnosis, formatDiagnosis } from '../doctor.js';
import { parseTraceKinds, parseTracePorts } from '../debug/trace.js';
import { UsageError } from '../errors.js';
import { KvmError } from '../kvm/error.js';
import { Kvm } from '../kvm/ioctls.js';
import { GUEST_FORMATS, type GuestFormatChoice } from '../loader/guest.js';
import { DEFAULT_MEMORY, runGuest, type ModuleSource, type RunResult, type SerialEndpoint } from '../machine/run.js';
import { COM_PORT_NAMES, type ComPortName } from '../board/pc-board.js';
import { parseDuration, parseMemorySize } from '../units.js';

/** Exit statuses (DESIGN.md's table). */
export const EXIT_OK = 0;
export const EXIT_HOST = 1;
export const EXIT_USAGE = 2;
export const EXIT_TIMEOUT = 124;
export const EXIT_CRASH = 125;
const EXIT_SIGNAL_BASE = 128;

interface RunOptions {
  memory: string;
  timeout?: string;
  serialInput?: string;
  serial: string[];
  format: GuestFormatChoice;
  append?: string;
  initrd?: string;
  longMode?: boolean;
  resultJson?: string;
  trace?: string | true;
  traceFile?: string;
  tracePort?: string;
  stats?: boolean;
  dumpOnExit?: boolean;
  step?: boolean;
  gdb?: string;
  gdbWait?: boolean;
  memPrealloc?: boolean;
  ksm?: boolean;
  hugepages?: boolean;
  cpus?: string;
}

const HELP_AFTER = `
Exit status:
  v & 0xFF  the guest wrote v to the debug-exit port 0xF4
  0         the guest halted with nothing to wake it, or reset itself (0xFE to port 0x64)
  124       --timeout passed
  125       the guest crashed (triple fault, KVM internal error, failed entry); stderr shows its registers
  130, 143  stopped by SIGINT (Ctrl-C) or SIGTERM
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
    .version(await packageVersion(), '-V, --version')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), outputError: (s, write) => write(`tskvm: ${s.replace(/^error: /, '')}`) })
    .showHelpAfterError('(run `tskvm run --help` for usage)');

  let status = EXIT_OK;
  program
    .command('run')
    .description('boot IMAGE in a new VM, with COM1 on stdin/stdout, until the guest ends the run')
    .argument('<image>', 'flat binary or 512-byte boot sector')
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
    .addHelpText('after', HELP_AFTER)
    .action(async (image: string, opts: RunOptions) => {
      status = await run(image, opts);
    });

  program
    .command('doctor')
    .description('check whether this host can run tskvm guests: /dev/kvm, KVM capabilities, CPU, KSM/THP, backend')
    .option('--json', 'print the diagnosis as JSON')
    .addHelpText('after', '\nExit status:\n  0  tskvm can run guests here\n  1  it cannot (the report says why and what to do)\n')
    .action((opts: { json?: boolean }) => {
      const diagnosis = collectDiagnosis();
      process.stdout.write(opts.json ? `${JSON.stringify(diagnosis, null, 2)}\n` : formatDiagnosis(diagnosis));
      status = diagnosis.ok ? EXIT_OK : EXIT_HOST;
    });

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

async function run(image: string, opts: RunOptions): Promise<number> {
  const memory = parseMemorySize(opts.memory);
  const timeoutMs = opts.timeout === undefined ? undefined : parseDuration(opts.timeout, 'timeout');
  const routes = parseSerialRoutes(opts.serial);
  const gdbPort = opts.gdb === undefined ? undefined : parsePort(opts.gdb);
  if (opts.gdbWait && gdbPort === undefined) throw new UsageError('--gdb-wait needs --gdb PORT');
  const traceWanted = opts.trace !== undefined || opts.traceFile !== undefined || opts.tracePort !== undefined;
  const traceFd = opts.traceFile === undefined ? undefined : openTraceFile(opts.traceFile);
  const trace = traceWanted
    ? {
        fd: traceFd,
        kinds: typeof opts.trace === 'string' && opts.trace !== '' ? [...parseTraceKinds(opts.trace)] : undefined,
        ports: opts.tracePort === undefined ? undefined : parseTracePorts(opts.tracePort),
      }
    : undefined;
  if (opts.serialInput !== undefined) await checkReadable(opts.serialInput, 'serial input file');
  const stdioPort = COM_PORT_NAMES.find((port) => routes[port]?.kind === 'stdio');

  const abort = new AbortController();
  let stoppedBy: NodeJS.Signals | 'quit' | undefined;
  const stopWith = (why: NodeJS.Signals | 'quit'): void => {
    stoppedBy ??= why;
    abort.abort();
  };
  const onSigint = (): void => stopWith('SIGINT');
  const onSigterm = (): void => stopWith('SIGTERM');
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);

  // Serial input for the stdio port: --serial-input FILE, else stdin (raw mode on a terminal).
  const terminal = stdioPort && opts.serialInput === undefined && process.stdin.isTTY ? process.stdin : undefined;
  let stdinInput: Readable | undefined;
  if (opts.serialInput !== undefined) {
    stdinInput = createReadStream(opts.serialInput);
  } else if (terminal) {
    terminal.setRawMode(true);
    stdinInput = terminal.pipe(new TerminalEscapes((command) => stopWith(command === 'quit' ? 'quit' : 'SIGINT')));
  } else if (stdioPort) {
    stdinInput = process.stdin;
  }

  let stdoutBroken = false;
  process.stdout.on('error', () => {
    stdoutBroken = true; // the reader went away: keep the guest running, drop its output
  });
  const files: WriteStream[] = [];
  const serialPorts: Partial<Record<ComPortName, SerialEndpoint>> = {};
  for (const port of COM_PORT_NAMES) {
    const route = routes[port];
    if (!route || route.kind === 'null') continue;
    if (route.kind === 'stdio') {
      serialPorts[port] = { input: stdinInput, output: (chunk) => (stdoutBroken ? undefined : writeStream(process.stdout, chunk)) };
    } else {
      const file = createWriteStream(route.path);
      files.push(file);
      serialPorts[port] = { output: (chunk) => writeStream(file, chunk) };
    }
  }
  // COM1 routed to null still needs an (empty) endpoint so stdin is not attached to it.
  serialPorts.COM1 ??= {};

  let result: RunResult;
  try {
    result = await runGuest({
      image,
      memory,
      format: opts.format,
      cmdline: opts.append,
      modules: opts.initrd === undefined ? undefined : await parseInitrd(opts.initrd),
      longMode: opts.longMode,
      timeoutMs,
      collectSerial: false,
      serialPorts,
      signal: abort.signal,
      trace,
      stats: opts.stats,
      step: opts.step ? {} : undefined,
      dumpOnExit: opts.dumpOnExit,
      cpus: opts.cpus === undefined ? undefined : parseCpus(opts.cpus),
      memPrealloc: opts.memPrealloc,
      ksm: opts.ksm,
      hugepages: opts.hugepages,
      gdb:
        gdbPort === undefined
          ? undefined
          : {
              port: gdbPort,
              wait: opts.gdbWait,
              onListening: (port) =>
                process.stderr.write(`tskvm: gdb server on 127.0.0.1:${port}${opts.gdbWait ? ' (waiting for gdb to continue)' : ''}\n`),
            },
    });
  } finally {
    if (traceFd !== undefined) closeSync(traceFd);
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
    if (terminal) {
      terminal.setRawMode(false);
      terminal.unpipe();
    }
    if (stdinInput && stdinInput !== process.stdin) stdinInput.destroy();
    process.stdin.pause();
    await Promise.all(files.map((file) => new Promise((resolve) => file.end(resolve))));
  }

  for (const note of result.notes) process.stderr.write(`tskvm: note: ${note}\n`);
  for (const warning of result.warnings) process.stderr.write(`tskvm: warning: ${warning}\n`);
  if (result.ksm)
    process.stderr.write(
      `tskvm: ksm: ${result.ksm.mergingPages ?? 'unknown'} pages of this process merged (KSM ${result.ksm.running ? 'on' : 'off'})\n`,
    );
  if (result.stats) process.stderr.write(formatStatsTable(result.stats));
  if (result.state !== undefined) process.stderr.write(`vCPU state at exit (${result.reason}):\n${result.state}\n`);
  if (opts.resultJson !== undefined) {
    const json = {
      reason: result.reason,
      exitCode: result.exitCode,
      durationMs: result.durationMs,
      exits: result.exits,
      ...(result.stats ? { stats: result.stats } : {}),
      ...(stoppedBy && stoppedBy !== 'quit' ? { signal: stoppedBy } : {}),
    };
    await writeFile(opts.resultJson, `${JSON.stringify(json, null, 2)}\n`);
  }
  return exitStatus(result, stoppedBy, timeoutMs);
}

type SerialRoute = { kind: 'stdio' } | { kind: 'null' } | { kind: 'file'; path: string };

/** `--serial COMn=stdio|file:PATH|null`, as QEMU's -serial: COM1 defaults to stdio, others to null. */
export function parseSerialRoutes(specs: readonly string[]): Partial<Record<ComPortName, SerialRoute>> {
  const routes: Partial<Record<ComPortName, SerialRoute>> = { COM1: { kind: 'stdio' } };
  for (const spec of specs) {
    const m = /^(COM[1-4])=(stdio|null|file:(.+))$/i.exec(spec);
    if (!m) throw new UsageError(`invalid --serial '${spec}': use COMn=stdio, COMn=file:PATH or COMn=null, n from 1 to 4`);
    const port = m[1]!.toUpperCase() as ComPortName;
    const kind = m[2]!.toLowerCase();
    routes[port] = kind === 'stdio' ? { kind: 'stdio' } : kind === 'null' ? { kind: 'null' } : { kind: 'file', path: m[3]! };
  }
  const stdio = COM_PORT_NAMES.filter((port) => routes[port]?.kind === 'stdio');
  if (stdio.length > 1)
    throw new UsageError(`--serial: only one port can be on stdio, but ${stdio.join(' and ')} are: route the others to file:PATH or null`);
  return routes;
}

/** `--initrd "file args,file2"`: QEMU's module list, each a path and optional arguments. */
async function parseInitrd(spec: string): Promise<ModuleSource[]> {
  const modules: ModuleSource[] = [];
  for (const item of spec.split(',')) {
    const [path = '', ...args] = item.trim().split(/\s+/);
    if (path === '') throw new UsageError(`invalid --initrd '${spec}': use "file args,file2 args"`);
    await checkReadable(path, 'module');
    const bytes = await readFile(path);
    modules.push({ name: path, bytes, cmdline: args.length ? args.join(' ') : undefined });
  }
  return modules;
}

function exitStatus(result: RunResult, stoppedBy: NodeJS.Signals | 'quit' | undefined, timeoutMs: number | undefined): number {
  switch (result.reason) {
    case 'debug-exit':
      return result.exitCode & 0xff;
    case 'halt':
    case 'reset':
      return EXIT_OK;
    case 'timeout':
      process.stderr.write(`tskvm: guest timed out after ${timeoutMs} ms\n`);
      return EXIT_TIMEOUT;
    case 'crash':
      process.stderr.write(`guest crashed: ${result.crash?.description ?? 'unknown'}\n${result.crash?.state ?? ''}\n`);
      return EXIT_CRASH;
    case 'stopped':
      if (stoppedBy === 'quit' || stoppedBy === undefined) return EXIT_OK;
      return EXIT_SIGNAL_BASE + osConstants.signals[stoppedBy];
    default: {
      const never: never = result.reason;
      throw new Error(`unreachable reason ${String(never)}`);
    }
  }
}

/** Writes a chunk; when the stream is backed up, the promise holds the guest's output back. */
function writeStream(stream: NodeJS.WritableStream, chunk: Buffer): Promise<void> | undefined {
  if (stream.write(chunk)) return undefined;
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('error', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('error', done);
  });
}

async function checkReadable(file: string, what: string): Promise<void> {
  try {
    await access(file);
  } catch {
    throw new UsageError(`${what} '${file}' not found: check the path`, 'EIMAGE');
  }
}

function parseCpus(text: string): number {
  if (!/^\s*\d+\s*$/.test(text) || Number(text) < 1) {
    throw new UsageError(`invalid --cpus '${text}': use a whole number of vCPUs from 1 to ${Kvm.hostMaxVcpus()} (KVM_CAP_MAX_VCPUS here)`);
  }
  return Number(text);
}

function parsePort(text: string): number {
  const port = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(port >= 0 && port <= 65535))
    throw new UsageError(`invalid --gdb port '${text}': use a TCP port number from 0 (any free port) to 65535`);
  return port;
}

function openTraceFile(file: string): number {
  try {
    return openSync(file, 'w');
  } catch (err) {
    throw new UsageError(`cannot write the trace to '${file}': ${(err as Error).message}`);
  }
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
  [/options\.gdb(\.port)?\b/g, '--gdb'],
  [/options\.trace(\.\w+)?\b/g, '--trace'],
  [/options\.image\b/g, 'IMAGE'],
];

/** A library message in the CLI's terms. */
export function cliMessage(message: string): string {
  return OPTION_FLAGS.reduce((text, [pattern, flag]) => text.replace(pattern, flag), message);
}

function reportError(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`tskvm: ${cliMessage(err.message)}\n`);
    return EXIT_USAGE;
  }
  if (err instanceof KvmError) {
    process.stderr.write(`tskvm: ${err.message}\n`);
    return EXIT_HOST;
  }
  const e = err as Error & { code?: string };
  if (e?.code === 'EUSAGE') {
    process.stderr.write(`tskvm: ${e.message}\n`);
    return EXIT_USAGE;
  }
  if (e?.code === 'ENOADDON') {
    process.stderr.write(`tskvm: ${e.message}\n`);
    return EXIT_HOST;
  }
  process.stderr.write(`tskvm: internal error: ${e?.stack ?? String(err)}\n`);
  return EXIT_HOST;
}

async function packageVersion(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Flushes stdout and stderr, then exits: nothing the guest printed is lost. */
export async function exit(status: number): Promise<never> {
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit(status);
}
