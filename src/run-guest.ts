/**
 * runGuest: one guest, start to end, in-process — create the PC (RAM, irqchip, PIT, firmware
 * tables), load the image, wire the serial ports to the caller, run the vCPU in its thread, and
 * release everything whatever happens.
 */
import { readFile, stat } from 'node:fs/promises';
import { UsageError } from './errors.js';
import { pcE820Map } from './loader/e820.js';
import { GUEST_FORMATS, loadGuest, type GuestFormat, type GuestFormatChoice } from './loader/guest.js';
import { writeBiosDataArea, writeMpTable } from './loader/pc-tables.js';
import { BIOS_AREA_END, VGA_HOLE_ADDRESS } from './loader/pc-layout.js';
import type { MultibootModule } from './loader/multiboot.js';
import { availableMemory, hostCpus, ksmMergingPages, ksmRunning } from './host.js';
import { Kvm } from './kvm/ioctls.js';
import { BoardThread } from './vm/board-thread.js';
import { ExitStats, type ExitStatsJson } from './debug/stats.js';
import { parseMemorySize } from './units.js';
import { COM_PORTS, COM_PORT_NAMES, type ComPortName } from './vm/board.js';
import { applyBootState } from './vm/cpu-setup.js';
import { SerialBridge, type SerialInput, type SerialSink } from './vm/serial-bridge.js';
import type { ExitCounts, VcpuRunResult } from './vm/vcpu-loop.js';
import { HALT_POLL_INTERVAL_MS, Vm, type Vcpu, type VcpuState } from './vm/vm.js';
import type { KvmRegs, KvmSregs } from './kvm/structs.js';
import type { LoadedGuest } from './loader/guest.js';
import type { AttachedGdb } from './gdb/attach.js';
import type { VcpuJobDebug } from './vm/vcpu-thread.js';
import { startGdb } from './gdb/attach.js';

export const DEFAULT_MEMORY = '16M';

/** One serial port's connection: input fed to the guest and a sink for its output. */
export interface SerialEndpoint {
  input?: SerialInput;
  output?: SerialSink;
}

/** A multiboot module: a file path, or its bytes with a name. */
export type ModuleSource = string | { name: string; bytes: Uint8Array; cmdline?: string };

export interface RunGuestOptions {
  /** A path to the image, or its bytes. */
  image: string | Uint8Array;
  /** Guest RAM: bytes, or a size such as '16M' (default 16M). */
  memory?: number | string;
  /** How to load the image (default: auto-detect). */
  format?: GuestFormatChoice;
  /** The kernel command line (multiboot), as QEMU's -append. */
  cmdline?: string;
  /** Multiboot modules, as QEMU's -initrd "file args,file2". */
  modules?: ModuleSource[];
  /** Start an ELF32 in long mode. */
  longMode?: boolean;
  /** Stop the guest after this many milliseconds (reason 'timeout'). */
  timeoutMs?: number;
  /** COM1 input: a stream (read as the guest consumes it), or all of it at once. */
  serialInput?: SerialInput;
  /** Called with COM1 output as it arrives; a returned promise holds back further output. */
  onSerial?: SerialSink;
  /** Keep COM1's output in the result's `serial` (default true). */
  collectSerial?: boolean;
  /** COM2-COM4 (and COM1, instead of serialInput/onSerial); ports left out are unconnected. */
  serialPorts?: Partial<Record<ComPortName, SerialEndpoint>>;
  /** Aborting stops the guest (reason 'stopped'). */
  signal?: AbortSignal;
  /**
   * In-kernel PIC/IOAPIC/LAPIC and PIT (default true). false gives a bare machine where HLT exits
   * to userspace and nothing interrupts the guest.
   */
  irqchip?: boolean;
  /** One line per VM exit (see src/debug/trace.ts), to `fd` (default 2, stderr), filtered. */
  trace?: TraceOptions;
  /** Time every exit; the result then carries `stats`. */
  stats?: boolean;
  /** Single-step the guest, writing each instruction and the registers it changed to `fd`. */
  step?: { fd?: number };
  /** Put the vCPU's registers, decoded, in the result's `state` whatever ends the run. */
  dumpOnExit?: boolean;
  /** Serve gdb on 127.0.0.1:port (0: any free port); `wait` stops before the first instruction. */
  gdb?: GdbOptions;
  /** Commit all guest RAM up front (QEMU's -mem-prealloc); by default pages cost memory when touched. */
  memPrealloc?: boolean;
  /** Mark guest RAM mergeable so KSM can share identical pages between guests; `ksm` is then in the result. */
  ksm?: boolean;
  /** Ask for transparent huge pages for guest RAM. */
  hugepages?: boolean;
  /**
   * vCPUs (default 1). vCPU 0 boots; the others wait for INIT/SIPI in their LAPICs, as a PC's
   * application processors do. The MP table and fw_cfg report the count.
   */
  cpus?: number;
}

