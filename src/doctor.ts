/**
 * `tskvm doctor`: can this host run tskvm guests, and if not, why and what to do. Everything is
 * read from the host (/dev/kvm ioctls, /proc, /sys), never assumed: collectDiagnosis() returns
 * plain data (what `--json` prints), formatDiagnosis() a report for people.
 */
import { constants as fsConstants, closeSync, existsSync, openSync, readdirSync, statSync } from 'node:fs';
import { KVM_API_VERSION, KVM_CAP_MAX_VCPUS, KVM_CAP_NR_VCPUS } from './kvm/constants.js';
import { CAPABILITIES, type CapabilitySpec } from './kvm/capabilities.js';

export { CAPABILITIES, type CapabilitySpec };
import { KvmError } from './kvm/error.js';
import { kvmDevicePath } from './kvm/ioctls.js';
import { addonPath, backend, probeBackends, type Backend, type BackendName, type BackendProbe, type NativeKvm } from './kvm/native.js';
import { ksmRunning, readText, transparentHugepageMode } from './host.js';

export interface Capability extends CapabilitySpec {
  readonly present: boolean;
  /** KVM_CHECK_EXTENSION's value (0 absent; some capabilities return a count); null when not checked. */
  readonly value: number | null;
}

export interface Diagnosis {
  /** tskvm can run guests here: /dev/kvm opens, API 12, the required capabilities, a backend loads. */
  readonly ok: boolean;
  /** Each thing that stops tskvm (or costs a feature), with what to do about it. */
  readonly problems: readonly string[];
  readonly warnings: readonly string[];
  readonly device: {
    readonly path: string;
    readonly exists: boolean;
    /** `crw-rw---- root:kvm`, when it exists. */
    readonly mode: string | null;
    readonly accessible: boolean;
    readonly error: { readonly code: string; readonly errno: number; readonly message: string } | null;
  };
  readonly apiVersion: number | null;
  readonly expectedApiVersion: number;
  readonly capabilities: readonly Capability[];
  readonly maxVcpus: number | null;
  readonly cpu: {
    readonly vendor: string | null;
    readonly model: string | null;
    /** vmx (Intel VT-x) and/or svm (AMD-V), as /proc/cpuinfo shows them. */
    readonly virtualisationFlags: readonly string[];
    /** The `hypervisor` flag: tskvm itself runs in a VM. */
    readonly hypervisor: boolean;
  };
  readonly virtualisation: {
    /** KVM modules loaded (/proc/modules, else /sys/module): kvm, kvm_intel, kvm_amd, kvm_pvm, ... */
    readonly kvmModules: readonly string[];
    readonly nestedIntel: string | null;
    readonly nestedAmd: string | null;
    /** none (bare metal), nested (hardware KVM inside a VM), paravirtualised (e.g. PVM), or unknown. */
    readonly kind: 'bare-metal' | 'nested' | 'paravirtualised' | 'unknown';
    readonly summary: string;
  };
  readonly memory: {
    readonly ksmRunning: boolean | null;
    readonly ksmPagesSharing: number | null;
    readonly ksmPagesShared: number | null;
    readonly transparentHugepages: string | null;
  };
  readonly backend: {
    /** The backend tskvm uses, or null when none loads. */
    readonly used: BackendName | null;
    /** Why that one: the default, TSKVM_BACKEND, or the addon's failure. */
    readonly why: string | null;
    readonly addon: {
      readonly path: string;
      readonly exists: boolean;
      readonly loaded: boolean;
      readonly error: { readonly code: string; readonly message: string } | null;
    };
    readonly ffi: BackendProbe;
  };
}

function readNumber(file: string): number | null {
  const text = readText(file)?.trim();
  return text === undefined || text === '' || Number.isNaN(Number(text)) ? null : Number(text);
}

