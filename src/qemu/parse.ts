/**
 * qemu-system-x86_64's command line, the subset test harnesses and OS-development Makefiles use,
 * read into what tskvm will run. QEMU spells every option `-opt` or `--opt` (never `-opt=value`:
 * QEMU takes the next argument), parses them in order, and fails on the first it cannot take;
 * so does this, with a UsageError `-foo is not supported by tskvm (why; what to do)`. Pure: the
 * files, KVM and the run come later (main.ts).
 */
import { UsageError } from '../errors.js';
import { parseMemorySize } from '../units.js';
import { parseCpuOption, type CpuChoice } from './cpu.js';
import { own } from './lookup.js';
import { MACHINE_NAME } from './texts.js';

/** What the command line asks for: a text to print (help, lists), or a guest to run. */
export type QemuInvocation =
  { kind: 'print'; what: 'help' | 'version' | 'devices' | 'cpus' | 'machines' | 'accels' } | { kind: 'run'; run: QemuRun };

/** A disk for tskvm's BIOS: a floppy (-fda, if=floppy) or a hard disk (-hda, -drive, a bare image). */
export interface QemuDisk {
  path: string;
  kind: 'floppy' | 'hard disk';
  /** How it was given, for messages. */
  option: string;
}

export interface QemuRun {
  /** Undefined when the guest boots from `disks` through tskvm's BIOS. */
  kernel: string | undefined;
  disks: QemuDisk[];
  /** -boot's first drive: a (floppy) or c (hard disk); undefined: QEMU's order, hard disk first. */
  boot: 'a' | 'c' | undefined;
  /** Disk writes reach the files (QEMU's default); false with -snapshot or readonly=on. */
  diskWrite: boolean;
  append: string | undefined;
  initrd: string | undefined;
  memoryBytes: number;
  cpus: number;
  /** `tskvm run --serial` routes: COMn=stdio|file:PATH|null. */
  serial: string[];
  /** -no-reboot: a reset ends the run as QEMU's does (tskvm ends it either way, with a warning without it). */
  noReboot: boolean;
  gdbPort: number | undefined;
  /** -S: stop before the first instruction until gdb continues. */
  gdbWait: boolean;
  memPrealloc: boolean;
  cpu: CpuChoice;
  /** Things tskvm does differently from what was asked, for stderr as `warning:` lines. */
  warnings: string[];
}

/** QEMU's default guest RAM (128 MiB), which kvm-unit-tests' kernels expect when -m is absent. */
export const QEMU_DEFAULT_MEMORY = 128 * 2 ** 20;
/** `-s`: QEMU's shorthand for -gdb tcp::1234. */
export const QEMU_GDB_DEFAULT_PORT = 1234;
const TCP_PORT_MAX = 0xffff;
/** isa-debug-exit's port in kvm-unit-tests and tskvm (DEBUG_EXIT_PORT); QEMU's default iobase, 0x501, is refused. */
const DEBUG_EXIT_IOBASE = 0xf4;
const DEBUG_EXIT_IOSIZES = [1, 2, 4];
const COM_PORT_COUNT = 4;

interface State {
  kernel?: string;
  disks: QemuDisk[];
  boot?: 'a' | 'c';
  snapshot: boolean;
  readonlyDisks: number;
  append?: string;
  initrd?: string;
  memoryBytes: number;
  cpus: number;
  serial: string[];
  nodefaults: boolean;
  nographic: boolean;
  display: boolean;
  noReboot: boolean;
  gdbPort?: number;
  gdbWait: boolean;
  memPrealloc: boolean;
  cpu: CpuChoice;
  warnings: string[];
  print?: Extract<QemuInvocation, { kind: 'print' }>['what'];
}

interface OptionSpec {
  arg: boolean;
  apply(state: State, value: string): void;
}

export function refuse(option: string, why: string): UsageError {
  return new UsageError(`${option} is not supported by tskvm (${why})`);
}

