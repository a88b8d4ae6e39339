/**
 * Domain XML: the subset of libvirt's <domain> format tskvm understands, read into a typed
 * DomainConfig, while the document itself (an ordered tree, see xml-tree.ts) stays the stored
 * definition — so elements and attributes tskvm does not use (an <interface>, <graphics>,
 * libvirt's qemu:commandline ...) are kept and written back unchanged, in order, and a
 * definition moves between tskvm and libvirt in both directions.
 *
 * On define, the document is normalised as libvirt does it: a <uuid> is generated when absent,
 * <memory>/<currentMemory> are written in KiB, and a missing <currentMemory> equals <memory>.
 * tskvm's own options live in <metadata>, in their namespace (libvirt's schema admits foreign
 * elements only there; `virsh define --validate` refuses them anywhere else):
 *
 *   <metadata><tskvm:options xmlns:tskvm='urn:tskvm:domain:1.0'>
 *     <tskvm:format>multiboot</tskvm:format> <tskvm:long-mode/> <tskvm:ksm/>
 *     <tskvm:console-log max-bytes='1048576' files='3'/>
 *   </tskvm:options></metadata>
 *
 * A <tskvm:options> at the top level (where libvirt's own qemu namespace goes) is accepted and
 * moved into <metadata>. Errors are UsageErrors naming the element, the attribute and the reason.
 */
import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { UsageError } from '../errors.js';
import { GUEST_FORMATS, type GuestFormatChoice } from '../loader/guest.js';
import { MEMORY_MAX } from '../units.js';
import { bytesToKiB, KIB, scaledBytes } from './units.js';
import { childElements, element, formatXml, insertAfter, parseXml, textElement, textOf, type XmlElement } from './xml-tree.js';

export const TSKVM_NAMESPACE = 'urn:tskvm:domain:1.0';
export const TSKVM_PREFIX = 'tskvm';

/** What a guest-initiated power-off or reboot does (libvirt's on_poweroff/on_reboot). */
export type LifecycleAction = 'destroy' | 'restart' | 'preserve' | 'rename-restart';
/** What a crash does (libvirt's on_crash); the coredump-* actions act as their plain forms (tskvm writes no core dump). */
export type CrashAction = LifecycleAction | 'coredump-destroy' | 'coredump-restart';
const LIFECYCLE_ACTIONS: readonly LifecycleAction[] = ['destroy', 'restart', 'preserve', 'rename-restart'];
const CRASH_ACTIONS: readonly CrashAction[] = [...LIFECYCLE_ACTIONS, 'coredump-destroy', 'coredump-restart'];

export type BootDevice = 'hd' | 'cdrom' | 'fd' | 'network';
const BOOT_DEVICES: readonly BootDevice[] = ['hd', 'cdrom', 'fd', 'network'];

export interface DiskConfig {
  /** libvirt's disk type: 'file' is the one tskvm reads; others are kept, not used. */
  type: string;
  device: string;
  /** <source file=...> for type='file' (a cdrom may have none: an empty tray). */
  file?: string;
  targetDev: string;
  targetBus?: string;
  readonly: boolean;
  /** <driver type=...>: raw, qcow2 ... */
  format?: string;
  /** Where the element sits, for messages. */
  where: string;
}

/** tskvm's COM1-COM4 are libvirt's serial ports 0-3 (target port='N'). */
export const SERIAL_PORT_COUNT = 4;

export type SerialBackend =
  /** A console stream served by the supervisor (`tskvm console`); no /dev/pts device is made. */
  | { type: 'pty' }
  | { type: 'file'; path: string; append: boolean }
  | { type: 'null' }
  | { type: 'tcp'; mode: 'bind' | 'connect'; host: string; port: number };

export interface SerialConfig {
  /** 0-3: COM1-COM4. */
  port: number;
  backend: SerialBackend;
  where: string;
}

export interface ConsoleLogConfig {
  /** A log file is rotated once it reaches this many bytes. */
  maxBytes: number;
  /** Rotated files kept (NAME.console.log.1 ...), besides the current one. */
  files: number;
}

export const DEFAULT_CONSOLE_LOG: ConsoleLogConfig = { maxBytes: 1024 * 1024, files: 3 };

export interface TskvmOptions {
  format: GuestFormatChoice;
  longMode: boolean;
  ksm: boolean;
  consoleLog: ConsoleLogConfig;
}