export function collectDiagnosis(): Diagnosis {
  const problems: string[] = [];
  const warnings: string[] = [];

  // Backend: the one tskvm uses (the addon, else ffi-rs), and whether each loads.
  const probes = probeBackends();
  let chosen: Backend | undefined;
  try {
    chosen = backend();
  } catch (err) {
    problems.push(`no backend loads: ${(err as Error).message}`);
  }
  if (chosen && chosen.name === 'ffi' && !probes.addon.loaded) {
    warnings.push(
      `the native addon is not usable (${probes.addon.error?.message}): tskvm uses the ffi-rs backend, whose exits are slower; \`npm run build\` builds the addon`,
    );
  }
  if (!chosen && !probes.ffi.loaded) problems.push(`the ffi-rs backend does not load either (${probes.ffi.error?.message})`);
  const addon: NativeKvm | undefined = chosen?.native;
  const addonError = probes.addon.error;

  // /dev/kvm: open it with the addon when it loads (as Kvm.open does), else check it with fs.
  const devicePath = kvmDevicePath();
  let deviceMode: string | null = null;
  let exists = false;
  try {
    const st = statSync(devicePath);
    exists = true;
    deviceMode = `${modeString(st.mode)} ${userName(st.uid)}:${groupName(st.gid)}`;
  } catch {
    // missing: open() below says so with the remedy
  }
  let fd: number | undefined;
  let deviceError: Diagnosis['device']['error'] = null;
  let openErrno = 0;
  if (addon) {
    const r = addon.open(devicePath);
    if (r < 0) openErrno = r;
    else fd = r;
  } else {
    try {
      closeSync(openSync(devicePath, fsConstants.O_RDWR));
    } catch (err) {
      openErrno = -Math.abs((err as NodeJS.ErrnoException).errno ?? 5);
    }
  }
  if (openErrno !== 0) {
    const e = KvmError.fromOpen(devicePath, openErrno);
    deviceError = { code: e.code, errno: e.errno, message: e.message };
    problems.push(e.message);
  }
  const accessible = openErrno === 0;

  let apiVersion: number | null = null;
  const capabilities: Capability[] = [];
  let maxVcpus: number | null = null;
  if (addon && fd !== undefined) {
    try {
      const v = addon.ioctl(fd, addon.ioctls.KVM_GET_API_VERSION);
      if (v < 0) problems.push(KvmError.fromErrno('KVM_GET_API_VERSION', v).message);
      else {
        apiVersion = v;
        if (v !== KVM_API_VERSION) problems.push(KvmError.apiMismatch(v, KVM_API_VERSION).message);
      }
      for (const spec of CAPABILITIES) {
        const r = addon.ioctl(fd, addon.ioctls.KVM_CHECK_EXTENSION, spec.number);
        const value = r < 0 ? 0 : r;
        capabilities.push({ ...spec, present: value > 0, value });
        if (value > 0) continue;
        if (spec.required) problems.push(KvmError.missingCapability(spec.name, spec.neededFor).message);
        else warnings.push(`${spec.name} is missing: no ${spec.neededFor}`);
      }
      const max =
        capabilities.find((c) => c.number === KVM_CAP_MAX_VCPUS)?.value || capabilities.find((c) => c.number === KVM_CAP_NR_VCPUS)?.value;
      maxVcpus = max ? max : null;
    } finally {
      addon.close(fd);
    }
  } else {
    for (const spec of CAPABILITIES) capabilities.push({ ...spec, present: false, value: null });
  }

  // CPU and virtualisation.
  const cpuinfo = readText('/proc/cpuinfo') ?? '';
  const vendor = /^vendor_id\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? null;
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? null;
  const flags = new Set((/^flags\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? '').trim().split(/\s+/));
  const virtualisationFlags = ['vmx', 'svm'].filter((f) => flags.has(f));
  const hypervisor = flags.has('hypervisor');
  const kvmModules = loadedKvmModules();
  const nestedIntel = readText('/sys/module/kvm_intel/parameters/nested')?.trim() ?? null;
  const nestedAmd = readText('/sys/module/kvm_amd/parameters/nested')?.trim() ?? null;
  const virtualisation = describeVirtualisation(hypervisor, virtualisationFlags, kvmModules, nestedIntel, nestedAmd);

  // Memory sharing settings.
  const ksm = ksmRunning();
  const thp = transparentHugepageMode() ?? null;
  if (ksm === false)
    warnings.push(
      'KSM is off (/sys/kernel/mm/ksm/run = 0): --ksm marks guest RAM mergeable but nothing merges; `echo 1 > /sys/kernel/mm/ksm/run` turns it on',
    );
  if (thp === 'never')
    warnings.push(
      'transparent huge pages are off (never): --hugepages has no effect; `echo madvise > /sys/kernel/mm/transparent_hugepage/enabled` allows them',
    );

  return {
    ok: problems.length === 0,
    problems,
    warnings,
    device: { path: devicePath, exists, mode: deviceMode, accessible, error: deviceError },
    apiVersion,
    expectedApiVersion: KVM_API_VERSION,
    capabilities,
    maxVcpus,
    cpu: { vendor, model, virtualisationFlags, hypervisor },
    virtualisation,
    memory: {
      ksmRunning: ksm ?? null,
      ksmPagesSharing: readNumber('/sys/kernel/mm/ksm/pages_sharing'),
      ksmPagesShared: readNumber('/sys/kernel/mm/ksm/pages_shared'),
      transparentHugepages: thp,
    },
    backend: {
      used: chosen?.name ?? null,
      why: chosen?.why ?? null,
      addon: { path: addonPath, exists: existsSync(addonPath), loaded: probes.addon.loaded, error: addonError },
      ffi: probes.ffi,
    },
  };
}

