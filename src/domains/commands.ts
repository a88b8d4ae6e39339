/**
 * Managing domains as virsh does, as library functions: the CLI (src/cli/domains.ts) only parses
 * arguments and prints. Every function takes HomeOptions (which store: TSKVM_HOME, or
 * tskvm:///session / tskvm:///system) and names a domain by name, UUID or a running domain's id.
 *
 * define/undefine/edit change the store (store.ts: atomic files under locks); start spawns a
 * supervisor (supervisor.ts) and waits until the guest runs; the rest talk to the supervisor over
 * its control socket (qmp.ts) or read its record (runtime.ts).
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants as fsConstants, createReadStream, createWriteStream, openSync } from 'node:fs';
import { access, copyFile, mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../errors.js';
import { KvmError, type KvmErrorCode } from '../kvm/error.js';
import { nodeInfo, overcommitWarnings, type Commitment, type NodeInfo } from './host.js';
import { qmpExecute, QmpError } from './qmp.js';
import {
  clearDeadSupervisor,
  DOMAIN_STATE_NUMBERS,
  domainStatus,
  nextDomainId,
  prepareRuntimeDir,
  processCpuTimeNs,
  readLastRun,
  runtimePaths,
  STATE_REASONS,
  supervisorAlive,
  type DomainState,
  type DomainStatus,
  type LastRun,
  type RuntimePaths,
} from './runtime.js';
import { DomainStore, syncDir, writeFileAtomic, type HomeOptions, type StoredDomain } from './store.js';
import { type DomainStatsJson, type SerializedError, type StartReport, type SupervisorArgs } from './protocol.js';
import { canonicalUuid, domainFiles, formatDomain, parseDomain, type DomainConfig } from './xml.js';

export type DomainOptions = HomeOptions;

/** A domain as `list` shows it. */
export interface DomainSummary {
  /** Present while it is active (a supervisor runs it). */
  id?: number;
  name: string;
  uuid: string;
  state: DomainState;
  reason: string;
  active: boolean;
  vcpus: number;
  memoryKiB: number;
  title?: string;
}

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;
const POLL_MS = 20;
const START_PIPE_FD = 3;
const UUID_TEXT = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

interface Resolved {
  store: DomainStore;
  stored: StoredDomain;
  name: string;
  paths: RuntimePaths;
}

/** Finds a domain by name, UUID or (active) id, as virsh does. */
async function resolve(ref: string, options: DomainOptions): Promise<Resolved> {
  const store = await DomainStore.open(options);
  let stored = await store.find(ref).catch(() => undefined);
  if (!stored && (/^\d+$/.test(ref) || UUID_TEXT.test(ref))) {
    const { domains } = await store.list();
    if (/^\d+$/.test(ref)) {
      for (const d of domains) {
        const status = await domainStatus(runtimePaths(store, d.domain.config.name));
        if (status.active && status.id === Number(ref)) stored = d;
      }
    } else {
      stored = domains.find((d) => d.domain.config.uuid === canonicalUuid(ref));
    }
  }
  stored ??= await store.get(ref); // throws the not-found error (or the parse error of a damaged file)
  const name = stored.domain.config.name;
  return { store, stored, name, paths: runtimePaths(store, name) };
}