const ok = (): void => {};

/** The options tskvm takes, by QEMU's name (without the dash). */
const OPTIONS: Readonly<Record<string, OptionSpec>> = {
  h: { arg: false, apply: (s) => (s.print ??= 'help') },
  help: { arg: false, apply: (s) => (s.print ??= 'help') },
  version: { arg: false, apply: (s) => (s.print ??= 'version') },
  kernel: { arg: true, apply: (s, v) => (s.kernel = v) },
  hda: { arg: true, apply: (s, v) => s.disks.push({ path: v, kind: 'hard disk', option: `-hda ${v}` }) },
  hdb: { arg: true, apply: (s, v) => s.disks.push({ path: v, kind: 'hard disk', option: `-hdb ${v}` }) },
  hdc: { arg: true, apply: (s, v) => s.disks.push({ path: v, kind: 'hard disk', option: `-hdc ${v}` }) },
  hdd: { arg: true, apply: (s, v) => s.disks.push({ path: v, kind: 'hard disk', option: `-hdd ${v}` }) },
  fda: { arg: true, apply: (s, v) => s.disks.push({ path: v, kind: 'floppy', option: `-fda ${v}` }) },
  fdb: { arg: true, apply: (s, v) => s.disks.push({ path: v, kind: 'floppy', option: `-fdb ${v}` }) },
  drive: { arg: true, apply: driveOption },
  boot: { arg: true, apply: bootOption },
  snapshot: { arg: false, apply: (s) => (s.snapshot = true) },
  append: { arg: true, apply: (s, v) => (s.append = v) },
  initrd: { arg: true, apply: (s, v) => (s.initrd = v) },
  m: { arg: true, apply: (s, v) => (s.memoryBytes = memoryOption(v)) },
  smp: { arg: true, apply: (s, v) => (s.cpus = smpOption(s, v)) },
  cpu: {
    arg: true,
    apply: (s, v) => {
      if (v === 'help' || v === '?') s.print ??= 'cpus';
      else s.cpu = parseCpuOption(v);
    },
  },
  machine: { arg: true, apply: machineOption },
  M: { arg: true, apply: machineOption },
  accel: { arg: true, apply: accelOption },
  'enable-kvm': { arg: false, apply: ok },
  nodefaults: { arg: false, apply: (s) => (s.nodefaults = true) },
  'no-reboot': { arg: false, apply: (s) => (s.noReboot = true) },
  display: { arg: true, apply: displayOption },
  nographic: { arg: false, apply: (s) => ((s.nographic = true), (s.display = false)) },
  vga: {
    arg: true,
    apply: (_s, v) => {
      if (v !== 'none' && v !== 'std') throw refuse(`-vga ${v}`, 'tskvm has no graphics card to choose: use -vga none or -display none');
    },
  },
  serial: { arg: true, apply: serialOption },
  monitor: {
    arg: true,
    apply: (_s, v) => {
      if (v !== 'none' && v !== 'null') throw refuse(`-monitor ${v}`, 'tskvm has no QEMU monitor: use -monitor none, or drop it');
    },
  },
  global: { arg: true, apply: globalOption },
  device: { arg: true, apply: deviceOption },
  s: { arg: false, apply: (s) => (s.gdbPort = QEMU_GDB_DEFAULT_PORT) },
  gdb: { arg: true, apply: gdbOption },
  S: { arg: false, apply: (s) => (s.gdbWait = true) },
  name: { arg: true, apply: ok },
  overcommit: { arg: true, apply: overcommitOption },
  'mem-prealloc': { arg: false, apply: (s) => (s.memPrealloc = true) },
  net: { arg: true, apply: (_s, v) => noNetwork('-net', v) },
  nic: { arg: true, apply: (_s, v) => noNetwork('-nic', v) },
};