export interface DomainConfig {
  name: string;
  uuid: string;
  title?: string;
  description?: string;
  memoryKiB: number;
  currentMemoryKiB: number;
  /** <vcpu>: the maximum. */
  vcpus: number;
  /** <vcpu current=...>: the vCPUs the guest boots with (tskvm has no vCPU hot-plug, so these are the ones it gets). */
  vcpusCurrent: number;
  vcpuPlacement: 'static' | 'auto';
  os: {
    type: 'hvm';
    arch?: string;
    machine?: string;
    kernel?: string;
    initrd?: string;
    cmdline?: string;
    boot: BootDevice[];
    loader?: string;
  };
  cpuMode?: string;
  clockOffset?: string;
  onPoweroff: LifecycleAction;
  onReboot: LifecycleAction;
  onCrash: CrashAction;
  disks: DiskConfig[];
  /** By port; a <console> without a matching <serial> adds one here, as libvirt does. */
  serials: SerialConfig[];
  /** The serial port `tskvm console` attaches to, when the domain has one. */
  consolePort?: number;
  hugepages: boolean;
  memPrealloc: boolean;
  tskvm: TskvmOptions;
  /** Elements tskvm keeps but does not act on (for a note on define). */
  unused: string[];
}

/** A parsed domain: the typed view and the document it came from (the stored form). */
export interface Domain {
  config: DomainConfig;
  document: XmlElement;
}

const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.+:-]*$/;
/** Names become file and socket names; AF_UNIX paths are short (108 bytes). */
export const NAME_MAX = 64;
const UUID_PATTERN = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
const DEFAULT_MEMORY_UNIT = 'KiB';
const PAGE_BYTES = 4096;
const TCP_PORT_MAX = 65535;
/** An upper bound on <vcpu> before KVM's own limit (KVM_CAP_MAX_VCPUS) is checked at start. */
const VCPU_LIMIT = 1024;

/** Top-level elements tskvm reads; everything else is kept as it is. */
const KNOWN_TOP = new Set([
  'name',
  'uuid',
  'title',
  'description',
  'metadata',
  'memory',
  'currentMemory',
  'vcpu',
  'os',
  'features',
  'cpu',
  'clock',
  'on_poweroff',
  'on_reboot',
  'on_crash',
  'devices',
  'memoryBacking',
]);
/** Top-level elements kept silently: they describe the host side or need nothing from a tskvm guest. */
const QUIET_TOP = new Set([
  'features',
  'cpu',
  'clock',
  'metadata',
  'pm',
  'resource',
  'seclabel',
  'sysinfo',
  'keywrap',
  'genid',
  'vcpus',
  'cputune',
  'numatune',
  'blkiotune',
  'memtune',
  'iothreads',
]);
/** Devices kept silently (the emulator path, controllers the guest never notices). */
const QUIET_DEVICES = new Set(['emulator', 'controller']);

/** Parses and validates domain XML; `source` names the file or origin in messages. */
export function parseDomain(text: string, source = 'domain XML'): Domain {
  const document = parseXml(text, source);
  return domainFromDocument(document, source);
}