export interface TraceOptions {
  fd?: number;
  /** Exit kinds to show (io, mmio, hlt, ...); all when absent. */
  kinds?: string[];
  /** Port ranges [first, last] to show I/O exits for; all when absent. */
  ports?: [number, number][];
}

export interface GdbOptions {
  port: number;
  wait?: boolean;
  /** Called once the server listens, with its port (useful with port 0). */
  onListening?: (port: number) => void;
}

export type RunReason = 'debug-exit' | 'halt' | 'reset' | 'timeout' | 'crash' | 'stopped';

export interface RunResult {
  reason: RunReason;
  /** The value written to the debug-exit port (whole, up to 32 bits); 0 for other reasons. */
  exitCode: number;
  /** COM1 output, decoded as UTF-8 ('' when collectSerial is false). */
  serial: string;
  /** COM1 output, byte for byte. */
  serialBytes: Buffer;
  /** Wall time from the first KVM_RUN to the end of the run. */
  durationMs: number;
  exits: ExitCounts;
  /** Present when reason is 'crash': what happened, and the vCPU's registers. */
  crash?: { description: string; state: string };
  format: GuestFormat;
  /** Loader remarks worth showing the user (e.g. an ignored multiboot video-mode request). */
  notes: string[];
  /** With `stats`: exits by reason and device, KVM_RUN vs handler vs wall time. */
  stats?: ExitStatsJson;
  /** With `dumpOnExit`: the vCPU's registers at the end of the run. */
  state?: string;
  /** Things the user should know about the host (over-commit and the like), for stderr. */
  warnings: string[];
  /** With `ksm`: whether the kernel's KSM daemon runs, and how many of this process's pages it merged. */
  ksm?: { running: boolean | undefined; mergingPages: number | undefined };
}


/**
 * A running guest: pause, resume or stop it whatever it is doing (in KVM_RUN, halted in the
 * kernel, in an exit), read its registers while paused, and await how the run ended.
 */
export interface GuestRun {
  /** 'running', 'paused' or 'stopped' (the run has ended). */
  readonly state: VcpuState;
  /** Stops the vCPU where it is; resolves once it is paused. */
  pause(): Promise<void>;
  /** Lets a paused vCPU go on. */
  resume(): void;
  /** Ends the run (reason 'stopped'), paused or not. */
  stop(): void;
  /** The registers of a paused vCPU (consistent: nothing runs while it is paused). */
  registers(): { regs: KvmRegs; sregs: KvmSregs };
  readonly result: Promise<RunResult>;
}

/** Runs a guest to its end: `(await startGuest(options)).result`. */
export async function runGuest(options: RunGuestOptions): Promise<RunResult> {
  return (await startGuest(options)).result;
}