const NO_DISKS = "tskvm's BIOS boots raw floppy and hard disk images: give them with -fda, -hda or -drive file=FILE,format=raw";
const NO_MONITOR = "tskvm has no QEMU monitor or QMP: drive a guest from a program with tskvm's library (startGuest)";
const NO_DISPLAY = 'tskvm has no graphical display: use -display none, and -serial stdio for the console';

/** QEMU options tskvm refuses, with why and what to do instead (all others get a general answer). */
const REFUSED: Readonly<Record<string, string>> = {
  'no-shutdown': 'QEMU then stops and waits for its monitor; tskvm has no monitor and ends the run when the guest powers off: drop it',
  qmp: NO_MONITOR,
  'qmp-pretty': NO_MONITOR,
  mon: NO_MONITOR,
  chardev: `${NO_MONITOR}; route serial ports with -serial stdio|file:PATH|null`,
  incoming:
    'tskvm has no live migration; it saves and restores whole guests instead: tskvm run --save FILE --save-on PATTERN, then --restore FILE',
  loadvm: 'tskvm restores snapshots with tskvm run --restore FILE',
  blockdev: NO_DISKS,
  cdrom: "tskvm's BIOS has no CD-ROM boot (El Torito): give a floppy or hard disk image with -fda or -hda",
  bios: 'tskvm loads the -kernel itself and cannot run SeaBIOS or OVMF firmware',
  pflash: 'tskvm loads the -kernel itself and cannot run SeaBIOS or OVMF firmware',
  L: 'tskvm loads the -kernel itself and needs no firmware directory',
  netdev: 'tskvm has no network devices',
  usb: 'tskvm has no USB',
  usbdevice: 'tskvm has no USB',
  daemonize: 'tskvm-qemu runs in the foreground (tskvm define and tskvm start run a guest in the background, as virsh does)',
  d: 'for a log of VM exits use tskvm run --trace (or --trace-file FILE)',
  D: 'for a log of VM exits use tskvm run --trace-file FILE',
  trace: 'for a log of VM exits use tskvm run --trace',
  vnc: NO_DISPLAY,
  spice: NO_DISPLAY,
  sdl: NO_DISPLAY,
  curses: NO_DISPLAY,
  'full-screen': NO_DISPLAY,
  'no-acpi': "tskvm's PC always has its ACPI tables",
  'no-hpet': "tskvm's PC always has its HPET",
  icount: 'tskvm runs guests on KVM, in real time; there is no instruction counting',
  dtb: 'a device tree is for other architectures; x86 kernels get ACPI and MP tables',
};

/** Parses argv (without the program name). Throws UsageError naming the first option tskvm cannot take. */
export function parseQemuArgs(argv: readonly string[]): QemuInvocation {
  const state: State = {
    memoryBytes: QEMU_DEFAULT_MEMORY,
    disks: [],
    snapshot: false,
    readonlyDisks: 0,
    cpus: 1,
    serial: [],
    nodefaults: false,
    nographic: false,
    display: true,
    noReboot: false,
    gdbWait: false,
    memPrealloc: false,
    cpu: parseCpuOption('host'),
    warnings: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-') || arg === '-') {
      // QEMU takes an argument without an option as the first hard disk.
      state.disks.push({ path: arg, kind: 'hard disk', option: arg });
      continue;
    }
    const name = arg.startsWith('--') ? arg.slice(2) : arg.slice(1);
    const spec = own(OPTIONS, name);
    if (!spec) {
      const why =
        own(REFUSED, name) ??
        "it is not among the qemu-system-x86_64 options tskvm-qemu takes: see 'tskvm-qemu -h' and docs/qemu-frontend.md";
      throw refuse(`-${name}`, why);
    }
    let value = '';
    if (spec.arg) {
      if (i + 1 >= argv.length) throw new UsageError(`-${name}: requires an argument`);
      value = argv[++i]!;
    }
    spec.apply(state, value);
    // QEMU answers -h and -version as soon as it reads them.
    if (state.print === 'help' || state.print === 'version') return { kind: 'print', what: state.print };
  }
  if (state.print) return { kind: 'print', what: state.print };
  return { kind: 'run', run: finish(state) };
}