/** Validates a parsed document, normalising it in place as libvirt's define does. */
export function domainFromDocument(document: XmlElement, source = 'domain XML'): Domain {
  const ctx = new Context(source);
  if (document.name !== 'domain') throw ctx.error(document.name, undefined, `the root element must be <domain>, not <${document.name}>`);
  const type = document.attrs.type;
  if (type === undefined) throw ctx.error('domain', 'type', "missing: tskvm runs guests on KVM: write <domain type='kvm'>");
  if (type !== 'kvm') throw ctx.error('domain', `type='${type}'`, "tskvm runs guests on KVM only: use type='kvm'");

  const name = ctx.single(document, 'name', true)!;
  const nameText = textOf(name).trim();
  if (nameText === '') throw ctx.error('name', undefined, 'empty: give the domain a name');
  if (nameText.length > NAME_MAX || !NAME_PATTERN.test(nameText)) {
    throw ctx.error(
      'name',
      undefined,
      `'${nameText}' is not a usable name: use at most ${NAME_MAX} letters, digits and _ . + : - (not starting with . + : -)`,
    );
  }
  if (/^\d+$/.test(nameText))
    throw ctx.error('name', undefined, `'${nameText}' is all digits, which virsh-style commands read as a domain id: add a letter`);

  let uuidEl = ctx.single(document, 'uuid', false);
  let uuid: string;
  if (uuidEl) {
    const raw = textOf(uuidEl).trim();
    if (!UUID_PATTERN.test(raw))
      throw ctx.error(
        'uuid',
        undefined,
        `'${raw}' is not a UUID: write 32 hex digits as 8-4-4-4-12, or leave <uuid> out to have one generated`,
      );
    uuid = canonicalUuid(raw);
    uuidEl.children = [{ kind: 'text', text: uuid }];
  } else {
    uuid = randomUUID();
    uuidEl = textElement('uuid', uuid);
    insertAfter(document, name, uuidEl);
  }

  const title = optionalText(ctx.single(document, 'title', false));
  if (title !== undefined && title.includes('\n'))
    throw ctx.error('title', undefined, 'must be one line (put longer text in <description>)');
  const description = optionalText(ctx.single(document, 'description', false));

  const { memoryKiB, currentMemoryKiB } = readMemory(ctx, document);
  const { vcpus, vcpusCurrent, vcpuPlacement } = readVcpu(ctx, document);
  const os = readOs(ctx, document);
  const cpuMode = readCpu(ctx, document, vcpus);
  const clockOffset = readClock(ctx, document);
  const onPoweroff = readAction(ctx, document, 'on_poweroff', LIFECYCLE_ACTIONS, 'destroy');
  const onReboot = readAction(ctx, document, 'on_reboot', LIFECYCLE_ACTIONS, 'restart');
  const onCrash = readAction(ctx, document, 'on_crash', CRASH_ACTIONS, 'destroy');
  const backing = readMemoryBacking(ctx, document);
  const tskvm = readTskvmOptions(ctx, document, uuidEl);
  const unused: string[] = [];
  for (const el of childElements(document)) if (!KNOWN_TOP.has(el.name) && !QUIET_TOP.has(el.name)) unused.push(`<${el.name}>`);
  const devices = readDevices(ctx, document, unused);
  if (backing.unused.length) unused.push(...backing.unused);

  const config: DomainConfig = {
    name: nameText,
    uuid,
    ...(title !== undefined ? { title } : {}),
    ...(description !== undefined ? { description } : {}),
    memoryKiB,
    currentMemoryKiB,
    vcpus,
    vcpusCurrent,
    vcpuPlacement,
    os,
    ...(cpuMode !== undefined ? { cpuMode } : {}),
    ...(clockOffset !== undefined ? { clockOffset } : {}),
    onPoweroff,
    onReboot,
    onCrash,
    disks: devices.disks,
    serials: devices.serials,
    ...(devices.consolePort !== undefined ? { consolePort: devices.consolePort } : {}),
    hugepages: backing.hugepages,
    memPrealloc: backing.prealloc,
    tskvm,
    unused,
  };
  return { config, document };
}

/** The stored form of a domain, as `dumpxml` prints it. */
export function formatDomain(domain: Domain): string {
  return formatXml(domain.document);
}