/** KVM modules: /proc/modules when there is one, else /sys/module (which also lists built-in ones with parameters). */
function loadedKvmModules(): string[] {
  const procModules = readText('/proc/modules');
  if (procModules !== undefined) {
    return procModules
      .split('\n')
      .map((line) => line.split(' ')[0] ?? '')
      .filter((name) => /^kvm($|_)/.test(name))
      .sort();
  }
  try {
    return readdirSync('/sys/module')
      .filter((name) => /^kvm($|_)/.test(name))
      .sort();
  } catch {
    return [];
  }
}

function describeVirtualisation(
  hypervisor: boolean,
  virtFlags: readonly string[],
  modules: readonly string[],
  nestedIntel: string | null,
  nestedAmd: string | null,
): Diagnosis['virtualisation'] {
  const pvm = modules.filter((m) => /pvm/.test(m));
  const where = hypervisor
    ? 'tskvm runs inside a VM (the CPU has the hypervisor flag)'
    : 'no hypervisor flag: bare metal, as far as the CPU says';
  const nestedParam = [
    nestedIntel !== null ? `kvm_intel nested=${nestedIntel}` : '',
    nestedAmd !== null ? `kvm_amd nested=${nestedAmd}` : '',
  ]
    .filter(Boolean)
    .join(', ');
  let kind: Diagnosis['virtualisation']['kind'];
  let how: string;
  if (pvm.length) {
    kind = 'paravirtualised';
    how = `KVM here is paravirtualised (${pvm.join(', ')}): guests run without hardware virtualisation extensions`;
  } else if (hypervisor && virtFlags.length) {
    kind = 'nested';
    how = `nested KVM: the VM exposes ${virtFlags.join('/')} to this kernel`;
  } else if (!hypervisor && virtFlags.length) {
    kind = 'bare-metal';
    how = `hardware KVM (${virtFlags.join('/')})`;
  } else {
    kind = 'unknown';
    how = virtFlags.length
      ? `${virtFlags.join('/')} present`
      : 'no vmx/svm flag and no paravirtual KVM module: KVM cannot use hardware virtualisation';
  }
  return { kvmModules: [...modules], nestedIntel, nestedAmd, kind, summary: `${where}; ${how}${nestedParam ? ` (${nestedParam})` : ''}` };
}

function modeString(mode: number): string {
  const type = (mode & 0o170000) === 0o020000 ? 'c' : (mode & 0o170000) === 0o040000 ? 'd' : (mode & 0o170000) === 0o100000 ? '-' : '?';
  const rwx = ['r', 'w', 'x'];
  let bits = '';
  for (let i = 8; i >= 0; i--) bits += mode & (1 << i) ? rwx[(8 - i) % 3] : '-';
  return type + bits;
}