function finish(state: State): QemuRun {
  if (state.kernel === undefined && state.disks.length === 0) {
    throw new UsageError(
      'nothing to boot: give a kernel with -kernel FILE, or a disk image with -fda, -hda or -drive file=FILE,format=raw',
    );
  }
  if (state.kernel !== undefined && state.disks.length > 0) {
    throw refuse(
      `-kernel with ${state.disks[0]!.option}`,
      "tskvm's BIOS serves disks to a boot sector it boots, not to a -kernel: give either the kernel or the disks",
    );
  }
  if (state.readonlyDisks > 0 && state.readonlyDisks < state.disks.length && !state.snapshot) {
    throw refuse(
      'readonly=on on some disks only',
      'tskvm writes either every disk file or none: make them all readonly=on, or use -snapshot',
    );
  }
  if (state.gdbWait && state.gdbPort === undefined) {
    throw refuse(
      '-S without -s or -gdb',
      'QEMU then waits for its monitor to start the CPU; tskvm has no monitor: add -s or -gdb tcp::PORT, and continue from gdb',
    );
  }
  const warnings = [...state.warnings, ...state.cpu.warnings];
  if (state.serial.length === 0) {
    // QEMU's default serial port: stdio with -nographic, else a console on the display (nothing here).
    if (state.nographic && !state.nodefaults) state.serial.push('COM1=stdio');
    else {
      state.serial.push('COM1=null');
      if (state.display && !state.nodefaults) {
        warnings.push("tskvm has no display for QEMU's default serial console: the guest's COM1 output is dropped (add -serial stdio)");
      }
    }
  }
  if (state.display && !state.nographic) warnings.push('tskvm has no graphical display: running as with -display none');
  return {
    kernel: state.kernel,
    disks: state.disks,
    boot: state.boot,
    diskWrite: !state.snapshot && state.readonlyDisks === 0,
    append: state.append,
    initrd: state.initrd,
    memoryBytes: state.memoryBytes,
    cpus: state.cpus,
    serial: state.serial,
    noReboot: state.noReboot,
    gdbPort: state.gdbPort,
    gdbWait: state.gdbWait,
    memPrealloc: state.memPrealloc,
    cpu: state.cpu,
    warnings,
  };
}

/** `k=v,k2=v2` (a first item without `=` is `first=`'s value); QEMU's ",," for a comma is not needed here. */
function keyValues(text: string, first?: string): [string, string][] {
  return text
    .split(',')
    .filter((item) => item !== '')
    .map((item, i) => {
      const eq = item.indexOf('=');
      if (eq < 0) return i === 0 && first ? [first, item] : [item, 'on'];
      return [item.slice(0, eq), item.slice(eq + 1)];
    });
}

/** `-drive file=FILE,format=raw[,if=ide|floppy][,media=disk][,index=n][,readonly=on][,snapshot=on]`. */
function driveOption(state: State, text: string): void {
  const fields = keyValues(text);
  let path: string | undefined;
  let kind: QemuDisk['kind'] = 'hard disk';
  let readonly = false;
  for (const [key, value] of fields) {
    const what = `-drive ${text}`;
    switch (key) {
      case 'file':
        path = value;
        break;
      case 'format':
        if (value !== 'raw') throw refuse(what, `format=${value}: tskvm's BIOS reads raw images only (qemu-img convert -O raw makes one)`);
        break;
      case 'if':
        if (value === 'floppy') kind = 'floppy';
        else if (value !== 'ide' && value !== 'none')
          throw refuse(what, `if=${value}: tskvm's BIOS has floppies and hard disks only (if=floppy or if=ide)`);
        break;
      case 'media':
        if (value !== 'disk') throw refuse(what, `media=${value}: tskvm's BIOS has no CD-ROM boot (El Torito)`);
        break;
      case 'readonly':
        readonly = onOffAuto(value, what);
        break;
      case 'snapshot':
        if (onOffAuto(value, what)) readonly = true;
        break;
      case 'index':
      case 'id':
      case 'cache':
      case 'aio':
        break;
      default:
        throw refuse(what, `${key}: tskvm takes file, format=raw, if, media=disk, index, readonly and snapshot`);
    }
  }
  if (path === undefined || path === '') throw refuse(`-drive ${text}`, 'give the image with file=FILE');
  if (readonly) state.readonlyDisks++;
  state.disks.push({ path, kind, option: `-drive ${text}` });
}