/** Canonical UUID text: lower case, 8-4-4-4-12. */
export function canonicalUuid(text: string): string {
  const hex = text.replace(/-/g, '').toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Error construction and the element paths messages use (`devices/disk[2]/source`). */
class Context {
  constructor(readonly source: string) {}

  error(path: string, attr: string | undefined, reason: string): UsageError {
    return new UsageError(`${this.source}: element <${path}>${attr !== undefined ? `, attribute ${attr}` : ''}: ${reason}`);
  }

  /** The one child named `name` (undefined when absent and optional); two are an error, as in libvirt's schema. */
  single(parent: XmlElement, name: string, required: boolean, parentPath = ''): XmlElement | undefined {
    const found = childElements(parent, name);
    const path = parentPath === '' ? name : `${parentPath}/${name}`;
    if (found.length > 1) throw this.error(path, undefined, `appears ${found.length} times: keep one`);
    if (found.length === 0 && required) throw this.error(path, undefined, `missing: a domain needs <${name}>`);
    return found[0];
  }
}

function optionalText(el: XmlElement | undefined): string | undefined {
  return el === undefined ? undefined : textOf(el);
}

function readMemory(ctx: Context, document: XmlElement): { memoryKiB: number; currentMemoryKiB: number } {
  const memory = ctx.single(document, 'memory', false);
  // libvirt also sizes a guest by <maxMemory> with NUMA cells; tskvm needs <memory>.
  if (!memory) throw ctx.error('memory', undefined, "missing: give the guest's RAM, e.g. <memory unit='MiB'>16</memory>");
  const memoryKiB = bytesToKiB(scaledBytes(textOf(memory), memory.attrs.unit, DEFAULT_MEMORY_UNIT, `${ctx.source}: element <memory>`));
  checkGuestMemory(ctx, 'memory', memoryKiB);
  setKiB(memory, memoryKiB);
  let current = ctx.single(document, 'currentMemory', false);
  let currentMemoryKiB = memoryKiB;
  if (current) {
    currentMemoryKiB = bytesToKiB(
      scaledBytes(textOf(current), current.attrs.unit, DEFAULT_MEMORY_UNIT, `${ctx.source}: element <currentMemory>`),
    );
    if (currentMemoryKiB > memoryKiB)
      throw ctx.error(
        'currentMemory',
        undefined,
        `${currentMemoryKiB} KiB is more than <memory> (${memoryKiB} KiB): it can be at most that`,
      );
  } else {
    current = element('currentMemory');
    insertAfter(document, memory, current);
  }
  setKiB(current, currentMemoryKiB);
  return { memoryKiB, currentMemoryKiB };
}

function checkGuestMemory(ctx: Context, path: string, kib: number): void {
  const bytes = kib * KIB;
  if (bytes === 0) throw ctx.error(path, undefined, 'guest RAM must be larger than 0');
  if (bytes % PAGE_BYTES !== 0)
    throw ctx.error(path, undefined, `${kib} KiB is not a whole number of 4 KiB pages: use a multiple of 4 KiB`);
  if (bytes > MEMORY_MAX) throw ctx.error(path, undefined, `${kib} KiB is more than tskvm supports (${MEMORY_MAX / KIB} KiB, 4 GiB)`);
}

/** libvirt writes sizes back in KiB with the unit spelled out; other attributes stay. */
function setKiB(el: XmlElement, kib: number): void {
  const { unit: _unit, ...rest } = el.attrs;
  el.attrs = { unit: 'KiB', ...rest };
  el.children = [{ kind: 'text', text: String(kib) }];
}

function readVcpu(ctx: Context, document: XmlElement): { vcpus: number; vcpusCurrent: number; vcpuPlacement: 'static' | 'auto' } {
  const vcpu = ctx.single(document, 'vcpu', false);
  if (!vcpu) return { vcpus: 1, vcpusCurrent: 1, vcpuPlacement: 'static' };
  const vcpus = positiveInt(ctx, 'vcpu', undefined, textOf(vcpu), VCPU_LIMIT);
  const placement = vcpu.attrs.placement ?? 'static';
  if (placement !== 'static' && placement !== 'auto') throw ctx.error('vcpu', `placement='${placement}'`, "use 'static' or 'auto'");
  const current =
    vcpu.attrs.current === undefined ? vcpus : positiveInt(ctx, 'vcpu', `current='${vcpu.attrs.current}'`, vcpu.attrs.current, VCPU_LIMIT);
  if (current > vcpus)
    throw ctx.error('vcpu', `current='${current}'`, `more than the maximum (${vcpus}): current can be at most the <vcpu> count`);
  return { vcpus, vcpusCurrent: current, vcpuPlacement: placement };
}

function positiveInt(ctx: Context, path: string, attr: string | undefined, text: string, max: number): number {
  const t = text.trim();
  const n = /^\d+$/.test(t) ? Number(t) : NaN;
  if (!(n >= 1 && n <= max)) throw ctx.error(path, attr, `'${text}' is not a whole number from 1 to ${max}`);
  return n;
}

function readOs(ctx: Context, document: XmlElement): DomainConfig['os'] {
  const os = ctx.single(document, 'os', true)!;
  const type = ctx.single(os, 'type', true, 'os')!;
  const typeText = textOf(type).trim();
  if (typeText !== 'hvm')
    throw ctx.error('os/type', undefined, `'${typeText}': tskvm runs full-virtualisation guests: write <type>hvm</type>`);
  const arch = type.attrs.arch;
  if (arch !== undefined && arch !== 'x86_64' && arch !== 'i686')
    throw ctx.error('os/type', `arch='${arch}'`, 'tskvm runs x86 guests: use x86_64 or i686');
  const kernel = pathText(ctx, os, 'kernel');
  const initrd = pathText(ctx, os, 'initrd');
  const cmdlineEl = ctx.single(os, 'cmdline', false, 'os');
  const loaderEl = ctx.single(os, 'loader', false, 'os');
  const boot: BootDevice[] = [];
  childElements(os, 'boot').forEach((b, i) => {
    const dev = b.attrs.dev;
    if (dev === undefined) throw ctx.error(`os/boot[${i + 1}]`, 'dev', "missing: write dev='hd', 'cdrom', 'fd' or 'network'");
    if (!BOOT_DEVICES.includes(dev as BootDevice))
      throw ctx.error(`os/boot[${i + 1}]`, `dev='${dev}'`, `use one of ${BOOT_DEVICES.join(', ')}`);
    boot.push(dev as BootDevice);
  });
  const loader = loaderEl === undefined ? undefined : textOf(loaderEl).trim();
  return {
    type: 'hvm',
    ...(arch !== undefined ? { arch } : {}),
    ...(type.attrs.machine !== undefined ? { machine: type.attrs.machine } : {}),
    ...(kernel !== undefined ? { kernel } : {}),
    ...(initrd !== undefined ? { initrd } : {}),
    ...(cmdlineEl !== undefined ? { cmdline: textOf(cmdlineEl) } : {}),
    boot,
    ...(loader !== undefined && loader !== '' ? { loader } : {}),
  };
}

function pathText(ctx: Context, os: XmlElement, name: string): string | undefined {
  const el = ctx.single(os, name, false, 'os');
  if (el === undefined) return undefined;
  const path = textOf(el).trim();
  if (path === '') throw ctx.error(`os/${name}`, undefined, 'empty: give the path of a file, or leave the element out');
  if (!path.startsWith('/')) throw ctx.error(`os/${name}`, undefined, `'${path}' is relative: libvirt and tskvm take absolute paths`);
  return path;
}

const CPU_MODES = ['custom', 'host-model', 'host-passthrough', 'maximum'];

/** <cpu>: tskvm gives the guest the host's CPUID (filtered), host-passthrough in libvirt's terms; the other modes are accepted. */
function readCpu(ctx: Context, document: XmlElement, vcpus: number): string | undefined {
  const cpu = ctx.single(document, 'cpu', false);
  if (!cpu) return undefined;
  const mode = cpu.attrs.mode;
  if (mode !== undefined && !CPU_MODES.includes(mode)) throw ctx.error('cpu', `mode='${mode}'`, `use one of ${CPU_MODES.join(', ')}`);
  const topology = ctx.single(cpu, 'topology', false, 'cpu');
  if (topology) {
    let product = 1;
    for (const attr of ['sockets', 'dies', 'cores', 'threads']) {
      const v = topology.attrs[attr];
      if (v !== undefined) product *= positiveInt(ctx, 'cpu/topology', `${attr}='${v}'`, v, VCPU_LIMIT);
    }
    if (product !== vcpus) {
      throw ctx.error('cpu/topology', undefined, `sockets × dies × cores × threads is ${product}, but <vcpu> is ${vcpus}: make them equal`);
    }
  }
  return mode;
}

const CLOCK_OFFSETS = ['utc', 'localtime', 'timezone', 'variable', 'absolute'];

function readClock(ctx: Context, document: XmlElement): string | undefined {
  const clock = ctx.single(document, 'clock', false);
  if (!clock) return undefined;
  const offset = clock.attrs.offset;
  if (offset !== undefined && !CLOCK_OFFSETS.includes(offset))
    throw ctx.error('clock', `offset='${offset}'`, `use one of ${CLOCK_OFFSETS.join(', ')}`);
  return offset;
}

function readAction<T extends string>(ctx: Context, document: XmlElement, name: string, allowed: readonly T[], fallback: T): T {
  const el = ctx.single(document, name, false);
  if (!el) return fallback;
  const value = textOf(el).trim();
  if (!allowed.includes(value as T)) throw ctx.error(name, undefined, `'${value}' is not an action: use one of ${allowed.join(', ')}`);
  return value as T;
}

/** <memoryBacking>: libvirt's way to ask for huge pages and up-front allocation. */
function readMemoryBacking(ctx: Context, document: XmlElement): { hugepages: boolean; prealloc: boolean; unused: string[] } {
  const backing = ctx.single(document, 'memoryBacking', false);
  if (!backing) return { hugepages: false, prealloc: false, unused: [] };
  const allocation = ctx.single(backing, 'allocation', false, 'memoryBacking');
  const mode = allocation?.attrs.mode;
  if (mode !== undefined && mode !== 'immediate' && mode !== 'ondemand')
    throw ctx.error('memoryBacking/allocation', `mode='${mode}'`, "use 'immediate' or 'ondemand'");
  const unused = childElements(backing)
    .filter((c) => c.name !== 'hugepages' && c.name !== 'allocation')
    .map((c) => `<memoryBacking/${c.name}>`);
  return { hugepages: ctx.single(backing, 'hugepages', false, 'memoryBacking') !== undefined, prealloc: mode === 'immediate', unused };
}

/** The namespace URI a prefix is bound to on `el` or the root above it (the domain's tree is two levels deep here). */
function namespaceOf(prefix: string, ...scopes: XmlElement[]): string | undefined {
  for (const scope of scopes) {
    const uri = scope.attrs[`xmlns:${prefix}`];
    if (uri !== undefined) return uri;
  }
  return undefined;
}

function prefixOf(name: string): string | undefined {
  const colon = name.indexOf(':');
  return colon < 0 ? undefined : name.slice(0, colon);
}

const TSKVM_OPTION_NAMES = ['format', 'long-mode', 'ksm', 'console-log'];

function readTskvmOptions(ctx: Context, document: XmlElement, uuidEl: XmlElement): TskvmOptions {
  const isOptions = (el: XmlElement, ...scopes: XmlElement[]): boolean => {
    const prefix = prefixOf(el.name);
    return prefix !== undefined && el.name === `${prefix}:options` && namespaceOf(prefix, el, ...scopes) === TSKVM_NAMESPACE;
  };
  let metadata = ctx.single(document, 'metadata', false);
  // At the top level (libvirt's qemu-namespace style): move it where libvirt's schema allows it.
  const topLevel = childElements(document).filter((el) => isOptions(el, document));
  for (const el of topLevel) {
    const prefix = prefixOf(el.name)!;
    el.attrs = { [`xmlns:${prefix}`]: TSKVM_NAMESPACE, ...el.attrs };
    document.children.splice(document.children.indexOf(el), 1);
    if (!metadata) {
      metadata = element('metadata');
      const anchor = [...childElements(document)].reverse().find((c) => c.name === 'description' || c.name === 'title') ?? uuidEl;
      insertAfter(document, anchor, metadata);
    }
    metadata.children.push(el);
  }
  const found = metadata ? childElements(metadata).filter((el) => isOptions(el, metadata!, document)) : [];
  if (found.length > 1) throw ctx.error('metadata/tskvm:options', undefined, `appears ${found.length} times: keep one`);
  const options: TskvmOptions = { format: 'auto', longMode: false, ksm: false, consoleLog: { ...DEFAULT_CONSOLE_LOG } };
  const el = found[0];
  if (!el) return options;
  const prefix = prefixOf(el.name)!;
  // libvirt keeps each metadata namespace on its own element: declare it there, not only on <domain>.
  if (el.attrs[`xmlns:${prefix}`] === undefined) el.attrs = { [`xmlns:${prefix}`]: TSKVM_NAMESPACE, ...el.attrs };
  const path = `metadata/${el.name}`;
  for (const child of childElements(el)) {
    const local = prefixOf(child.name) === prefix ? child.name.slice(prefix.length + 1) : '';
    const where = `${path}/${child.name}`;
    switch (local) {
      case 'format': {
        const format = textOf(child).trim();
        if (!GUEST_FORMATS.includes(format as GuestFormatChoice))
          throw ctx.error(where, undefined, `'${format}': use one of ${GUEST_FORMATS.join(', ')}`);
        options.format = format as GuestFormatChoice;
        break;
      }
      case 'long-mode':
        options.longMode = true;
        break;
      case 'ksm':
        options.ksm = true;
        break;
      case 'console-log': {
        const maxBytes = child.attrs['max-bytes'];
        const files = child.attrs.files;
        if (maxBytes !== undefined)
          options.consoleLog.maxBytes = positiveInt(ctx, where, `max-bytes='${maxBytes}'`, maxBytes, Number.MAX_SAFE_INTEGER);
        if (files !== undefined) {
          const n = /^\d+$/.test(files) ? Number(files) : NaN;
          if (!(n >= 0 && n <= 100)) throw ctx.error(where, `files='${files}'`, 'use a whole number of rotated files from 0 to 100');
          options.consoleLog.files = n;
        }
        break;
      }
      default:
        throw ctx.error(where, undefined, `not a tskvm option: use ${TSKVM_OPTION_NAMES.map((n) => `<${prefix}:${n}>`).join(', ')}`);
    }
  }
  return options;
}

function readDevices(
  ctx: Context,
  document: XmlElement,
  unused: string[],
): { disks: DiskConfig[]; serials: SerialConfig[]; consolePort?: number } {
  const devices = ctx.single(document, 'devices', false);
  const disks: DiskConfig[] = [];
  const serials: SerialConfig[] = [];
  if (!devices) return { disks, serials };
  const counts = new Map<string, number>();
  const consoles: { el: XmlElement; where: string }[] = [];
  for (const el of childElements(devices)) {
    const n = (counts.get(el.name) ?? 0) + 1;
    counts.set(el.name, n);
    const where = `devices/${el.name}[${n}]`;
    switch (el.name) {
      case 'disk':
        disks.push(readDisk(ctx, el, where));
        break;
      case 'serial':
        serials.push(readSerial(ctx, el, where, serials));
        break;
      case 'console':
        consoles.push({ el, where });
        break;
      default:
        if (!QUIET_DEVICES.has(el.name) && !unused.includes(`<${el.name}>`)) unused.push(`<${el.name}>`);
    }
  }
  const targets = new Set<string>();
  for (const disk of disks) {
    if (targets.has(disk.targetDev))
      throw ctx.error(`${disk.where}/target`, `dev='${disk.targetDev}'`, 'used by another disk: give each disk its own target');
    targets.add(disk.targetDev);
  }
  let consolePort: number | undefined;
  for (const { el, where } of consoles) {
    const target = childElements(el, 'target')[0];
    const targetType = target?.attrs.type ?? 'serial';
    if (targetType !== 'serial') {
      // A virtio or xen console: tskvm's PC has none. Kept, not used.
      if (!unused.includes(`<console><target type='${targetType}'>`)) unused.push(`<console><target type='${targetType}'>`);
      continue;
    }
    const portText = target?.attrs.port ?? '0';
    const port = serialPortNumber(ctx, `${where}/target`, portText);
    if (!serials.some((s) => s.port === port)) {
      // libvirt: a serial console with no <serial> behind it defines that serial port.
      serials.push({ port, backend: readBackend(ctx, el, where), where });
    }
    consolePort ??= port;
  }
  consolePort ??= serials.find((s) => s.backend.type === 'pty')?.port;
  serials.sort((a, b) => a.port - b.port);
  return { disks, serials, ...(consolePort !== undefined ? { consolePort } : {}) };
}

function readDisk(ctx: Context, el: XmlElement, where: string): DiskConfig {
  const type = el.attrs.type ?? 'file';
  const device = el.attrs.device ?? 'disk';
  const target = childElements(el, 'target')[0];
  if (!target) throw ctx.error(`${where}/target`, undefined, "missing: every disk needs a target, e.g. <target dev='vda' bus='virtio'/>");
  const targetDev = target.attrs.dev;
  if (targetDev === undefined || targetDev === '')
    throw ctx.error(`${where}/target`, 'dev', "missing: name the guest's device, e.g. dev='vda'");
  const source = childElements(el, 'source')[0];
  const driver = childElements(el, 'driver')[0];
  let file: string | undefined;
  if (type === 'file') {
    file = source?.attrs.file;
    const removable = device === 'cdrom' || device === 'floppy';
    if ((file === undefined || file === '') && !removable)
      throw ctx.error(`${where}/source`, 'file', "missing: a file disk needs <source file='/path/to/image'/>");
    if (file !== undefined && !file.startsWith('/'))
      throw ctx.error(`${where}/source`, `file='${file}'`, 'relative: give an absolute path');
    if (file === '') file = undefined;
  }
  return {
    type,
    device,
    ...(file !== undefined ? { file } : {}),
    targetDev,
    ...(target.attrs.bus !== undefined ? { targetBus: target.attrs.bus } : {}),
    readonly: childElements(el, 'readonly').length > 0,
    ...(driver?.attrs.type !== undefined ? { format: driver.attrs.type } : {}),
    where,
  };
}

function serialPortNumber(ctx: Context, where: string, text: string): number {
  const port = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(port >= 0 && port < SERIAL_PORT_COUNT))
    throw ctx.error(where, `port='${text}'`, `tskvm's PC has COM1-COM4: use port 0 to ${SERIAL_PORT_COUNT - 1}`);
  return port;
}

