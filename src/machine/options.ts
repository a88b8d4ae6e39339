/**
 * What a caller may ask of a run (RunGuestOptions), and its validation into a MachineConfig: one
 * pure function, run before any file is opened or any KVM resource exists (Firecracker's
 * vmm_config). Messages speak in the library's terms (`options.memory`); the CLI maps those names
 * to its flags.
 */
import type { Readable } from 'node:stream';
import { COM_PORT_NAMES, type ComPortName } from '../board/pc-board.js';
import { TRACE_KINDS } from '../debug/trace.js';
import { UsageError } from '../errors.js';
import type { SerialInput, SerialSink } from '../io/serial-bridge.js';
import { GUEST_FORMATS, type GuestFormatChoice } from '../loader/guest.js';
import { MEMORY_MAX, parseMemorySize } from '../units.js';
import { validateBiosOptions, type BiosConfig, type BiosOptions } from '../bios/options.js';
import { CPUID_FEATURES, CPUID_VENDOR_LENGTH, type CpuidAdjustments } from '../arch/x86/cpuid.js';
import {
  validateRestoreOption,
  validateSaveOption,
  type RestoreConfig,
  type SaveConfig,
  type SnapshotRunOptions,
} from '../snapshot/options.js';

export const DEFAULT_MEMORY = '16M';

/**
 * The most vCPUs a PC guest can have here: xAPIC and MP-table IDs are 8 bits, 0xFF is the
 * broadcast ID, and the IOAPIC takes the ID after the last processor's (QEMU's pc machine has a
 * similar limit without x2APIC). KVM_CAP_MAX_VCPUS may lower it further.
 */
export const PC_MAX_VCPUS = 254;

/** One serial port's connection: input fed to the guest and a sink for its output. */
export interface SerialEndpoint {
  input?: SerialInput;
  output?: SerialSink;
}

/** A multiboot module: a file path (optionally with its arguments), or its bytes with a name. */
export type ModuleSource = string | { path: string; cmdline?: string } | { name: string; bytes: Uint8Array; cmdline?: string };

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
  /**
   * The register layout gdb is served: 'x86-64' or 'i386'. Default: the image's (an ELF64 is
   * x86-64 even when it starts in 32-bit mode, an ELF32 i386), else the boot vCPU's mode's.
   */
  arch?: GdbArch;
  /** Called once the server listens, with its port (useful with port 0). */
  onListening?: (port: number) => void;
  /** Called once if gdb turns out to use the other register layout (default: the line goes to stderr). */
  onHint?: (message: string) => void;
}

export type GdbArch = 'i386' | 'x86-64';
export const GDB_ARCHES: readonly GdbArch[] = ['i386', 'x86-64'];

export interface RunGuestOptions extends SnapshotRunOptions {
  /** A path to the image, or its bytes (optional when `bios.disks` has a disk to boot). */
  image?: string | Uint8Array;
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
   * Where a one-vCPU guest's exit loop runs: 'worker' (default), a pooled worker thread, so the
   * caller's event loop never waits and guests run in parallel; 'caller', the calling thread, in
   * slices of at most 10 ms between which its event loop runs: no thread to start (what
   * `tskvm run` uses). Runs that need a worker (several vCPUs, gdb, trace, step, the ffi-rs
   * backend) use one either way.
   */
  vcpuThread?: 'worker' | 'caller';
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
  /**
   * tskvm's BIOS (src/bios): a boot sector image, or `bios.disks` without an image, boots through
   * it (INT 10h/13h/16h/1Ah..., VGA text at 0xB8000). `false` keeps the bare boot-sector start.
   */
  bios?: BiosOptions | false;
  /**
   * The guest's CPUID is the host's (filtered); `remove` takes features out by name (QEMU's
   * spelling: x2apic, tsc-deadline, pcid...; see CPUID_FEATURES), `vendor` sets the 12-character
   * vendor string (GenuineIntel, AuthenticAMD), as QEMU's `-cpu host,-x2apic,vendor=...`.
   */
  cpuid?: CpuidAdjustments;
}

/** A guest file: read from a path, or given as bytes. */
export type GuestFileSource = { path: string } | { name: string; bytes: Uint8Array };