/** `-boot [order=]drives[,menu=..][,once=..]`: the first of a (floppy) or c (hard disk). */
function bootOption(state: State, text: string): void {
  for (const [key, value] of keyValues(text, 'order')) {
    if (key === 'order' || key === 'once') {
      const first = value[0];
      if (first !== 'a' && first !== 'c') {
        throw refuse(`-boot ${text}`, `${value}: tskvm's BIOS boots a floppy (a) or a hard disk (c), not a CD-ROM (d) or the network (n)`);
      }
      state.boot = first;
    } else if (key !== 'menu' && key !== 'strict' && key !== 'splash-time' && key !== 'reboot-timeout') {
      throw refuse(`-boot ${text}`, `${key}: use -boot order=a or order=c`);
    }
  }
}

/** `-m [size=]megs[,slots=n,maxmem=size]`: a bare number is MiB, as in QEMU. */
function memoryOption(text: string): number {
  let size: string | undefined;
  for (const [key, value] of keyValues(text, 'size')) {
    if (key === 'size') size = value;
    else throw refuse(`-m ${text}`, `${key}: tskvm has no memory hotplug; give only the size, e.g. -m 256M`);
  }
  if (size === undefined) throw refuse(`-m ${text}`, 'give the size, e.g. -m 256M');
  try {
    return parseMemorySize(/^\d+(\.\d+)?$/.test(size) ? `${size}M` : size);
  } catch (err) {
    throw refuse(
      `-m ${text}`,
      `${(err as Error).message.replace(/^invalid memory size '[^']*': /, '')}; tskvm's guests have 4K pages and at most 4G of RAM`,
    );
  }
}

const TOPOLOGY_KEYS = ['sockets', 'dies', 'clusters', 'cores', 'threads'];

/** `-smp [cpus=]n[,maxcpus=n][,sockets=n][,dies=n][,clusters=n][,cores=n][,threads=n]` (the host's limit is checked by run.ts). */
function smpOption(state: State, text: string): number {
  const fields = new Map<string, number>();
  for (const [key, value] of keyValues(text, 'cpus')) {
    if (key !== 'cpus' && key !== 'maxcpus' && !TOPOLOGY_KEYS.includes(key)) {
      throw refuse(`-smp ${text}`, `${key}: use [cpus=]n with maxcpus, sockets, dies, clusters, cores or threads`);
    }
    if (!/^\d+$/.test(value) || Number(value) < 1) throw refuse(`-smp ${text}`, `${key}=${value}: give a whole number from 1`);
    fields.set(key, Number(value));
  }
  const topology = TOPOLOGY_KEYS.map((key) => fields.get(key) ?? 1).reduce((a, b) => a * b, 1);
  const given = TOPOLOGY_KEYS.some((key) => fields.has(key));
  const cpus = fields.get('cpus') ?? (given ? topology : 1);
  if (given && topology !== cpus) {
    throw refuse(`-smp ${text}`, `the topology has ${topology} CPUs but cpus=${cpus}: make them agree`);
  }
  const maxcpus = fields.get('maxcpus');
  if (maxcpus !== undefined && maxcpus !== cpus) throw refuse(`-smp ${text}`, `maxcpus=${maxcpus}: tskvm has no CPU hotplug; drop maxcpus`);
  if (given && cpus > 1) {
    state.warnings.push(
      `-smp ${text}: the guest gets ${cpus} vCPUs; their CPUID topology leaves are the host's, not the sockets/cores/threads asked for`,
    );
  }
  return cpus;
}