/** Checks that the files a domain names exist and are readable files; the message names the element and the file. */
export async function checkDomainFiles(config: DomainConfig, source: string): Promise<void> {
  for (const file of domainFiles(config)) {
    let st;
    try {
      st = await stat(file.path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'not found' : code === 'EACCES' ? 'not reachable (permission denied)' : (err as Error).message;
      throw new UsageError(
        `${source}: element <${file.where}>: ${file.kind} file '${file.path}' ${why}: fix the path, or create the file first`,
        'EIMAGE',
      );
    }
    if (!st.isFile())
      throw new UsageError(
        `${source}: element <${file.where}>: '${file.path}' is not a regular file: give the path of an image file`,
        'EIMAGE',
      );
    try {
      await access(file.path, fsConstants.R_OK);
    } catch {
      throw new UsageError(
        `${source}: element <${file.where}>: ${file.kind} file '${file.path}' cannot be read: fix its permissions`,
        'EIMAGE',
      );
    }
  }
}

export interface DefineResult {
  name: string;
  uuid: string;
  /** false when an existing definition (same name and UUID) was replaced. */
  created: boolean;
  file: string;
  /** Things worth telling the user: elements kept but not used, and the like. */
  notes: string[];
}

/** `virsh define`: validates the XML (and the files it names) and stores it. Nothing changes on error. */
export async function defineDomain(xml: string, options: DomainOptions & { source?: string } = {}): Promise<DefineResult> {
  const source = options.source ?? 'domain XML';
  const domain = parseDomain(xml, source);
  await checkDomainFiles(domain.config, source);
  const store = await DomainStore.open(options);
  const { created, file } = await store.define(domain);
  return { name: domain.config.name, uuid: domain.config.uuid, created, file, notes: defineNotes(domain.config) };
}

function defineNotes(config: DomainConfig): string[] {
  const notes: string[] = [];
  if (config.unused.length) notes.push(`kept but not used by tskvm: ${config.unused.join(', ')}`);
  if (config.os.loader !== undefined) notes.push(`<os><loader> is kept but not used: tskvm loads the guest itself and has no firmware`);
  if (config.vcpusCurrent < config.vcpus)
    notes.push(`the guest boots with ${config.vcpusCurrent} of ${config.vcpus} vCPUs (<vcpu current>): tskvm cannot hot-plug the others`);
  for (const disk of config.disks)
    if (disk.type !== 'file')
      notes.push(`<${disk.where}> of type '${disk.type}' is kept but not used or backed up: tskvm reads file disks`);
  if (config.onCrash.startsWith('coredump-'))
    notes.push(
      `<on_crash>${config.onCrash}</on_crash> acts as ${config.onCrash.slice('coredump-'.length)}: ` +
        `tskvm writes no core dump (the supervisor log has the registers)`,
    );
  return notes;
}

/** `virsh undefine`: removes a definition (not its images or logs). A running domain must be destroyed first. */
export async function undefineDomain(ref: string, options: DomainOptions = {}): Promise<{ name: string }> {
  const { store, name, paths } = await resolve(ref, options);
  await store.undefine(name, async () => {
    const status = await domainStatus(paths);
    if (status.active)
      throw new UsageError(`domain '${name}' is ${status.state} (id ${status.id}): destroy it first (\`tskvm destroy ${name}\`)`);
  });
  await rm(paths.dir, { recursive: true, force: true });
  return { name };
}

/** `virsh list [--all]`: active domains by id, then (with all) the inactive ones by name. */
export async function listDomains(options: DomainOptions & { all?: boolean } = {}): Promise<DomainSummary[]> {
  const store = await DomainStore.open(options);
  const { domains } = await store.list();
  const summaries: DomainSummary[] = [];
  for (const { domain } of domains) {
    const c = domain.config;
    const status = await domainStatus(runtimePaths(store, c.name));
    if (!status.active && !options.all) continue;
    summaries.push({
      ...(status.active && status.id !== undefined ? { id: status.id } : {}),
      name: c.name,
      uuid: c.uuid,
      state: status.state,
      reason: status.reason,
      active: status.active,
      vcpus: c.vcpusCurrent,
      memoryKiB: c.memoryKiB,
      ...(c.title !== undefined ? { title: c.title } : {}),
    });
  }
  return summaries.sort((a, b) =>
    a.active !== b.active ? (a.active ? -1 : 1) : a.active ? (a.id ?? 0) - (b.id ?? 0) : a.name.localeCompare(b.name),
  );
}

/** What the active domains commit (vCPUs and memory), for over-commit checks and nodeinfo. */
export async function committedResources(options: DomainOptions = {}, except?: string): Promise<Commitment> {
  const running = (await listDomains(options)).filter((d) => d.active && d.name !== except);
  return {
    domains: running.length,
    vcpus: running.reduce((n, d) => n + d.vcpus, 0),
    memoryKiB: running.reduce((n, d) => n + d.memoryKiB, 0),
  };
}

export interface StartResult {
  name: string;
  id: number;
  pid: number;
  /** Over-commit and the like, for stderr. */
  warnings: string[];
}

/**
 * `virsh start`: spawns the domain's supervisor and resolves once its guest runs. Under the
 * domain's lock, so of two concurrent starts one wins and the other finds the domain active.
 */
export async function startDomain(ref: string, options: DomainOptions & { restore?: string } = {}): Promise<StartResult> {
  const { store, name } = await resolve(ref, options);
  return store.withDomainLock(name, async () => {
    const { domain } = await store.get(name); // re-read under the lock
    const config = domain.config;
    const paths = runtimePaths(store, name);
    const status = await domainStatus(paths);
    if (status.active)
      throw new UsageError(`domain '${name}' is already active (id ${status.id}, ${status.state}): \`tskvm destroy ${name}\` stops it`);
    if (status.record) await clearDeadSupervisor(paths, status.record);
    await checkDomainFiles(config, `domain '${name}'`);
    await prepareRuntimeDir(paths);
    const warnings = overcommitWarnings(name, config.vcpusCurrent, config.memoryKiB, await committedResources(options, name));
    const id = await nextDomainId(store);
    const args: SupervisorArgs = { home: store.home, name, id, ...(options.restore !== undefined ? { restore: options.restore } : {}) };
    const report = await spawnSupervisor(args, paths);
    if (!report.ok) throw reviveError(report.error, paths);
    return { name, id, pid: report.pid, warnings: [...warnings, ...report.warnings] };
  });
}

/** The compiled supervisor entry: next to this module in dist/, or dist/'s when running from the TypeScript sources. */
function supervisorEntry(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) return path.resolve(path.dirname(here), '..', '..', 'dist', 'domains', 'supervisor-main.js');
  return path.join(path.dirname(here), 'supervisor-main.js');
}