/** Creates the machine, loads the image and starts the vCPU; the returned handle controls the run. */
export async function startGuest(options: RunGuestOptions): Promise<GuestRun> {
  const memorySize = typeof options.memory === 'number' ? parseMemorySize(`${options.memory}B`) : parseMemorySize(options.memory ?? DEFAULT_MEMORY);
  const format = options.format ?? 'auto';
  if (!GUEST_FORMATS.includes(format)) throw new UsageError(`invalid format '${String(format)}': use one of ${GUEST_FORMATS.join(', ')}`);
  const timeoutMs = options.timeoutMs;
  if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new UsageError(`invalid timeout ${timeoutMs}: it must be a positive number of milliseconds`);
  }
  for (const port of Object.keys(options.serialPorts ?? {})) {
    if (!COM_PORT_NAMES.includes(port as ComPortName)) throw new UsageError(`unknown serial port '${port}': use ${COM_PORT_NAMES.join(', ')}`);
  }
  const { bytes: image, name } = await readImage(options.image, memorySize);
  const modules = await Promise.all((options.modules ?? []).map((m) => readModule(m, memorySize)));

  const cpus = options.cpus ?? 1;
  if (!Number.isInteger(cpus) || cpus < 1) throw new UsageError(`invalid --cpus '${cpus}': use a whole number of vCPUs from 1 to ${Kvm.hostMaxVcpus()} (KVM_CAP_MAX_VCPUS here)`);
  if (cpus > 1 && options.gdb) throw new UsageError('--gdb supports one vCPU for now: drop --cpus or --gdb');
  const warnings = overcommitWarnings(memorySize, options);
  const vm = Vm.create({ memorySize, irqchip: options.irqchip ?? true, prealloc: options.memPrealloc, ksm: options.ksm, hugepages: options.hugepages });
  let vcpus: Vcpu[];
  let loaded: LoadedGuest;
  let gdb: AttachedGdb | undefined;
  const e820 = pcE820Map(memorySize);
  try {
    const maxCpus = vm.maxVcpus();
    if (cpus > maxCpus) throw new UsageError(`invalid --cpus '${cpus}': this host's KVM allows at most ${maxCpus} vCPUs per VM (KVM_CAP_MAX_VCPUS)`);
    if (cpus > hostCpus()) {
      warnings.push(
        `${cpus} vCPUs on ${hostCpus()} host CPUs: one guest with more vCPUs than the host has CPUs makes them take turns, and guests that spin-wait on each other slow down badly (many small guests are fine)`,
      );
    }
    // vCPU 0 boots; KVM leaves the others waiting for INIT/SIPI (the in-kernel LAPIC handles both).
    vcpus = Array.from({ length: cpus }, (_, id) => vm.createVcpu(id));
    const memory = vm.memory.bytes;
    writeFirmwareTables(memory, memorySize, cpus);
    loaded = loadGuest(image, memory, { format, name, cmdline: options.cmdline, modules, longMode: options.longMode, e820 });
    applyBootState(vcpus[0]!, memory, loaded.bootState);
    gdb = options.gdb ? await startGdb(vcpus[0]!, vm.memory, options.gdb) : undefined;
  } catch (err) {
    void vm.close();
    throw err;
  }

  const collect = options.collectSerial ?? true;
  const chunks: Buffer[] = [];
  const com1: SerialEndpoint = options.serialPorts?.COM1 ?? { input: options.serialInput, output: options.onSerial };
  const bridges = COM_PORTS.map((port) => {
    const endpoint = port.name === 'COM1' ? com1 : options.serialPorts?.[port.name];
    if (port.name !== 'COM1' && !endpoint) return null;
    const output = endpoint?.output;
    const sink: SerialSink = port.name === 'COM1' && collect ? (chunk) => (chunks.push(chunk), output?.(chunk)) : (chunk) => output?.(chunk);
    return new SerialBridge(sink, endpoint?.input);
  });

  let stopReason: RunReason | undefined;
  const stop = (reason: RunReason): void => {
    stopReason ??= reason;
    for (const vcpu of vcpus) vcpu.stop();
  };
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => stop('timeout'), timeoutMs);
  const onAbort = (): void => stop('stopped');
  options.signal?.addEventListener('abort', onAbort);
  const started = performance.now();
  const firmware = { ramSize: memorySize, cpus, cmdline: options.cmdline, e820 };
  const debug = debugOptions(options);
  let running: Promise<VcpuRunResult>;
  if (cpus === 1) {
    running = vcpus[0]!.run(bridges, firmware, { debug, onDebugStop: gdb?.target.onDebugStop.bind(gdb.target) });
  } else {
    // Several vCPUs share one board, in a thread of its own. A failure to start it ends the run
    // through `running`, so the clean-up below (timer, serial, VM) happens either way.
    running = (async () => {
      const board = await BoardThread.start({ vmFd: vm.fd.fd, irqchip: vm.irqchip, serial: bridges, firmware, vcpus: cpus });
      try {
        const runs = vcpus.map((vcpu, i) => vcpu.run([], undefined, { debug, remote: board.remotes[i] }));
        if (stopReason) stop(stopReason); // a timeout or abort while the board thread was starting
        return await firstEnding(vcpus, runs, () => stop('stopped'));
      } finally {
        await board.stop();
      }
    })();
  }
  gdb?.attach(running);
  if (options.signal?.aborted) onAbort();

  const result = (async (): Promise<RunResult> => {
    try {
      let vcpuResult: VcpuRunResult;
      try {
        vcpuResult = await running;
      } finally {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        await Promise.all(bridges.map((bridge) => bridge?.finish()));
        await gdb?.close();
      }
      const serialBytes = Buffer.concat(chunks);
      const base = {
        serial: serialBytes.toString('utf8'),
        serialBytes,
        durationMs: performance.now() - started,
        exits: vcpuResult.exits,
        format: loaded.format,
        notes: loaded.notes,
        warnings,
        ...(options.ksm ? { ksm: { running: ksmRunning(), mergingPages: ksmMergingPages() } } : {}),
        ...(vcpuResult.stats ? { stats: vcpuResult.stats as ExitStatsJson } : {}),
        ...(vcpuResult.state !== undefined ? { state: vcpuResult.state } : {}),
      };
      const outcome = vcpuResult.outcome;
      switch (outcome.reason) {
        case 'debug-exit':
          return { ...base, reason: 'debug-exit', exitCode: outcome.exitCode };
        case 'stopped':
          return { ...base, reason: stopReason ?? 'stopped', exitCode: 0 };
        case 'crash':
          return { ...base, reason: 'crash', exitCode: 0, crash: { description: outcome.description, state: outcome.state } };
        case 'halt':
        case 'reset':
          return { ...base, reason: outcome.reason, exitCode: 0 };
        default: {
          const never: never = outcome;
          throw new Error(`unreachable outcome ${JSON.stringify(never)}`);
        }
      }
    } finally {
      void vm.close(); // the kernel's VM teardown finishes in the background
    }
  })();

  const boot = vcpus[0]!;
  return {
    get state() {
      return boot.state;
    },
    pause: async () => {
      await Promise.all(vcpus.map((vcpu) => vcpu.pause()));
    },
    resume: () => vcpus.forEach((vcpu) => vcpu.resume()),
    stop: () => stop('stopped'),
    registers() {
      if (boot.state !== 'paused') throw new Error(`registers can be read only while the guest is paused (it is ${boot.state})`);
      return { regs: boot.getRegs(), sregs: boot.getSregs() };
    },
    result,
  };
}