/** `-machine [type=]name[,prop=value...]`: tskvm's PC is QEMU's i440FX pc machine. */
function machineOption(state: State, text: string): void {
  if (text === 'help' || text === '?') {
    state.print ??= 'machines';
    return;
  }
  for (const [key, value] of keyValues(text, 'type')) {
    const what = `-machine ${key}=${value}`;
    switch (key) {
      case 'type':
        if (value === 'help' || value === '?') state.print ??= 'machines';
        else if (/^q35$|^pc-q35-/.test(value)) {
          throw refuse(
            `-machine ${value}`,
            "tskvm's PC is QEMU's i440FX pc machine; q35 (ICH9, PCI Express, the intel-iommu) is not there: run this guest on QEMU, or drop -M q35",
          );
        } else if (value !== 'pc' && !value.startsWith('pc-i440fx-')) {
          throw refuse(`-machine ${value}`, `tskvm has one machine, QEMU's pc (${MACHINE_NAME}): use -machine pc`);
        }
        break;
      case 'accel':
        accelName(value, what);
        break;
      case 'kernel-irqchip':
        kernelIrqchip(value, what);
        break;
      case 'vmport':
        if (value === 'off') throw refuse(what, "tskvm's PC always answers VMware's backdoor at port 0x5658: drop vmport=off");
        onOffAuto(value, what);
        break;
      case 'pit':
        if (!onOffAuto(value, what)) state.warnings.push("-machine pit=off: tskvm's PC always has KVM's in-kernel 8254 PIT; it stays");
        break;
      case 'smm':
        if (onOffAuto(value, what) && value !== 'auto') throw refuse(what, 'tskvm has no system management mode: use smm=off');
        break;
      case 'hpet':
      case 'acpi':
        if (!onOffAuto(value, what)) throw refuse(what, `tskvm's PC always has its ${key === 'hpet' ? 'HPET' : 'ACPI tables'}`);
        break;
      case 'usb':
        if (onOffAuto(value, what) && value !== 'auto') throw refuse(what, 'tskvm has no USB: use usb=off');
        break;
      case 'graphics':
        if (onOffAuto(value, what) && value !== 'auto') throw refuse(what, 'tskvm has no graphical display: use graphics=off');
        break;
      case 'mem-merge':
      case 'dump-guest-core':
        onOffAuto(value, what);
        break;
      default:
        throw refuse(what, 'tskvm takes accel, kernel-irqchip, vmport, pit, smm, hpet, acpi, usb, graphics, mem-merge and dump-guest-core');
    }
  }
}

/** `-accel kvm[,prop=value...]`. */
function accelOption(state: State, text: string): void {
  if (text === 'help' || text === '?') {
    state.print ??= 'accels';
    return;
  }
  for (const [key, value] of keyValues(text, 'accel')) {
    const what = `-accel ${key}=${value}`;
    if (key === 'accel') accelName(value, `-accel ${value}`);
    else if (key === 'kernel-irqchip') kernelIrqchip(value, what);
    else if (key !== 'thread') throw refuse(what, 'tskvm takes -accel kvm, with kernel-irqchip=on');
  }
}

/** `kvm`, or a list such as `kvm:tcg` that QEMU tries in order: tskvm runs on KVM, so it must come first. */
function accelName(value: string, what: string): void {
  const first = value.split(':')[0];
  if (first !== 'kvm')
    throw refuse(what, `tskvm runs guests on KVM only${first === 'tcg' ? ', never with TCG emulation' : ''}: use accel=kvm`);
}