/** A validated run: every field checked and defaulted. */
export interface MachineConfig {
  /** Absent only when the BIOS boots one of `bios.disks`. */
  image: GuestFileSource | undefined;
  memorySize: number;
  format: GuestFormatChoice;
  cmdline: string | undefined;
  modules: (GuestFileSource & { cmdline?: string })[];
  longMode: boolean;
  cpus: number;
  irqchip: boolean;
  memPrealloc: boolean;
  ksm: boolean;
  hugepages: boolean;
  timeoutMs: number | undefined;
  signal: AbortSignal | undefined;
  collectSerial: boolean;
  vcpuThread: 'worker' | 'caller';
  /** Per COM port, normalised: COM1 from serialInput/onSerial unless serialPorts names it. */
  serial: Partial<Record<ComPortName, SerialEndpoint>>;
  trace: { fd: number; kinds: string[] | null; ports: [number, number][] | null } | undefined;
  stats: boolean;
  step: { fd: number } | undefined;
  dumpOnExit: boolean;
  gdb: GdbOptions | undefined;
  /** undefined: no BIOS (options.bios === false). */
  bios: BiosConfig | undefined;
  /** Restore this snapshot instead of booting an image (src/snapshot/restore.ts). */
  restore: RestoreConfig | undefined;
  /** Save a snapshot when the guest gets somewhere (src/snapshot/options.ts). */
  save: SaveConfig | undefined;
  /** What changes in every vCPU's CPUID ({} for none). */
  cpuid: CpuidAdjustments;
}

const STDERR_FD = 2;
const TCP_PORT_MAX = 0xffff;
const IO_PORT_MAX = 0xffff;

/** Checks every option before anything is opened or created; throws UsageError naming the option. */
export function validateRunOptions(options: unknown): MachineConfig {
  if (!isObject(options)) {
    throw new UsageError(`runGuest needs an options object with at least \`image\` (a path or bytes), not ${describe(options)}`);
  }
  const o = options as Partial<Record<keyof RunGuestOptions, unknown>>;
  const restore = validateRestoreOption(o);
  const bios = validateBiosOptions(o.bios); // with a restore, only its endpoints (console, screen, keys) are used
  const image = restore || (o.image === undefined && bios && bios.disks.length > 0) ? undefined : guestFile(o.image, 'options.image');
  const memorySize = memory(o.memory);
  const format = o.format ?? 'auto';
  if (!GUEST_FORMATS.includes(format as GuestFormatChoice)) {
    throw new UsageError(`invalid options.format '${String(format)}': use one of ${GUEST_FORMATS.join(', ')}`);
  }
  const cpus = o.cpus ?? 1;
  if (typeof cpus !== 'number' || !Number.isInteger(cpus) || cpus < 1 || cpus > PC_MAX_VCPUS) {
    throw new UsageError(
      `invalid options.cpus '${String(cpus)}': use a whole number of vCPUs from 1 to ${PC_MAX_VCPUS} ` +
        `(8-bit APIC IDs; KVM_CAP_MAX_VCPUS may allow fewer)`,
    );
  }
  const gdb = gdbOptions(o.gdb);
  const signal = o.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new UsageError(`invalid options.signal: give an AbortSignal, not ${describe(signal)}`);
  }
  return {
    image,
    memorySize,
    format: format as GuestFormatChoice,
    cmdline: optionalString(o.cmdline, 'options.cmdline'),
    modules: modules(o.modules),
    longMode: flag(o.longMode, 'options.longMode'),
    cpus,
    irqchip: flag(o.irqchip, 'options.irqchip', true),
    memPrealloc: flag(o.memPrealloc, 'options.memPrealloc'),
    ksm: flag(o.ksm, 'options.ksm'),
    hugepages: flag(o.hugepages, 'options.hugepages'),
    timeoutMs: timeout(o.timeoutMs),
    signal,
    collectSerial: flag(o.collectSerial, 'options.collectSerial', true),
    vcpuThread: vcpuThread(o.vcpuThread),
    serial: serialPorts(o),
    trace: traceOptions(o.trace),
    stats: flag(o.stats, 'options.stats'),
    step: o.step === undefined ? undefined : { fd: fd(objectField(o.step, 'options.step', 'fd'), 'options.step.fd') },
    dumpOnExit: flag(o.dumpOnExit, 'options.dumpOnExit'),
    gdb,
    bios,
    restore,
    save: validateSaveOption(o.save),
    cpuid: cpuidOptions(o.cpuid),
  };
}

function vcpuThread(value: unknown): 'worker' | 'caller' {
  if (value === undefined || value === 'worker' || value === 'caller') return value ?? 'worker';
  throw new UsageError(`invalid options.vcpuThread ${describe(value)}: give 'worker' or 'caller'`);
}