function readSerial(ctx: Context, el: XmlElement, where: string, earlier: readonly SerialConfig[]): SerialConfig {
  const target = childElements(el, 'target')[0];
  const targetType = target?.attrs.type;
  if (targetType !== undefined && targetType !== 'isa-serial')
    throw ctx.error(`${where}/target`, `type='${targetType}'`, "tskvm's serial ports are ISA 16550As: use isa-serial or leave type out");
  let port: number;
  if (target?.attrs.port !== undefined) {
    port = serialPortNumber(ctx, `${where}/target`, target.attrs.port);
  } else {
    port = [0, 1, 2, 3].find((p) => !earlier.some((s) => s.port === p)) ?? SERIAL_PORT_COUNT;
    if (port >= SERIAL_PORT_COUNT)
      throw ctx.error(where, undefined, `more than ${SERIAL_PORT_COUNT} serial ports: tskvm's PC has COM1-COM4`);
  }
  if (earlier.some((s) => s.port === port))
    throw ctx.error(`${where}/target`, `port='${port}'`, 'used by another serial device: give each its own port');
  return { port, backend: readBackend(ctx, el, where), where };
}

const LOOPBACK_NAMES = new Set(['localhost', 'localhost.localdomain', 'ip6-localhost']);

function isLoopback(host: string): boolean {
  if (LOOPBACK_NAMES.has(host.toLowerCase())) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

function readBackend(ctx: Context, el: XmlElement, where: string): SerialBackend {
  const type = el.attrs.type ?? 'pty';
  const source = childElements(el, 'source')[0];
  switch (type) {
    case 'pty':
      return { type: 'pty' };
    case 'null':
      return { type: 'null' };
    case 'file': {
      const path = source?.attrs.path;
      if (path === undefined || path === '')
        throw ctx.error(`${where}/source`, 'path', "missing: a file serial port needs <source path='/path/to/log'/>");
      if (!path.startsWith('/')) throw ctx.error(`${where}/source`, `path='${path}'`, 'relative: give an absolute path');
      const append = source?.attrs.append;
      if (append !== undefined && append !== 'on' && append !== 'off')
        throw ctx.error(`${where}/source`, `append='${append}'`, "use 'on' or 'off'");
      return { type: 'file', path, append: append === 'on' };
    }
    case 'tcp': {
      const mode = source?.attrs.mode ?? 'bind';
      if (mode !== 'bind' && mode !== 'connect')
        throw ctx.error(`${where}/source`, `mode='${mode}'`, "use 'bind' (tskvm listens) or 'connect'");
      const host = source?.attrs.host ?? '127.0.0.1';
      if (!isLoopback(host)) {
        throw ctx.error(
          `${where}/source`,
          `host='${host}'`,
          'a serial console is a root shell for whoever reaches it: tskvm serves it on loopback only (127.0.0.1 or ::1); ' +
            'tunnel it (ssh -L) to reach it from elsewhere',
        );
      }
      const service = source?.attrs.service;
      const port = service !== undefined && /^\d+$/.test(service) ? Number(service) : NaN;
      if (!(port >= 1 && port <= TCP_PORT_MAX))
        throw ctx.error(`${where}/source`, `service='${service ?? ''}'`, `give a TCP port from 1 to ${TCP_PORT_MAX}`);
      const protocol = childElements(el, 'protocol')[0]?.attrs.type ?? 'raw';
      if (protocol !== 'raw')
        throw ctx.error(`${where}/protocol`, `type='${protocol}'`, "tskvm speaks raw TCP only: use <protocol type='raw'/>");
      return { type: 'tcp', mode, host: host === 'localhost' ? '127.0.0.1' : host, port };
    }
    default:
      throw ctx.error(where, `type='${type}'`, 'not a serial backend tskvm has: use pty (a console served by tskvm), file, null or tcp');
  }
}

/** The files a domain names (kernel, initrd, file disks), with the element each comes from. */
export function domainFiles(config: DomainConfig): { path: string; where: string; kind: 'kernel' | 'initrd' | 'disk' }[] {
  const files: { path: string; where: string; kind: 'kernel' | 'initrd' | 'disk' }[] = [];
  if (config.os.kernel !== undefined) files.push({ path: config.os.kernel, where: 'os/kernel', kind: 'kernel' });
  if (config.os.initrd !== undefined) files.push({ path: config.os.initrd, where: 'os/initrd', kind: 'initrd' });
  for (const disk of config.disks)
    if (disk.file !== undefined) files.push({ path: disk.file, where: `${disk.where}/source`, kind: 'disk' });
  return files;
}