function kernelIrqchip(value: string, what: string): void {
  if (value !== 'on' && value !== 'true') {
    throw refuse(what, "tskvm always uses KVM's in-kernel PIC, IOAPIC and LAPIC: use kernel-irqchip=on, or drop it");
  }
}

function onOffAuto(value: string, what: string): boolean {
  if (value === 'on' || value === 'true' || value === 'auto') return true;
  if (value === 'off' || value === 'false') return false;
  throw new UsageError(`${what}: use on or off`);
}

function displayOption(state: State, text: string): void {
  const kind = text.split(',')[0];
  if (kind !== 'none') throw refuse(`-display ${text}`, NO_DISPLAY);
  state.display = false;
}

/** `-serial stdio|mon:stdio|file:PATH|null|none|vc`: COM1 for the first, COM2-COM4 for the next ones. */
function serialOption(state: State, text: string): void {
  const port = `COM${state.serial.length + 1}`;
  if (state.serial.length >= COM_PORT_COUNT) throw refuse(`-serial ${text}`, `tskvm's PC has ${COM_PORT_COUNT} serial ports, COM1-COM4`);
  if (text === 'stdio' || text === 'mon:stdio') {
    if (state.serial.some((route) => route.endsWith('=stdio'))) {
      throw refuse(`-serial ${text}`, 'only one serial port can be on stdio: route the others to file:PATH or null');
    }
    state.serial.push(`${port}=stdio`);
  } else if (text === 'null' || text === 'none') state.serial.push(`${port}=null`);
  else if (text === 'vc' || text.startsWith('vc:')) {
    state.serial.push(`${port}=null`);
    state.warnings.push(`-serial ${text}: tskvm has no display for a virtual console; ${port}'s output is dropped`);
  } else if (text.startsWith('file:') && text.length > 'file:'.length) state.serial.push(`${port}=${text}`);
  else throw refuse(`-serial ${text}`, 'tskvm routes a serial port to stdio, mon:stdio, file:PATH, null or none');
}

/** `-global driver.property=value` (or driver=,property=,value=): only the PIT's lost-tick policy. */
function globalOption(state: State, text: string): void {
  const fields = new Map(keyValues(text));
  const long = fields.has('driver') ? `${fields.get('driver')}.${fields.get('property')}=${fields.get('value')}` : text;
  const m = /^([\w-]+)\.([\w-]+)=(.*)$/.exec(long);
  if (m && m[1] === 'kvm-pit' && m[2] === 'lost_tick_policy' && (m[3] === 'discard' || m[3] === 'delay')) {
    if (m[3] === 'discard') {
      state.warnings.push(
        '-global kvm-pit.lost_tick_policy=discard: KVM re-injects the PIT ticks a guest misses, as with lost_tick_policy=delay',
      );
    }
    return;
  }
  throw refuse(`-global ${text}`, "tskvm's devices have no QEMU properties to set; it takes -global kvm-pit.lost_tick_policy=discard only");
}

const NO_IOMMU = "tskvm's PC has no IOMMU (QEMU's intel-iommu needs its q35 machine): run this guest on QEMU";
/** Devices tskvm refuses with a reason of their own. */
const DEVICE_REFUSED: Readonly<Record<string, string>> = {
  'intel-iommu': NO_IOMMU,
  'amd-iommu': NO_IOMMU,
  'AMDVI-PCI': NO_IOMMU,
  'virtio-iommu-pci': NO_IOMMU,
  edu: "QEMU's educational PCI device (the DMA engine kvm-unit-tests' intel_iommu test drives) is not in tskvm's PC",
  'hyperv-testdev': 'tskvm offers the guest no Hyper-V enlightenments (SynIC, event and message connections) for it to test',
  'isa-serial': "tskvm's PC always has COM1-COM4: route them with -serial",
  'isa-debugcon': 'tskvm has no debug console port; use a serial port (-serial file:PATH)',
};