function cpuidOptions(value: unknown): CpuidAdjustments {
  if (value === undefined) return {};
  if (!isObject(value)) throw new UsageError(`invalid options.cpuid: give { remove?, vendor? }, not ${describe(value)}`);
  const remove = value.remove ?? [];
  if (!Array.isArray(remove) || !remove.every((name) => typeof name === 'string' && Object.hasOwn(CPUID_FEATURES, name))) {
    const bad = Array.isArray(remove) ? remove.find((name) => typeof name !== 'string' || !Object.hasOwn(CPUID_FEATURES, name)) : remove;
    throw new UsageError(
      `invalid options.cpuid.remove: ${describe(bad)} is not a CPUID feature tskvm knows; use names such as ${Object.keys(CPUID_FEATURES).slice(0, 8).join(', ')}... (CPUID_FEATURES)`,
    );
  }
  const vendor = value.vendor;
  if (vendor !== undefined && (typeof vendor !== 'string' || vendor.length !== CPUID_VENDOR_LENGTH || !/^[\x20-\x7e]*$/.test(vendor))) {
    throw new UsageError(
      `invalid options.cpuid.vendor ${describe(vendor)}: give ${CPUID_VENDOR_LENGTH} ASCII characters, e.g. GenuineIntel or AuthenticAMD`,
    );
  }
  return { remove: remove as string[], ...(vendor === undefined ? {} : { vendor: vendor as string }) };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string '${value.length > 40 ? `${value.slice(0, 40)}…` : value}'`;
  return typeof value === 'object' ? `a ${value.constructor?.name ?? 'object'}` : `${typeof value} ${String(value)}`;
}

function guestFile(value: unknown, what: string): GuestFileSource {
  if (typeof value === 'string' && value !== '') return { path: value };
  if (value instanceof Uint8Array) return { name: 'guest', bytes: value };
  throw new UsageError(`invalid ${what}: give a file path or the image's bytes (a Uint8Array), not ${describe(value)}`, 'EIMAGE');
}

function memory(value: unknown): number {
  if (value === undefined) return parseMemorySize(DEFAULT_MEMORY);
  if (typeof value === 'string') return parseMemorySize(value);
  if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0 && value <= MEMORY_MAX) return parseMemorySize(`${value}B`);
  throw new UsageError(`invalid options.memory ${describe(value)}: give bytes (at most ${MEMORY_MAX}) or a size such as '16M'`);
}

function modules(value: unknown): MachineConfig['modules'] {
  if (value === undefined) return [];
  if (!Array.isArray(value))
    throw new UsageError(`invalid options.modules: give an array of paths or { name, bytes }, not ${describe(value)}`);
  return value.map((m: unknown, i) => {
    const what = `options.modules[${i}]`;
    if (typeof m === 'string' && m !== '') return { path: m };
    if (isObject(m) && typeof m.path === 'string' && m.path !== '') {
      return { path: m.path, ...(m.cmdline === undefined ? {} : { cmdline: optionalString(m.cmdline, `${what}.cmdline`) }) };
    }
    if (isObject(m) && typeof m.name === 'string' && m.bytes instanceof Uint8Array) {
      return {
        name: m.name,
        bytes: m.bytes,
        ...(m.cmdline === undefined ? {} : { cmdline: optionalString(m.cmdline, `${what}.cmdline`) }),
      };
    }
    throw new UsageError(
      `invalid ${what}: give a file path, { path, cmdline? } or { name, bytes, cmdline? }, not ${describe(m)}`,
      'EIMAGE',
    );
  });
}

function timeout(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new UsageError(`invalid timeout options.timeoutMs ${describe(value)}: it must be a positive number of milliseconds`);
  }
  return value;
}

function serialPorts(o: Partial<Record<keyof RunGuestOptions, unknown>>): MachineConfig['serial'] {
  const ports = o.serialPorts;
  const serial: MachineConfig['serial'] = {};
  if (ports !== undefined) {
    if (!isObject(ports)) throw new UsageError(`invalid options.serialPorts: give an object keyed by ${COM_PORT_NAMES.join(', ')}`);
    for (const [port, endpoint] of Object.entries(ports)) {
      if (!COM_PORT_NAMES.includes(port as ComPortName)) {
        throw new UsageError(`unknown serial port '${port}' in options.serialPorts: use ${COM_PORT_NAMES.join(', ')}`);
      }
      if (endpoint === undefined) continue;
      if (!isObject(endpoint))
        throw new UsageError(`invalid options.serialPorts.${port}: give { input?, output? }, not ${describe(endpoint)}`);
      serial[port as ComPortName] = serialEndpoint(endpoint.input, endpoint.output, `options.serialPorts.${port}`);
    }
  }
  if (!serial.COM1 && !(isObject(ports) && 'COM1' in ports)) serial.COM1 = serialEndpoint(o.serialInput, o.onSerial, 'options');
  else if (o.serialInput !== undefined || o.onSerial !== undefined) {
    throw new UsageError('options.serialInput/onSerial and options.serialPorts.COM1 both connect COM1: give one of them');
  }
  return serial;
}