async function spawnSupervisor(args: SupervisorArgs, paths: RuntimePaths): Promise<StartReport> {
  const entry = supervisorEntry();
  try {
    await access(entry);
  } catch {
    throw new Error(`the supervisor ${entry} is missing: build tskvm (npm run build:ts)`);
  }
  const logFd = openSync(paths.supervisorLog, 'a', 0o600);
  let child;
  try {
    child = spawn(process.execPath, [entry, JSON.stringify(args)], {
      detached: true,
      stdio: ['ignore', logFd, logFd, 'pipe'],
      cwd: path.dirname(paths.dir),
    });
  } finally {
    closeSync(logFd);
  }
  const pipe = child.stdio[START_PIPE_FD] as net.Socket;
  return new Promise<StartReport>((resolvePromise, reject) => {
    let text = '';
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      pipe.destroy();
      child.unref();
      fn();
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      settle(() =>
        reject(
          new Error(
            `the supervisor of '${args.name}' did not start the guest within ${START_TIMEOUT_MS / 1000} s: see ${paths.supervisorLog}`,
          ),
        ),
      );
    }, START_TIMEOUT_MS);
    pipe.setEncoding('utf8');
    pipe.on('data', (chunk: string) => {
      text += chunk;
      const newline = text.indexOf('\n');
      if (newline >= 0) settle(() => resolvePromise(JSON.parse(text.slice(0, newline)) as StartReport));
    });
    pipe.on('error', () => {});
    child.once('error', (err) => settle(() => reject(err)));
    child.once('exit', (code, signal) =>
      settle(() =>
        reject(
          new Error(
            `the supervisor of '${args.name}' exited (${signal ?? `status ${code}`}) before the guest started: see ${paths.supervisorLog}`,
          ),
        ),
      ),
    );
  });
}

function reviveError(error: SerializedError, paths: RuntimePaths): Error {
  if (error.name === 'UsageError' || error.name === 'LoaderError' || error.code === 'EUSAGE' || error.code === 'EIMAGE') {
    return new UsageError(error.message, error.code === 'EIMAGE' ? 'EIMAGE' : 'EUSAGE');
  }
  if (error.name === 'KvmError')
    return new KvmError((error.code ?? 'EKVM') as KvmErrorCode, error.syscall ?? '', error.errno ?? 0, error.message);
  return new Error(`the supervisor could not start the guest: ${error.message} (see ${paths.supervisorLog})`);
}

/** Runs a control command on an active domain; an inactive one is a UsageError naming it. */
async function control<T>(
  ref: string,
  options: DomainOptions,
  command: string,
  args?: Record<string, unknown>,
): Promise<{ value: T; resolved: Resolved; status: DomainStatus }> {
  const resolved = await resolve(ref, options);
  const status = await domainStatus(resolved.paths);
  if (!status.active)
    throw new UsageError(`domain '${resolved.name}' is not running (${status.state}): \`tskvm start ${resolved.name}\` starts it`);
  try {
    return { value: await qmpExecute<T>(resolved.paths.control, command, args), resolved, status };
  } catch (err) {
    if (err instanceof QmpError) throw new UsageError(`domain '${resolved.name}': ${err.message}`);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED' || code === 'ENOENT')
      throw new UsageError(`domain '${resolved.name}' has no control socket (its supervisor is ending or gone): try \`tskvm list --all\``);
    throw err;
  }
}

/** `virsh shutdown`: asks for a power-off. tskvm's PC has no ACPI to pass it to, so the run ends and <on_poweroff> applies. */
export async function shutdownDomain(ref: string, options: DomainOptions = {}): Promise<{ name: string }> {
  const { resolved } = await control(ref, options, 'system_powerdown');
  return { name: resolved.name };
}

