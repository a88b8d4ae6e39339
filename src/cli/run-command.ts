/**
 * `tskvm run`: flags → library options, every check before anything is created (the options,
 * the guest's files, then the output files), the run with stdin/stdout as COM1, and the result
 * mapped to an exit status. Guest output goes through FdWriter, never process.stdout, so a reader
 * that stops reading cannot stop a signal from ending the run.
 */
import { closeSync, constants as fsConstants, createReadStream, fstatSync, openSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import { COM_PORT_NAMES, type ComPortName } from '../board/pc-board.js';
import { formatStatsTable } from '../debug/stats.js';
import { parseTraceKinds, parseTracePorts } from '../debug/trace.js';
import { UsageError } from '../errors.js';
import { Kvm } from '../kvm/ioctls.js';
import type { GuestFormatChoice } from '../loader/guest.js';
import { checkGuestFiles } from '../machine/guest-files.js';
import { PC_MAX_VCPUS, validateRunOptions, type GdbArch } from '../machine/options.js';
import { startGuest, type GuestRun, type ModuleSource, type RunGuestOptions, type RunResult, type SerialEndpoint } from '../machine/run.js';
import { parseDuration, parseMemorySize } from '../units.js';
import type { Command } from 'commander';
import { biosCliRun, type BiosCliOptions } from './bios-options.js';
import { FdWriter } from './output.js';
import { checkSnapshotFlags, savedMessage, snapshotRunOptions, terminalSave, type SnapshotCliOptions } from './snapshot-options.js';
import { isDevNull, isTerminal, STDIN_FD, STDOUT_FD, stderr } from './stdio.js';

/** Exit statuses (DESIGN.md's table, and the README's). */
export const EXIT_OK = 0;
export const EXIT_HOST = 1;
export const EXIT_USAGE = 2;
/** The guest ran, but some of its output (stdout, a serial file, the trace, the result file) could not be written. */
export const EXIT_OUTPUT = 3;
export const EXIT_TIMEOUT = 124;
export const EXIT_CRASH = 125;
const EXIT_SIGNAL_BASE = 128;

export interface RunFlags extends BiosCliOptions, SnapshotCliOptions {
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
  gdbArch?: string;
  memPrealloc?: boolean;
  ksm?: boolean;
  hugepages?: boolean;
  cpus?: string;
}

/** What the process must do once the run is over: wait for nothing (a writer may be stuck on a full pipe). */
export interface RunOutcome {
  status: number;
  /** A write is still blocked in the thread pool: exit without joining it. */
  stuck: boolean;
  /** How the run ended, and what stopped it from outside (for front ends with other exit statuses: src/qemu). */
  result?: RunResult;
  stoppedBy?: NodeJS.Signals | 'quit';
}

type SerialRoute = { kind: 'stdio' } | { kind: 'null' } | { kind: 'file'; path: string };

/** `extra`: library options with no `tskvm run` flag, from other front ends (tskvm-qemu's -cpu). */
export async function runCommand(
  image: string | undefined,
  flags: RunFlags,
  command: Command,
  extra: Pick<RunGuestOptions, 'cpuid'> = {},
): Promise<RunOutcome> {
  // 1. Flags and options: pure checks, nothing opened. Snapshot and BIOS flags first: a bad one
  // must fail before the terminal goes raw.
  const interactive = isTerminal(STDIN_FD) && flags.serialInput === undefined; // Ctrl-A s can save
  checkSnapshotFlags(command, image, flags, interactive);
  const stdout = new FdWriter(STDOUT_FD, 'stdout');
  // A restore's snapshot stands in for IMAGE: the BIOS flags left to it are this run's console, screen and keys.
  const biosRun = biosCliRun(image ?? flags.restore, flags, {
    writeStdout: (text) => stdout.write(Buffer.from(text)),
    stdoutIsTerminal: isTerminal(STDOUT_FD),
  });
  const terminalSaves = terminalSave(flags.save, interactive, (text) => stderr().write(text));
  const snapshotFlags = { ...flags, saveRequest: terminalSaves.signal };
  const routes = parseSerialRoutes(flags.serial);
  const gdbPort = flags.gdb === undefined ? undefined : parsePort(flags.gdb);
  if (flags.gdbWait && gdbPort === undefined) throw new UsageError('--gdb-wait needs --gdb PORT');
  if (flags.gdbArch !== undefined && gdbPort === undefined) throw new UsageError('--gdb-arch needs --gdb PORT');
  const timeoutMs = flags.timeout === undefined ? undefined : parseDuration(flags.timeout, 'timeout');
  const traceWanted = flags.trace !== undefined || flags.traceFile !== undefined || flags.tracePort !== undefined;
  const options: RunGuestOptions = snapshotRunOptions(command, image, snapshotFlags, {
    ...extra,
    ...(image === undefined ? {} : { image }),
    bios: biosRun.bios,
    memory: parseMemorySize(flags.memory),
    format: flags.format,
    cmdline: flags.append,
    modules: flags.initrd === undefined ? undefined : parseInitrd(flags.initrd),
    longMode: flags.longMode,
    timeoutMs,
    collectSerial: false,
    stats: flags.stats,
    step: flags.step ? {} : undefined,
    dumpOnExit: flags.dumpOnExit,
    cpus: flags.cpus === undefined ? undefined : parseCpus(flags.cpus),
    memPrealloc: flags.memPrealloc,
    ksm: flags.ksm,
    hugepages: flags.hugepages,
    trace: traceWanted
      ? {
          kinds: typeof flags.trace === 'string' && flags.trace !== '' ? [...parseTraceKinds(flags.trace)] : undefined,
          ports: flags.tracePort === undefined ? undefined : parseTracePorts(flags.tracePort),
        }
      : undefined,
    gdb:
      gdbPort === undefined
        ? undefined
        : {
            port: gdbPort,
            wait: flags.gdbWait,
            ...(flags.gdbArch === undefined ? {} : { arch: flags.gdbArch as GdbArch }),
            onListening: (port) =>
              stderr().write(`tskvm: gdb server on 127.0.0.1:${port}${flags.gdbWait ? ' (waiting for gdb to continue)' : ''}\n`),
            onHint: (message) => stderr().write(`tskvm: ${message}\n`),
          },
  });
  const config = validateRunOptions(options);
  // 2. The guest's files, checked as the run will read them.
  await checkGuestFiles(config);
  // 3. Only now are files opened (and output files created or truncated).
  const opened: number[] = [];
  const openOutput = (path: string, what: string): number => {
    const fd = openOutputFile(path, what);
    opened.push(fd);
    return fd;
  };
  let stdinInput: Readable | undefined;
  /** Whether process.stdin was made (reading it is what makes it): only then is it paused at the end. */
  let stdinMade = false;
  try {
    const serialInput = flags.serialInput === undefined ? undefined : openSerialInput(flags.serialInput);
    stdinInput = serialInput;
    const writers: FdWriter[] = [];
    const serialPorts: Partial<Record<ComPortName, SerialEndpoint>> = {};
    const stdioPort = COM_PORT_NAMES.find((port) => routes[port]?.kind === 'stdio');
    writers.push(stdout); // BIOS teletype and the text display write there too
    for (const port of COM_PORT_NAMES) {
      const route = routes[port];
      if (!route || route.kind === 'null') continue;
      const writer =
        route.kind === 'stdio'
          ? stdout
          : new FdWriter(openOutput(route.path, `serial file '${route.path}'`), `serial file '${route.path}'`);
      writers.push(writer);
      serialPorts[port] = { output: (chunk) => writer.write(chunk) };
    }
    if (options.trace && flags.traceFile !== undefined) options.trace.fd = openOutput(flags.traceFile, `trace file '${flags.traceFile}'`);
    const resultFd = flags.resultJson === undefined ? undefined : openOutput(flags.resultJson, `result file '${flags.resultJson}'`);
    writers.push(...(biosRun.openOutputs?.(openOutput) ?? []));
    // COM1 routed to null still needs an (empty) endpoint so stdin is not attached to it.
    serialPorts.COM1 ??= {};

    // A signal stops the run through its handle, not an AbortSignal: Node loads AbortController's
    // modules on first use, ~1 ms of every launch. One that comes while the guest is being set up
    // stops it once startGuest has returned the handle.
    let run: GuestRun | undefined;
    let stoppedBy: NodeJS.Signals | 'quit' | undefined;
    const stopWith = (why: NodeJS.Signals | 'quit'): void => {
      stoppedBy ??= why;
      // A signal must end the run whatever the readers do: stop waiting for them.
      if (why !== 'quit') for (const writer of writers) writer.abandon();
      run?.stop();
    };
    const onSigint = (): void => stopWith('SIGINT');
    const onSigterm = (): void => stopWith('SIGTERM');
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigterm);

    // Serial input for the stdio port: --serial-input FILE, else stdin (raw mode on a terminal).
    const terminal = stdioPort && serialInput === undefined && isTerminal(STDIN_FD) ? process.stdin : undefined;
    stdinMade = terminal !== undefined;
    if (serialInput === undefined && terminal) {
      // Loaded here: its Transform loads node:stream, which a run without a terminal never needs.
      const { TerminalEscapes } = await import('./terminal.js');
      terminal.setRawMode(true);
      stdinInput = terminal.pipe(
        new TerminalEscapes((command) => (command === 'save' ? terminalSaves.request() : stopWith(command === 'quit' ? 'quit' : 'SIGINT'))),
      );
    } else if (serialInput === undefined && stdioPort && !isDevNull(STDIN_FD)) {
      stdinInput = process.stdin; // not made for /dev/null, which has nothing to give
      stdinMade = true;
    }
    if (stdioPort && stdinInput) serialPorts[stdioPort]!.input = stdinInput;

    let result: RunResult;
    try {
      // One vCPU runs on this thread: a worker would cost more to start than a tiny guest runs.
      run = await startGuest({ ...options, serialPorts, vcpuThread: 'caller' });
      if (stoppedBy !== undefined) run.stop();
      result = await run.result;
    } finally {
      biosRun.close();
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigterm);
      if (terminal) {
        terminal.setRawMode(false);
        terminal.unpipe();
      }
      if (stdinMade) process.stdin.pause();
    }

    await biosRun.finish(result, flags.stats === true);
    for (const note of result.notes) stderr().write(`tskvm: note: ${note}\n`);
    const saved = savedMessage(result);
    if (saved) stderr().write(saved);
    for (const warning of result.warnings) stderr().write(`tskvm: warning: ${warning}\n`);
    if (result.ksm) {
      stderr().write(
        `tskvm: ksm: ${result.ksm.mergingPages ?? 'unknown'} pages of this process merged (KSM ${result.ksm.running ? 'on' : 'off'})\n`,
      );
    }
    if (result.stats) stderr().write(formatStatsTable(result.stats));
    if (result.state !== undefined) stderr().write(`vCPU state at exit (${result.reason}):\n${result.state}\n`);
    const outputErrors = [
      ...(result.outputErrors ?? []),
      ...writers.flatMap((w) => (w.error ? [`cannot write ${w.what}: ${w.error.code ?? w.error.message}`] : [])),
    ];
    if (resultFd !== undefined) {
      const json = {
        reason: result.reason,
        exitCode: result.exitCode,
        durationMs: result.durationMs,
        exits: result.exits,
        ...(result.stats ? { stats: result.stats } : {}),
        ...(result.bios ? { bios: { calls: result.bios.calls } } : {}),
        ...(result.saved ? { saved: result.saved } : {}),
        ...(stoppedBy && stoppedBy !== 'quit' ? { signal: stoppedBy } : {}),
      };
      try {
        writeSync(resultFd, `${JSON.stringify(json, null, 2)}\n`);
      } catch (err) {
        outputErrors.push(
          `cannot write result file '${flags.resultJson}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        );
      }
    }
    let status = exitStatus(result, stoppedBy, timeoutMs);
    if (outputErrors.length) {
      for (const error of new Set(outputErrors)) stderr().write(`tskvm: ${error}\n`);
      // A signal's status wins: the user asked for the stop, and output was dropped on purpose.
      if (stoppedBy === undefined || stoppedBy === 'quit') {
        stderr().write(`tskvm: the guest's own status was ${status}; exiting ${EXIT_OUTPUT} because its output was lost\n`);
        status = EXIT_OUTPUT;
      }
    }
    return { status, stuck: writers.some((w) => w.inFlight), result, stoppedBy };
  } finally {
    if (stdinInput && !(stdinMade && stdinInput === process.stdin)) stdinInput.destroy();
    for (const fd of opened) closeSync(fd);
  }
}

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
  if (stdio.length > 1) {
    throw new UsageError(`--serial: only one port can be on stdio, but ${stdio.join(' and ')} are: route the others to file:PATH or null`);
  }
  return routes;
}