function serialEndpoint(input: unknown, output: unknown, what: string): SerialEndpoint {
  const inputName = what === 'options' ? 'options.serialInput' : `${what}.input`;
  const outputName = what === 'options' ? 'options.onSerial' : `${what}.output`;
  if (input !== undefined && typeof input !== 'string' && !(input instanceof Uint8Array) && !isReadable(input)) {
    throw new UsageError(`invalid ${inputName}: give a string, a Uint8Array or a readable stream, not ${describe(input)}`);
  }
  if (output !== undefined && typeof output !== 'function') {
    throw new UsageError(`invalid ${outputName}: give a function (chunk) => void | Promise<void>, not ${describe(output)}`);
  }
  return {
    ...(input === undefined ? {} : { input: input as SerialInput }),
    ...(output === undefined ? {} : { output: output as SerialSink }),
  };
}

function isReadable(value: unknown): value is Readable {
  return isObject(value) && typeof value.on === 'function' && typeof value.off === 'function' && typeof value.pause === 'function';
}

function traceOptions(value: unknown): MachineConfig['trace'] {
  if (value === undefined) return undefined;
  if (!isObject(value)) throw new UsageError(`invalid options.trace: give { fd?, kinds?, ports? }, not ${describe(value)}`);
  const kinds = value.kinds;
  if (kinds !== undefined && (!Array.isArray(kinds) || !kinds.every((k) => (TRACE_KINDS as readonly unknown[]).includes(k)))) {
    throw new UsageError(`invalid options.trace.kinds: give an array of ${TRACE_KINDS.join(', ')}`);
  }
  const ports = value.ports;
  const isRange = (r: unknown): boolean =>
    Array.isArray(r) &&
    r.length === 2 &&
    r.every((p) => Number.isInteger(p) && (p as number) >= 0 && (p as number) <= IO_PORT_MAX) &&
    r[0] <= r[1];
  if (ports !== undefined && (!Array.isArray(ports) || !ports.every(isRange))) {
    throw new UsageError('invalid options.trace.ports: give an array of [first, last] port pairs from 0 to 0xffff');
  }
  return {
    fd: fd(value.fd, 'options.trace.fd'),
    kinds: (kinds as string[] | undefined) ?? null,
    ports: (ports as [number, number][] | undefined) ?? null,
  };
}

function gdbOptions(value: unknown): GdbOptions | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value))
    throw new UsageError(`invalid options.gdb: give { port, wait?, arch?, onListening?, onHint? }, not ${describe(value)}`);
  const port = value.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > TCP_PORT_MAX) {
    throw new UsageError(`invalid options.gdb.port ${describe(port)}: use a TCP port number from 0 (any free port) to ${TCP_PORT_MAX}`);
  }
  if (value.onListening !== undefined && typeof value.onListening !== 'function') {
    throw new UsageError('invalid options.gdb.onListening: give a function (port) => void');
  }
  if (value.onHint !== undefined && typeof value.onHint !== 'function') {
    throw new UsageError('invalid options.gdb.onHint: give a function (message) => void');
  }
  if (value.arch !== undefined && !GDB_ARCHES.includes(value.arch as GdbArch)) {
    throw new UsageError(
      `invalid options.gdb.arch ${describe(value.arch)}: use one of ${GDB_ARCHES.join(', ')} (the register layout gdb is served)`,
    );
  }
  return {
    port,
    wait: flag(value.wait, 'options.gdb.wait'),
    ...(value.arch === undefined ? {} : { arch: value.arch as GdbArch }),
    ...(value.onHint === undefined ? {} : { onHint: value.onHint as (message: string) => void }),
    ...(value.onListening === undefined ? {} : { onListening: value.onListening as (port: number) => void }),
  };
}

function objectField(value: unknown, what: string, field: string): unknown {
  if (!isObject(value)) throw new UsageError(`invalid ${what}: give an object, not ${describe(value)}`);
  return value[field];
}

function fd(value: unknown, what: string): number {
  if (value === undefined) return STDERR_FD;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new UsageError(`invalid ${what} ${describe(value)}: give an open fd number`);
  }
  return value;
}

function flag(value: unknown, what: string, fallback = false): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new UsageError(`invalid ${what}: give true or false, not ${describe(value)}`);
  return value;
}

function optionalString(value: unknown, what: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new UsageError(`invalid ${what}: give a string, not ${describe(value)}`);
  return value;
}