/** `virsh reboot` (and reset): the guest starts again from its image in the same supervisor. */
export async function rebootDomain(ref: string, options: DomainOptions = {}): Promise<{ name: string }> {
  const { resolved } = await control(ref, options, 'system_reset');
  return { name: resolved.name };
}

/** `virsh suspend`: pauses every vCPU. */
export async function suspendDomain(ref: string, options: DomainOptions = {}): Promise<{ name: string }> {
  const { resolved } = await control(ref, options, 'stop');
  return { name: resolved.name };
}

/** `virsh resume`. */
export async function resumeDomain(ref: string, options: DomainOptions = {}): Promise<{ name: string }> {
  const { resolved } = await control(ref, options, 'cont');
  return { name: resolved.name };
}

/**
 * `virsh destroy`: ends the domain at once. A supervisor that does not end within STOP_TIMEOUT_MS
 * is killed; a crashed one (dead supervisor) is cleared.
 */
export async function destroyDomain(ref: string, options: DomainOptions = {}, reason = 'destroyed'): Promise<{ name: string }> {
  const resolved = await resolve(ref, options);
  const { name, paths } = resolved;
  const status = await domainStatus(paths);
  if (!status.active) {
    if (status.record) {
      await clearDeadSupervisor(paths, status.record);
      return { name };
    }
    throw new UsageError(`domain '${name}' is not running (${status.state})`);
  }
  const record = status.record!;
  try {
    await qmpExecute(paths.control, 'quit', reason === 'destroyed' ? undefined : { 'x-tskvm-reason': reason });
  } catch {
    // No answer: the process is killed below.
  }
  if (!(await waitUntil(() => !supervisorAlive(record), STOP_TIMEOUT_MS))) {
    process.kill(record.pid, 'SIGKILL');
    await waitUntil(() => !supervisorAlive(record), STOP_TIMEOUT_MS);
    await clearDeadSupervisor(paths, record);
  }
  return { name };
}

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return true;
}

/** `virsh dumpxml`: the stored definition. */
export async function dumpXml(ref: string, options: DomainOptions = {}): Promise<string> {
  const { stored } = await resolve(ref, options);
  return formatDomain(stored.domain);
}

export interface DomInfo {
  id?: number;
  name: string;
  uuid: string;
  osType: string;
  state: DomainState;
  reason: string;
  cpus: number;
  /** CPU time of the supervisor (its vCPU threads and the rest), seconds; while active. */
  cpuTimeSeconds?: number;
  maxMemoryKiB: number;
  usedMemoryKiB: number;
  persistent: boolean;
  autostart: boolean;
  managedSave: boolean;
  securityModel: string;
  securityDoi: string;
  lastRun?: LastRun;
}

/** `virsh dominfo`. */
export async function domInfo(ref: string, options: DomainOptions = {}): Promise<DomInfo> {
  const { stored, paths } = await resolve(ref, options);
  const c = stored.domain.config;
  const status = await domainStatus(paths);
  const cpu = status.active && status.record ? processCpuTimeNs(status.record.pid) : undefined;
  const last = await readLastRun(paths);
  const NS_PER_S = 1e9;
  return {
    ...(status.active && status.id !== undefined ? { id: status.id } : {}),
    name: c.name,
    uuid: c.uuid,
    osType: c.os.type,
    state: status.state,
    reason: status.reason,
    cpus: c.vcpusCurrent,
    ...(cpu ? { cpuTimeSeconds: (cpu.user + cpu.system) / NS_PER_S } : {}),
    maxMemoryKiB: c.memoryKiB,
    usedMemoryKiB: c.currentMemoryKiB,
    persistent: true,
    autostart: false,
    managedSave: false,
    securityModel: 'none',
    securityDoi: '0',
    ...(last ? { lastRun: last } : {}),
  };
}

export interface DomStats {
  name: string;
  /** virsh's "key=value" lines, in order. */
  fields: [string, string | number][];
  json: DomainStatsJson | undefined;
}