/** `-device driver[,prop=value...]`: QEMU's test devices, which tskvm's PC always has. */
function deviceOption(state: State, text: string): void {
  if (text === 'help' || text === '?') {
    state.print ??= 'devices';
    return;
  }
  const [driver = '', ...propItems] = text.split(',');
  const props = keyValues(propItems.join(','));
  const what = `-device ${text}`;
  switch (driver) {
    case 'isa-debug-exit':
      for (const [key, value] of props) {
        const n = /^(0x[0-9a-f]+|\d+)$/i.test(value) ? Number(value) : NaN;
        if (key === 'iobase' && n !== DEBUG_EXIT_IOBASE) {
          throw refuse(what, `tskvm's debug-exit port is at 0xf4 (the guest ends the run by writing there): use iobase=0xf4`);
        }
        if (key === 'iosize' && !DEBUG_EXIT_IOSIZES.includes(n)) throw refuse(what, 'iosize: use 1, 2 or 4');
        if (key !== 'iobase' && key !== 'iosize') throw refuse(what, `${key}: isa-debug-exit takes iobase=0xf4 and iosize`);
      }
      // QEMU's own default is 0x501: a guest written for that would write where tskvm has nothing.
      if (!props.some(([key]) => key === 'iobase')) {
        throw refuse(
          what,
          "QEMU's default iobase is 0x501, and tskvm's debug-exit port is at 0xf4: give iobase=0xf4 and have the guest write there",
        );
      }
      return;
    case 'pc-testdev':
    case 'pci-testdev':
      if (props.length > 0) throw refuse(what, `${driver} takes no properties in tskvm (it sits where QEMU's defaults put it)`);
      return;
    default:
      if (driver.startsWith('virtio-') && !own(DEVICE_REFUSED, driver)) throw refuse(`-device ${driver}`, 'tskvm has no virtio devices');
      throw refuse(
        `-device ${driver}`,
        own(DEVICE_REFUSED, driver) ?? "it is not a device tskvm's PC has ('-device help' lists the ones -device takes)",
      );
  }
}

/** `-gdb tcp::PORT`, `tcp:localhost:PORT`, `tcp:127.0.0.1:PORT` or `none`. */
function gdbOption(state: State, text: string): void {
  if (text === 'none') {
    state.gdbPort = undefined;
    return;
  }
  const m = /^tcp:([^:]*):(\d+)(,.*)?$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > TCP_PORT_MAX || m[3])
    throw refuse(`-gdb ${text}`, "tskvm's gdb server listens on TCP: use -gdb tcp::PORT (or -s for port 1234)");
  const host = m[1]!;
  if (host !== '' && host !== 'localhost' && host !== '127.0.0.1') {
    if (host !== '0.0.0.0' && host !== '::')
      throw refuse(`-gdb ${text}`, "tskvm's gdb server listens on 127.0.0.1 only: use -gdb tcp::PORT");
    state.warnings.push(`-gdb ${text}: tskvm's gdb server listens on 127.0.0.1 only`);
  }
  state.gdbPort = port;
}

/** `-overcommit mem-lock=on|off,cpu-pm=on|off`: tskvm does neither. */
function overcommitOption(_state: State, text: string): void {
  for (const [key, value] of keyValues(text)) {
    const what = `-overcommit ${key}=${value}`;
    if (key === 'cpu-pm') {
      if (onOffAuto(value, what))
        throw refuse(what, 'tskvm does not let guests halt or pause without exiting (KVM_CAP_X86_DISABLE_EXITS): drop it');
    } else if (key === 'mem-lock') {
      if (onOffAuto(value, what)) throw refuse(what, 'tskvm does not lock guest RAM; -mem-prealloc commits it up front');
    } else throw refuse(what, 'tskvm takes mem-lock=off and cpu-pm=off');
  }
}

function noNetwork(option: string, value: string): void {
  if (value !== 'none') throw refuse(`${option} ${value}`, 'tskvm has no network devices: use none, or drop it');
}