function idName(file: string, id: number): string {
  const line = (readText(file) ?? '').split('\n').find((l) => l.split(':')[2] === String(id));
  return line?.split(':')[0] ?? String(id);
}
const userName = (uid: number): string => idName('/etc/passwd', uid);
const groupName = (gid: number): string => idName('/etc/group', gid);

const yesNo = (b: boolean | null): string => (b === null ? 'unknown' : b ? 'yes' : 'no');

/** The report `tskvm doctor` prints. */
export function formatDiagnosis(d: Diagnosis): string {
  const out: string[] = [];
  const row = (label: string, value: string): void => {
    out.push(`  ${label.padEnd(22)} ${value}`);
  };
  out.push('KVM device');
  row('device', `${d.device.path}${d.device.mode ? ` (${d.device.mode})` : ''}`);
  row('accessible', d.device.accessible ? 'yes' : `no: ${d.device.error?.message ?? 'unknown'}`);
  row(
    'API version',
    d.apiVersion === null
      ? 'unknown (device not opened)'
      : `${d.apiVersion}${d.apiVersion === d.expectedApiVersion ? ' (ok)' : ` (tskvm needs ${d.expectedApiVersion})`}`,
  );
  row('max vCPUs per VM', d.maxVcpus === null ? 'unknown' : String(d.maxVcpus));

  out.push('', 'Capabilities (KVM_CHECK_EXTENSION)');
  const nameWidth = Math.max(...d.capabilities.map((c) => c.name.length));
  for (const c of d.capabilities) {
    const state = c.value === null ? 'unknown' : c.present ? 'present' : 'MISSING';
    out.push(
      `  ${c.name.padEnd(nameWidth)} ${String(c.number).padStart(3)}  ${state.padEnd(7)}  ${(c.required ? 'required' : 'optional').padEnd(8)}  ${c.neededFor}`,
    );
  }

  out.push('', 'CPU and virtualisation');
  row('vendor', d.cpu.vendor ?? 'unknown');
  if (d.cpu.model) row('model', d.cpu.model);
  row('virtualisation flags', d.cpu.virtualisationFlags.length ? d.cpu.virtualisationFlags.join(' ') : 'none (no vmx or svm)');
  row('hypervisor flag', d.cpu.hypervisor ? 'yes (tskvm runs in a VM)' : 'no');
  row('KVM modules', d.virtualisation.kvmModules.length ? d.virtualisation.kvmModules.join(' ') : 'none found');
  row('kvm_intel nested', d.virtualisation.nestedIntel ?? 'n/a (kvm_intel not loaded)');
  row('kvm_amd nested', d.virtualisation.nestedAmd ?? 'n/a (kvm_amd not loaded)');
  row('KVM kind', `${d.virtualisation.kind}: ${d.virtualisation.summary}`);

  out.push('', 'Memory');
  row(
    'KSM running',
    `${yesNo(d.memory.ksmRunning)}${d.memory.ksmPagesSharing !== null ? ` (pages_sharing ${d.memory.ksmPagesSharing}, pages_shared ${d.memory.ksmPagesShared ?? '?'})` : ''}`,
  );
  row('transparent hugepages', d.memory.transparentHugepages ?? 'unknown');

  out.push('', 'Backend');
  const a = d.backend.addon;
  row('addon', a.loaded ? `loaded (${a.path})` : `${a.exists ? 'failed to load' : 'missing'}: ${a.error?.message ?? ''}`);
  row('ffi', d.backend.ffi.loaded ? 'loads (ffi-rs calling libc)' : `does not load: ${d.backend.ffi.error?.message ?? ''}`);
  row('in use', d.backend.used ? `${d.backend.used} (${d.backend.why})` : 'none');

  if (d.warnings.length) {
    out.push('', 'Warnings');
    for (const w of d.warnings) out.push(`  - ${w}`);
  }
  out.push('');
  if (d.ok) out.push('Result: tskvm can run guests here.');
  else {
    out.push('Result: tskvm cannot run guests here:');
    for (const p of d.problems) out.push(`  - ${p}`);
  }
  return `${out.join('\n')}\n`;
}