/** `virsh domstats`: state, CPU time, memory (and touched), vCPUs, and exits by reason (tskvm.exits.*). */
export async function domStats(ref: string, options: DomainOptions = {}): Promise<DomStats> {
  const { stored, paths, name } = await resolve(ref, options);
  const c = stored.domain.config;
  const status = await domainStatus(paths);
  const reasons = STATE_REASONS[status.state] as Record<string, number>;
  const fields: [string, string | number][] = [
    ['state.state', DOMAIN_STATE_NUMBERS[status.state]],
    ['state.reason', reasons[status.reason] ?? 0],
  ];
  let json: DomainStatsJson | undefined;
  if (status.active) {
    json = await qmpExecute<DomainStatsJson>(paths.control, 'x-tskvm-query-stats').catch(() => undefined);
  }
  if (json) {
    fields.push(
      ['cpu.time', Math.round(json.cpuTimeNs)],
      ['cpu.user', Math.round(json.cpuUserNs)],
      ['cpu.system', Math.round(json.cpuSystemNs)],
    );
  }
  fields.push(['balloon.current', c.currentMemoryKiB], ['balloon.maximum', c.memoryKiB]);
  if (json?.memoryTouchedBytes !== undefined) fields.push(['balloon.rss', Math.round(json.memoryTouchedBytes / 1024)]);
  fields.push(['vcpu.current', c.vcpusCurrent], ['vcpu.maximum', c.vcpus]);
  if (json) {
    fields.push(['tskvm.runs', json.runs]);
    for (const [kind, count] of Object.entries(json.exitsOfEndedRuns)) fields.push([`tskvm.exits.${kind}`, count]);
    if (json.memoryTouchedBytes !== undefined) fields.push(['tskvm.memory.touched', Math.round(json.memoryTouchedBytes / 1024)]);
    if (json.lastRun) fields.push(['tskvm.last.reason', json.lastRun.reason], ['tskvm.last.exit-code', json.lastRun.exitCode]);
  }
  return { name, fields, json };
}

/**
 * `virsh edit`: the definition in $VISUAL or $EDITOR (else vi); the result is validated (XML,
 * files) before it replaces the old one, and refused — the store unchanged — when invalid, when
 * it renames the domain or changes its UUID, or when someone redefined it meanwhile.
 */
export async function editDomain(
  ref: string,
  options: DomainOptions & { editor?: string } = {},
): Promise<{ name: string; changed: boolean }> {
  const { store, stored, name } = await resolve(ref, options);
  const before = formatDomain(stored.domain);
  const dir = await mkdtempPrivate(`tskvm-edit-${name}-`);
  const file = path.join(dir, `${name}.xml`);
  try {
    await writeFile(file, before, { mode: 0o600 });
    const editor = options.editor ?? (process.env.VISUAL || process.env.EDITOR || 'vi');
    await runEditor(editor, file);
    const after = await readFile(file, 'utf8');
    if (after === before) return { name, changed: false };
    const domain = parseDomain(after, `edited ${name}.xml`);
    if (domain.config.name !== name)
      throw new UsageError(
        `edited ${name}.xml: element <name>: renaming '${name}' to '${domain.config.name}' is not an edit: ` +
          `define the new domain and undefine this one`,
      );
    await checkDomainFiles(domain.config, `edited ${name}.xml`);
    await store.withDomainLock(name, async () => {
      const current = await store.get(name);
      if (formatDomain(current.domain) !== before)
        throw new UsageError(`domain '${name}' was redefined while you edited it: edit it again`);
      if (domain.config.uuid !== current.domain.config.uuid)
        throw new UsageError(`edited ${name}.xml: element <uuid>: a domain keeps its UUID (${current.domain.config.uuid})`);
      await writeFileAtomic(current.file, formatDomain(domain));
    });
    return { name, changed: true };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function mkdtempPrivate(prefix: string): Promise<string> {
  const dir = path.join(os.tmpdir(), `${prefix}${randomBytes(6).toString('hex')}`);
  await mkdir(dir, { mode: 0o700 });
  return dir;
}

/** Runs an editor command as git does: through sh, so EDITOR may carry arguments. */
function runEditor(editor: string, file: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('/bin/sh', ['-c', `${editor} "$1"`, 'sh', file], { stdio: 'inherit' });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolvePromise();
      else reject(new UsageError(`the editor '${editor}' failed (${signal ?? `status ${code}`}): the definition is unchanged`));
    });
  });
}

/** `virsh save`: the running state to FILE (through snapshots), and the domain stops. */
export async function saveDomain(ref: string, file: string, options: DomainOptions = {}): Promise<{ name: string; file: string }> {
  const target = path.resolve(file);
  const resolved = await resolve(ref, options);
  const { name, paths, stored } = resolved;
  const snapshotFile = path.join(paths.dir, `save-${randomBytes(6).toString('hex')}.snap`);
  const { status } = await control(ref, options, 'snapshot-save', { file: snapshotFile, 'x-tskvm-stay-paused': true }).catch(
    async (err: unknown) => {
      await rm(snapshotFile, { force: true });
      throw err;
    },
  );
  try {
    await writeSaveFile(target, formatDomain(stored.domain), snapshotFile);
  } catch (err) {
    // The guest stays as it was (the snapshot left it paused): let it go on if it was running.
    if (status.state === 'running') await resumeDomain(name, options).catch(() => {});
    throw new UsageError(`cannot write the save file '${target}': ${(err as Error).message}`);
  } finally {
    await rm(snapshotFile, { force: true });
  }
  await destroyDomain(name, options, 'saved');
  return { name, file: target };
}