/** `--initrd "file args,file2"`: QEMU's module list, each a path and optional arguments (read by the library, bounded). */
function parseInitrd(spec: string): ModuleSource[] {
  return spec.split(',').map((item) => {
    const [path = '', ...args] = item.trim().split(/\s+/);
    if (path === '') throw new UsageError(`invalid --initrd '${spec}': use "file args,file2 args"`);
    return { path, ...(args.length ? { cmdline: args.join(' ') } : {}) };
  });
}

export function exitStatus(result: RunResult, stoppedBy: NodeJS.Signals | 'quit' | undefined, timeoutMs: number | undefined): number {
  switch (result.reason) {
    case 'debug-exit':
      return result.exitCode & 0xff;
    case 'halt':
    case 'reset':
    case 'poweroff':
    case 'saved':
      return EXIT_OK;
    case 'timeout':
      stderr().write(`tskvm: guest timed out after ${timeoutMs} ms\n`);
      return EXIT_TIMEOUT;
    case 'crash':
      stderr().write(`guest crashed: ${result.crash?.description ?? 'unknown'}\n${result.crash?.state ?? ''}\n`);
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

/**
 * `--serial-input FILE`: a regular file or a device is read as a stream; a FIFO or socket is
 * opened without blocking (a FIFO with no writer must not hang the run) and read as a pipe.
 */
function openSerialInput(path: string): Readable {
  const what = `serial input '${path}'`;
  let fd: number;
  try {
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY);
  } catch (err) {
    throw fileError(what, err);
  }
  const st = fstatSync(fd);
  if (st.isDirectory()) {
    closeSync(fd);
    throw new UsageError(`${what} is a directory: give a file, a FIFO or a device to read the guest's input from`, 'EIMAGE');
  }
  if (st.isFIFO() || st.isSocket()) return new Socket({ fd, readable: true, writable: false });
  return createReadStream('', { fd, autoClose: true });
}

/** Creates (or truncates) an output file, after every check has passed. */
function openOutputFile(path: string, what: string): number {
  try {
    return openSync(path, 'w');
  } catch (err) {
    throw fileError(what, err, 'EOUTPUT');
  }
}

function fileError(what: string, err: unknown, code: 'EIMAGE' | 'EOUTPUT' = 'EIMAGE'): Error {
  const errno = (err as NodeJS.ErrnoException).code;
  const why =
    errno === 'ENOENT'
      ? code === 'EOUTPUT'
        ? 'its directory does not exist: create it or give another path'
        : 'not found: check the path'
      : errno === 'EISDIR'
        ? 'is a directory: give the path of a file'
        : errno === 'EACCES' || errno === 'EPERM'
          ? 'permission denied: fix the permissions or give another path'
          : errno === 'ENOTDIR'
            ? 'a part of the path is not a directory'
            : errno === 'EMFILE' || errno === 'ENFILE'
              ? 'too many open files: raise `ulimit -n`'
              : (err as Error).message;
  return new UsageError(`cannot open ${what}: ${why}`, code);
}

function parseCpus(text: string): number {
  if (!/^\s*\d+\s*$/.test(text) || Number(text) < 1) {
    const kvmMax = Kvm.hostMaxVcpus();
    const max = typeof kvmMax === 'number' ? Math.min(kvmMax, PC_MAX_VCPUS) : PC_MAX_VCPUS;
    throw new UsageError(`invalid --cpus '${text}': use a whole number of vCPUs from 1 to ${max} (xAPIC IDs and KVM_CAP_MAX_VCPUS here)`);
  }
  return Number(text);
}

function parsePort(text: string): number {
  const port = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(port >= 0 && port <= 65535))
    throw new UsageError(`invalid --gdb port '${text}': use a TCP port number from 0 (any free port) to 65535`);
  return port;
}