/**
 * A multi-vCPU run ends when one vCPU's end is the guest's (debug-exit, reset, crash, a stop):
 * the others are stopped then. A vCPU that halted for good (an AP parked with `cli; hlt`) just
 * drops out; the run ends as a halt once every vCPU has — or once the only ones left are APs
 * still waiting for INIT/SIPI, which nobody is left to send. Exit counts add up; vCPU 0 gives the rest.
 */
function firstEnding(vcpus: readonly Vcpu[], runs: Promise<VcpuRunResult>[], stopAll: () => void): Promise<VcpuRunResult> {
  return new Promise((resolve, reject) => {
    const results: (VcpuRunResult | undefined)[] = [];
    let decided: VcpuRunResult | undefined;
    let left = runs.length;
    let parkedCheck: ReturnType<typeof setInterval> | undefined;
    const decide = (result: VcpuRunResult): void => {
      decided ??= result;
      stopAll();
    };
    runs.forEach((run, i) => {
      run.then(
        (result) => {
          results[i] = result;
          if (result.outcome.reason !== 'halt') {
            // A crash names its vCPU: with several, which one faulted matters.
            decide(result.outcome.reason === 'crash' ? { ...result, outcome: { ...result.outcome, description: `${result.outcome.description} on vCPU ${i}` } } : result);
          } else {
            parkedCheck ??= setInterval(() => {
              const running = vcpus.filter((_, j) => results[j] === undefined);
              if (running.length > 0 && running.every((vcpu) => vcpu.waitingForSipi)) decide(result);
            }, HALT_POLL_INTERVAL_MS);
          }
          if (--left > 0) return;
          clearInterval(parkedCheck);
          const done = results as VcpuRunResult[];
          const exits = { ...done[0]!.exits };
          for (const other of done.slice(1)) for (const key of Object.keys(exits) as (keyof ExitCounts)[]) exits[key] += other.exits[key];
          const stats = done.map((r) => r.stats).filter((x) => x !== undefined) as ExitStatsJson[];
          const merged = stats.length ? stats.slice(1).reduce((acc, next) => acc.merge(next), ExitStats.fromJSON(stats[0]!)).toJSON() : undefined;
          resolve({ ...done[0]!, outcome: (decided ?? done[0]!).outcome, exits, ...(merged ? { stats: merged } : {}) });
        },
        (err: unknown) => {
          clearInterval(parkedCheck);
          stopAll();
          reject(err);
        },
      );
    });
  });
}