const SAVE_MAGIC = 'TSKVM-SAVE 1\n';
/** The most a save file's header (the magic and the JSON line with the domain XML) may take. */
const SAVE_HEADER_MAX = 16 * 1024 * 1024;

/**
 * A save file: a magic line, a JSON line with the domain XML and the snapshot's length, then the
 * snapshot file's bytes, copied as a stream (a snapshot holds every touched page of guest RAM).
 */
export async function writeSaveFile(file: string, xml: string, snapshotFile: string): Promise<void> {
  const { size } = await stat(snapshotFile);
  const header = Buffer.from(`${SAVE_MAGIC}${JSON.stringify({ xml, snapshotBytes: size })}\n`);
  await writeStreamAtomic(file, async (out) => {
    out.write(header);
    await pipeline(createReadStream(snapshotFile), out);
  });
}

/** Writes a file through a temporary one, fsync and rename, as writeFileAtomic does, from a stream. */
async function writeStreamAtomic(file: string, fill: (out: Writable) => Promise<void>): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    // The stream owns its descriptor (pipeline() waits for it to close); the data is fsync'ed after.
    await fill(createWriteStream(temp, { flags: 'wx', mode: 0o600 }));
    const handle = await open(temp, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await syncDir(path.dirname(file));
}

/** Reads a save file's header; the snapshot is the rest of the file, from `snapshotOffset`. */
async function readSaveHeader(file: string): Promise<{ xml: string; snapshotOffset: number; snapshotBytes: number }> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    throw new UsageError(`save file '${file}' cannot be read: ${(err as Error).message}`);
  }
  try {
    const { size } = await handle.stat();
    const head = Buffer.alloc(Math.min(size, SAVE_HEADER_MAX));
    await handle.read(head, 0, head.length, 0);
    const end = head.indexOf('\n', SAVE_MAGIC.length);
    if (head.subarray(0, SAVE_MAGIC.length).toString('latin1') !== SAVE_MAGIC || end < 0) {
      throw new UsageError(
        `'${file}' is not a tskvm save file (it does not start '${SAVE_MAGIC.trim()}'): give a file \`tskvm save\` wrote`,
      );
    }
    const header = JSON.parse(head.subarray(SAVE_MAGIC.length, end).toString('utf8')) as { xml: string; snapshotBytes: number };
    const snapshotOffset = end + 1;
    if (size - snapshotOffset !== header.snapshotBytes) {
      throw new UsageError(`save file '${file}' is damaged: it holds ${size - snapshotOffset} of ${header.snapshotBytes} snapshot bytes`);
    }
    return { xml: header.xml, snapshotOffset, snapshotBytes: header.snapshotBytes };
  } finally {
    await handle.close();
  }
}

/** `virsh restore`: defines the saved domain if needed and starts it from the saved state. */
export async function restoreDomain(file: string, options: DomainOptions = {}): Promise<StartResult> {
  const source = path.resolve(file);
  const saved = await readSaveHeader(source);
  const domain = parseDomain(saved.xml, `${file} (its domain XML)`);
  const store = await DomainStore.open(options);
  const existing = await store.find(domain.config.name);
  if (existing && existing.domain.config.uuid !== domain.config.uuid) {
    throw new UsageError(
      `'${file}' saved domain '${domain.config.name}' with uuid ${domain.config.uuid}, ` +
        `but the defined '${domain.config.name}' has ${existing.domain.config.uuid}`,
    );
  }
  if (!existing) await defineDomain(saved.xml, { ...options, source: file });
  const paths = runtimePaths(store, domain.config.name);
  await prepareRuntimeDir(paths);
  const snapshotFile = path.join(paths.dir, `restore-${randomBytes(6).toString('hex')}.snap`);
  // The snapshot alone, as startGuest({ restore }) takes it; removed once the guest runs (a mapping keeps its pages).
  await writeStreamAtomic(snapshotFile, (out) => pipeline(createReadStream(source, { start: saved.snapshotOffset }), out));
  try {
    return await startDomain(domain.config.name, { ...options, restore: snapshotFile });
  } finally {
    await rm(snapshotFile, { force: true });
  }
}

