/**
 * QEMU's `-cpu MODEL[,+feat|-feat|feat=on|off|prop=value...]` in tskvm's terms. tskvm gives the
 * guest the host's CPUID (filtered, src/arch/x86/cpuid.ts), so `host` and `max` are that; a named
 * model is taken as host with a warning. `-feat` takes the feature out of CPUID (the library's
 * `cpuid.remove`, which KVM honours); `+feat` cannot add what the host lacks, so it is checked
 * against the host later (a warning, an error with `enforce`, as QEMU does). `vendor=` sets the
 * vendor string. Pure: no KVM here.
 */
import { CPUID_FEATURES, CPUID_VENDOR_LENGTH, type CpuidFeature } from '../arch/x86/cpuid.js';
import { UsageError } from '../errors.js';
import { own } from './lookup.js';

export interface CpuChoice {
  /** The model as given (host, max, qemu64...). */
  model: string;
  /** Features to take out of the guest's CPUID (CPUID_FEATURES names). */
  remove: string[];
  /** Features asked for with +feat or feat=on: the host must have them. */
  require: string[];
  vendor?: string;
  /** `enforce`: a required feature the host lacks is an error, not a warning. */
  enforce: boolean;
  warnings: string[];
}

/** Models that are tskvm's own CPU: the host's, as KVM supports it. */
const HOST_MODELS = new Set(['host', 'max']);

/** QEMU's other spellings of CPUID_FEATURES names (QEMU accepts `_` for `-` as well). */
const ALIASES: Readonly<Record<string, string>> = {
  sse3: 'pni',
  'sse4-1': 'sse4.1',
  'sse4-2': 'sse4.2',
  sha: 'sha-ni',
  'tsc-deadline-timer': 'tsc-deadline',
};

/** Properties that only say "as much of the host as possible", which tskvm always gives. */
const HOST_ALREADY = new Set(['migratable', 'host-cache-info', 'check', 'l3-cache', 'full-cpuid-auto-level']);

/** A -cpu parse, with what tskvm does with each part. */
export function parseCpuOption(spec: string): CpuChoice {
  const [model = '', ...items] = spec.split(',');
  const choice: CpuChoice = { model, remove: [], require: [], enforce: false, warnings: [] };
  if (!/^[A-Za-z0-9_.-]+$/.test(model)) throw cpuError(spec, `'${model}' is not a CPU model: use host or max ('-cpu help')`);
  if (!HOST_MODELS.has(model)) {
    choice.warnings.push(
      `-cpu ${model}: tskvm gives the guest this host's CPU, as with -cpu host (it has no CPU models); the flags after the model apply to that`,
    );
  }
  for (const item of items) {
    if (item === '') continue;
    const sign = item[0] === '+' || item[0] === '-' ? item[0] : undefined;
    const eq = item.indexOf('=');
    const rawName = sign ? item.slice(1) : eq < 0 ? item : item.slice(0, eq);
    const value = sign ? undefined : eq < 0 ? 'on' : item.slice(eq + 1);
    const name = rawName.replace(/_/g, '-');
    if (sign === undefined && property(choice, spec, name, value!)) continue;
    const on = sign === '+' || (sign === undefined && onOff(spec, name, value!));
    feature(choice, spec, name, on);
  }
  // As QEMU: a feature both asked for and taken out is taken out.
  choice.require = choice.require.filter((name) => !choice.remove.includes(name));
  return choice;
}

/** `vendor=`, `enforce` and the other non-feature properties; false when `name` is a feature. */
function property(choice: CpuChoice, spec: string, name: string, value: string): boolean {
  if (name === 'vendor') {
    if (value.length !== CPUID_VENDOR_LENGTH || !/^[\x20-\x7e]*$/.test(value)) {
      throw cpuError(spec, `vendor=${value}: a vendor string is ${CPUID_VENDOR_LENGTH} characters, e.g. GenuineIntel or AuthenticAMD`);
    }
    choice.vendor = value;
    return true;
  }
  if (name === 'enforce') {
    choice.enforce = onOff(spec, name, value);
    return true;
  }
  if (HOST_ALREADY.has(name)) {
    onOff(spec, name, value === 'no' ? 'off' : value === 'yes' ? 'on' : value);
    return true;
  }
  if (name === 'host-phys-bits') {
    if (!onOff(spec, name, value))
      choice.warnings.push(`-cpu host-phys-bits=off: tskvm gives the guest the host's physical address width anyway`);
    return true;
  }
  if (name === 'phys-bits' || name === 'host-phys-bits-limit') {
    throw cpuError(
      spec,
      `${name}=${value}: tskvm gives the guest the host's physical address width (CPUID 0x80000008); drop ${name} or run this guest on QEMU`,
    );
  }
  if (name === 'pmu') {
    if (onOff(spec, name, value)) choice.warnings.push('-cpu pmu=on: tskvm gives the guest no virtual PMU (CPUID leaf 0xA is empty)');
    return true;
  }
  if (name.startsWith('hv-')) {
    throw cpuError(spec, `${name}: tskvm offers the guest no Hyper-V enlightenments; drop the hv_* flags or run this guest on QEMU`);
  }
  if (['kvm', 'level', 'xlevel', 'min-level', 'min-xlevel', 'family', 'model', 'stepping', 'model-id', 'tsc-frequency'].includes(name)) {
    throw cpuError(spec, `${name}: tskvm gives the guest the host's CPUID as it is; it cannot set ${name}`);
  }
  return false;
}

function feature(choice: CpuChoice, spec: string, rawName: string, on: boolean): void {
  const name = own(ALIASES, rawName) ?? rawName;
  if (own(CPUID_FEATURES, name)) {
    if (on) choice.require.push(name);
    else if (!choice.remove.includes(name)) choice.remove.push(name);
    return;
  }
  // VMX's own capabilities: tskvm gives guests no VMX, so taking one out is already done.
  if (name.startsWith('vmx-')) {
    if (on) choice.require.push('vmx');
    return;
  }
  throw cpuError(spec, `'${rawName}' is not a CPUID feature tskvm knows ('-cpu help' lists them)`);
}

function onOff(spec: string, name: string, value: string): boolean {
  if (value === 'on' || value === 'true') return true;
  if (value === 'off' || value === 'false') return false;
  throw cpuError(spec, `${name}=${value}: use ${name}=on or ${name}=off`);
}

function cpuError(spec: string, why: string): UsageError {
  return new UsageError(`-cpu ${spec} is not supported by tskvm (${why})`);
}

/** QEMU's name for where a feature lives: `CPUID.01H:ECX.x2apic [bit 21]`. */
export function featureLocation(name: string): string {
  const f: CpuidFeature | undefined = own(CPUID_FEATURES, name);
  if (!f) return name;
  const leaf = `${f.leaf.toString(16).toUpperCase().padStart(2, '0')}H`;
  const sub = f.subleaf ? `_${f.subleaf.toString(16).toUpperCase().padStart(2, '0')}H` : '';
  return `CPUID.${leaf}${sub}:${f.register.toUpperCase()}.${name} [bit ${f.bit}]`;
}