/**
 * Memory over-commit, as a KVM user expects it: guest RAM is reserved, not committed, so a guest
 * larger than the host's free memory runs — but deserves a warning, since touching it all would
 * push the host into swap or the OOM killer. With --mem-prealloc it is committed up front.
 */
function overcommitWarnings(memorySize: number, options: RunGuestOptions): string[] {
  const warnings: string[] = [];
  const available = availableMemory();
  if (available !== undefined && memorySize > available) {
    warnings.push(
      `guest RAM (${mib(memorySize)} MiB) is larger than the host's available memory (${mib(available)} MiB): ` +
        (options.memPrealloc ? '--mem-prealloc may fail or push the host into swap' : 'pages are committed only when the guest touches them, so this works until it touches more than the host has'),
    );
  }
  if (options.ksm && ksmRunning() === false) {
    warnings.push('KSM is off (/sys/kernel/mm/ksm/run is 0): guest RAM is marked mergeable, but nothing merges it until root writes 1 there');
  }
  return warnings;
}

const mib = (bytes: number): number => Math.round(bytes / 2 ** 20);

/** The vCPU thread's debugging and tracing options, or undefined for the plain loop. */
function debugOptions(options: RunGuestOptions): VcpuJobDebug | undefined {
  if (!options.trace && !options.stats && !options.step && !options.dumpOnExit && !options.gdb) return undefined;
  return {
    startNs: process.hrtime.bigint(),
    ...(options.trace ? { trace: { fd: options.trace.fd ?? STDERR_FD, kinds: options.trace.kinds ?? null, ports: options.trace.ports ?? null } } : {}),
    ...(options.stats ? { stats: true } : {}),
    ...(options.step ? { step: { fd: options.step.fd ?? STDERR_FD } } : {}),
    ...(options.dumpOnExit ? { dumpOnExit: true } : {}),
    ...(options.gdb ? { debugger: { waitAtStart: options.gdb.wait ?? false } } : {}),
  };
}

const STDERR_FD = 2;

/**
 * What a PC BIOS leaves in memory for the guest to find: the BIOS data area (COM ports, memory
 * size, EBDA) and an MP table (CPUs, IOAPIC, ISA IRQ routing). Written before the image is loaded,
 * so an image that covers them wins; skipped on machines too small to have those areas.
 */
function writeFirmwareTables(memory: Uint8Array, memorySize: number, cpus: number): void {
  if (memorySize >= VGA_HOLE_ADDRESS) writeBiosDataArea(memory, { memorySize, com: COM_PORTS.map((p) => p.base) });
  if (memorySize >= BIOS_AREA_END) writeMpTable(memory, { cpus });
}

/** Reads the image, refusing what cannot be one before reading it whole. */
async function readImage(image: string | Uint8Array, memorySize: number): Promise<{ bytes: Uint8Array; name: string }> {
  if (typeof image !== 'string') return { bytes: image, name: 'guest' };
  return { bytes: await readGuestFile(image, `image '${image}'`, memorySize), name: image };
}

async function readModule(source: ModuleSource, memorySize: number): Promise<MultibootModule> {
  if (typeof source !== 'string') return source;
  return { name: source, bytes: await readGuestFile(source, `module '${source}'`, memorySize) };
}

async function readGuestFile(file: string, what: string, memorySize: number): Promise<Uint8Array> {
  let size: number;
  try {
    const st = await stat(file);
    if (st.isDirectory()) throw new UsageError(`${what} is a directory: give the path of a file`, 'EIMAGE');
    size = st.size;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw fileReadError(what, err);
  }
  if (size > memorySize) {
    throw new UsageError(`${what} is ${size} bytes, larger than guest RAM (${memorySize} bytes): raise --memory`, 'EIMAGE');
  }
  try {
    return await readFile(file);
  } catch (err) {
    throw fileReadError(what, err);
  }
}

function fileReadError(what: string, err: unknown): UsageError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new UsageError(`${what} not found: check the path (build the bundled guests with \`npm run build:guests\`)`, 'EIMAGE');
  if (code === 'EACCES') return new UsageError(`${what} cannot be read (permission denied): fix its permissions`, 'EIMAGE');
  if (code === 'EISDIR') return new UsageError(`${what} is a directory: give the path of a file`, 'EIMAGE');
  return new UsageError(`${what} cannot be read: ${(err as Error).message}`, 'EIMAGE');
}