const BACKUP_FORMAT = 'tskvm-backup';
const BACKUP_VERSION = 1;
const MANIFEST = 'manifest.json';

export interface BackupFile {
  /** Where the domain names it. */
  path: string;
  /** Its copy, relative to the backup directory. */
  backup: string;
  size: number;
  sha256: string;
  kind: string;
  where: string;
}

export interface BackupManifest {
  format: typeof BACKUP_FORMAT;
  version: number;
  name: string;
  uuid: string;
  createdAt: string;
  /** The definition, relative to the backup directory (NAME.xml). */
  xml: string;
  files: BackupFile[];
  /** The domain's state while it was copied. */
  state: DomainState;
}

/**
 * `backup NAME DIR`: DIR/NAME.xml (the definition) plus a copy of every file it names (kernel,
 * initrd, file disks) and a manifest with their checksums. A running domain is suspended while
 * its images are copied, so they are consistent with each other, then resumed. The manifest is
 * written last: a backup without one is incomplete.
 */
export async function backupDomain(
  ref: string,
  dir: string,
  options: DomainOptions = {},
): Promise<{ name: string; dir: string; files: BackupFile[] }> {
  const resolved = await resolve(ref, options);
  const { name, stored, paths } = resolved;
  const target = path.resolve(dir);
  await mkdir(target, { recursive: true, mode: 0o700 });
  if ((await readdir(target)).length > 0) throw new UsageError(`backup directory '${target}' is not empty: give a new or empty directory`);
  const config = stored.domain.config;
  await checkDomainFiles(config, `domain '${name}'`);
  const status = await domainStatus(paths);
  const suspend = status.active && status.state === 'running';
  if (suspend) await suspendDomain(name, options);
  const files: BackupFile[] = [];
  try {
    await mkdir(path.join(target, 'images'), { mode: 0o700 });
    for (const [i, f] of domainFiles(config).entries()) {
      const backup = path.join('images', `${i}-${path.basename(f.path)}`);
      await copyFile(f.path, path.join(target, backup));
      const { size } = await stat(path.join(target, backup));
      files.push({ path: f.path, backup, size, sha256: await sha256File(path.join(target, backup)), kind: f.kind, where: f.where });
    }
  } finally {
    if (suspend) await resumeDomain(name, options).catch(() => {});
  }
  const xmlName = `${name}.xml`;
  await writeFileAtomic(path.join(target, xmlName), formatDomain(stored.domain));
  const manifest: BackupManifest = {
    format: BACKUP_FORMAT,
    version: BACKUP_VERSION,
    name,
    uuid: config.uuid,
    createdAt: new Date().toISOString(),
    xml: xmlName,
    files,
    state: status.state,
  };
  await writeFileAtomic(path.join(target, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  return { name, dir: target, files };
}

/**
 * `restore-backup DIR`: checks every copy against the manifest, puts back the images that are
 * missing or differ (each through a temporary file and a rename), then defines the XML. The
 * seed's way works too: with the images in place, `define DIR/NAME.xml`.
 */
export async function restoreBackup(
  dir: string,
  options: DomainOptions = {},
): Promise<{ name: string; restored: string[]; unchanged: string[] }> {
  const source = path.resolve(dir);
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(await readFile(path.join(source, MANIFEST), 'utf8')) as BackupManifest;
  } catch (err) {
    throw new UsageError(
      `'${source}' is not a complete tskvm backup (${MANIFEST}: ${(err as Error).message}): give the directory \`tskvm backup\` wrote`,
    );
  }
  if (manifest.format !== BACKUP_FORMAT || manifest.version !== BACKUP_VERSION)
    throw new UsageError(`${path.join(source, MANIFEST)}: not a ${BACKUP_FORMAT} version ${BACKUP_VERSION} manifest`);
  const xml = await readFile(path.join(source, manifest.xml), 'utf8');
  const domain = parseDomain(xml, path.join(source, manifest.xml));
  const store = await DomainStore.open(options);
  if (await store.find(domain.config.name)) {
    throw new UsageError(
      `domain '${domain.config.name}' is already defined: undefine it first, ` +
        `or just \`tskvm define ${path.join(source, manifest.xml)}\` with its images in place`,
    );
  }
  for (const f of manifest.files) {
    const copy = path.join(source, f.backup);
    const sum = await sha256File(copy).catch(() => undefined);
    if (sum !== f.sha256)
      throw new UsageError(
        `backup copy '${copy}' of ${f.path} is ${sum === undefined ? 'missing' : 'damaged (its checksum differs from the manifest)'}: ` +
          `the backup cannot be restored`,
      );
  }
  const restored: string[] = [];
  const unchanged: string[] = [];
  for (const f of manifest.files) {
    const current = await sha256File(f.path).catch(() => undefined);
    if (current === f.sha256) {
      unchanged.push(f.path);
      continue;
    }
    await mkdir(path.dirname(f.path), { recursive: true });
    const temp = path.join(path.dirname(f.path), `.${path.basename(f.path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      await copyFile(path.join(source, f.backup), temp);
      const handle = await open(temp, 'r+');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, f.path);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    restored.push(f.path);
  }
  await defineDomain(xml, { ...options, source: path.join(source, manifest.xml) });
  return { name: domain.config.name, restored, unchanged };
}

function sha256File(file: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolvePromise(hash.digest('hex')));
  });
}

export interface NodeReport extends NodeInfo {
  committed: Commitment;
}

/** `virsh nodeinfo`, with what the active domains commit. */
export async function nodeReport(options: DomainOptions = {}): Promise<NodeReport> {
  return { ...nodeInfo(), committed: await committedResources(options) };
}

/** The Ctrl-] byte virsh console detaches on. */
export const CONSOLE_ESCAPE = 0x1d;

export interface ConsoleOptions extends DomainOptions {
  input: Readable;
  output: Writable;
  /** Take the console over from another session (virsh console --force). */
  force?: boolean;
  /** Called once attached, with the serial port (COM1 ...). */
  onAttached?: (port: string) => void;
}

/**
 * `virsh console`: the domain's pty serial port, both ways, until Ctrl-] in the input
 * ('detached'), the end of the input ('eof'), or the domain's end ('ended').
 */
export async function attachConsole(ref: string, options: ConsoleOptions): Promise<'detached' | 'eof' | 'ended'> {
  const { name, paths } = await resolve(ref, options);
  const status = await domainStatus(paths);
  if (!status.active)
    throw new UsageError(`domain '${name}' is not running (${status.state}): \`tskvm start ${name} --console\` starts it and attaches`);
  const socket = await new Promise<net.Socket>((resolvePromise, reject) => {
    const s = net.connect(paths.console);
    s.once('connect', () => resolvePromise(s));
    s.once('error', (err) => reject(new UsageError(`domain '${name}': cannot reach its console (${err.message})`)));
  });
  socket.write(`${JSON.stringify({ force: options.force === true })}\n`);
  const answer = await readLine(socket);
  const parsed = JSON.parse(answer.line) as { ok?: boolean; port?: string; error?: string };
  if (!parsed.ok) {
    socket.destroy();
    throw new UsageError(`domain '${name}': ${parsed.error ?? 'the console refused the connection'}`);
  }
  options.onAttached?.(parsed.port ?? 'COM1');
  if (answer.rest.length) options.output.write(answer.rest);
  return new Promise((resolvePromise) => {
    let done = false;
    const finish = (how: 'detached' | 'eof' | 'ended'): void => {
      if (done) return;
      done = true;
      options.input.off('data', onInput);
      options.input.off('end', onEnd);
      socket.off('data', onOutput);
      socket.end();
      socket.destroy();
      resolvePromise(how);
    };
    const onOutput = (chunk: Buffer): void => {
      options.output.write(chunk);
    };
    const onInput = (chunk: Buffer | string): void => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      const escape = bytes.indexOf(CONSOLE_ESCAPE);
      if (escape >= 0) {
        if (escape > 0) socket.write(bytes.subarray(0, escape));
        finish('detached');
        return;
      }
      socket.write(bytes);
    };
    const onEnd = (): void => finish('eof');
    socket.on('data', onOutput);
    socket.on('close', () => finish('ended'));
    socket.on('error', () => finish('ended'));
    options.input.on('data', onInput);
    options.input.on('end', onEnd);
    options.input.resume();
  });
}

function readLine(socket: net.Socket): Promise<{ line: string; rest: Buffer }> {
  return new Promise((resolvePromise, reject) => {
    let buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffer = Buffer.concat([buffer, chunk]);
      const newline = buffer.indexOf(0x0a);
      if (newline < 0) return;
      socket.off('data', onData);
      socket.off('close', onClose);
      resolvePromise({ line: buffer.subarray(0, newline).toString('utf8'), rest: buffer.subarray(newline + 1) });
    };
    const onClose = (): void => reject(new UsageError('the console closed before answering'));
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}
