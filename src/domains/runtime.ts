/**
 * A running domain's state on disk: run/NAME/ (mode 0700) holds the supervisor's record
 * (supervisor.json: its pid and start time, the domain's id and state, rewritten atomically on
 * every change), its control socket (control.sock, QMP-style) and console socket (console.sock),
 * both mode 0600; last.json says how the last run ended.
 *
 * A record whose process is gone — or whose pid now belongs to another process, which the start
 * time in /proc/PID/stat tells apart — is a supervisor that died without cleaning up: the domain
 * is 'crashed', never 'running'. A supervisor that ends normally removes its record.
 */
import { readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { privateDir, writeFileAtomic, type DomainStore } from './store.js';

/** virsh's state names (virDomainState). */
export type DomainState = 'running' | 'paused' | 'in shutdown' | 'shut off' | 'crashed';

/** libvirt's numbers for them (virDomainState), as domstats prints state.state. */
export const DOMAIN_STATE_NUMBERS: Readonly<Record<DomainState, number>> = {
  running: 1,
  paused: 3,
  'in shutdown': 4,
  'shut off': 5,
  crashed: 6,
};

/** Reasons, by state, with libvirt's numbers (virDomainRunningReason and friends). */
export const STATE_REASONS = {
  running: { unknown: 0, booted: 1, restored: 3, unpaused: 5 },
  paused: { unknown: 0, user: 1, save: 3, 'shutting down': 8 },
  'in shutdown': { unknown: 0, user: 1 },
  'shut off': { unknown: 0, shutdown: 1, destroyed: 2, crashed: 3, saved: 5, failed: 6 },
  crashed: { unknown: 0, panicked: 1 },
} as const;
export type StateReason<S extends DomainState> = keyof (typeof STATE_REASONS)[S] & string;

export interface SupervisorRecord {
  pid: number;
  /** /proc/PID/stat's starttime (clock ticks since boot): tells a reused pid apart. */
  startTime: string;
  /** The domain id (virsh list's Id), unique while the home exists. */
  id: number;
  name: string;
  uuid: string;
  state: DomainState;
  reason: string;
  /** ISO time the supervisor started the domain. */
  startedAt: string;
  vcpus: number;
  memoryKiB: number;
}

export interface LastRun {
  /** How the run ended: the guest's power-off, a crash, destroy, a failed start ... */
  reason: string;
  state: DomainState;
  exitCode?: number;
  crash?: string;
  endedAt: string;
}

export interface RuntimePaths {
  dir: string;
  record: string;
  control: string;
  console: string;
  last: string;
  supervisorLog: string;
  consoleLog: string;
}

/** The kernel's limit for an AF_UNIX socket path (sun_path is 108 bytes with its NUL). */
const SOCKET_PATH_MAX = 107;

export function runtimePaths(store: DomainStore, name: string): RuntimePaths {
  const dir = path.join(store.runDir, name);
  return {
    dir,
    record: path.join(dir, 'supervisor.json'),
    control: path.join(dir, 'control.sock'),
    console: path.join(dir, 'console.sock'),
    last: path.join(dir, 'last.json'),
    supervisorLog: path.join(store.logDir, `${name}.log`),
    consoleLog: path.join(store.logDir, `${name}.console.log`),
  };
}

/** Creates run/NAME/ (0700) and checks its socket paths fit in sun_path. */
export async function prepareRuntimeDir(paths: RuntimePaths): Promise<void> {
  for (const socket of [paths.control, paths.console]) {
    if (Buffer.byteLength(socket) > SOCKET_PATH_MAX) {
      throw new UsageError(
        `the control socket path ${socket} is longer than the ${SOCKET_PATH_MAX} bytes a Unix socket path may have: ` +
          `use a shorter TSKVM_HOME or domain name`,
      );
    }
  }
  await privateDir(path.dirname(paths.dir));
  await privateDir(paths.dir);
}

/** The start time of a process, from /proc/PID/stat (field 22), or undefined when it does not exist. */
export function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) is in parentheses and may hold spaces or ')': split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); starttime is field 22.
  const STARTTIME_FIELD = 22;
  const FIRST_FIELD_AFTER_COMM = 3;
  const state = rest[0];
  if (state === 'Z' || state === 'X') return undefined; // a zombie is dead, whatever its parent does
  return rest[STARTTIME_FIELD - FIRST_FIELD_AFTER_COMM];
}

/** CPU time a process used (user + system), in nanoseconds, from /proc/PID/stat. */
export function processCpuTimeNs(pid: number, clockTicksPerSecond = CLOCK_TICKS): { user: number; system: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const UTIME_FIELD = 14;
  const STIME_FIELD = 15;
  const FIRST_FIELD_AFTER_COMM = 3;
  const toNs = (ticks: string | undefined): number => (Number(ticks ?? 0) * 1e9) / clockTicksPerSecond;
  return { user: toNs(rest[UTIME_FIELD - FIRST_FIELD_AFTER_COMM]), system: toNs(rest[STIME_FIELD - FIRST_FIELD_AFTER_COMM]) };
}

/** sysconf(_SC_CLK_TCK): 100 on every Linux x86-64 configuration. */
const CLOCK_TICKS = 100;

export async function readRecord(paths: RuntimePaths): Promise<SupervisorRecord | undefined> {
  return readJson<SupervisorRecord>(paths.record);
}

export async function readLastRun(paths: RuntimePaths): Promise<LastRun | undefined> {
  return readJson<LastRun>(paths.last);
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (err instanceof SyntaxError) return undefined; // written atomically, so only a hand edit gets here
    throw err;
  }
}

export async function writeRecord(paths: RuntimePaths, record: SupervisorRecord): Promise<void> {
  await writeFileAtomic(paths.record, `${JSON.stringify(record, null, 2)}\n`);
}

export async function writeLastRun(paths: RuntimePaths, last: LastRun): Promise<void> {
  await writeFileAtomic(paths.last, `${JSON.stringify(last, null, 2)}\n`);
}

/** Whether the process a record names is still that process. */
export function supervisorAlive(record: Pick<SupervisorRecord, 'pid' | 'startTime'>): boolean {
  return processStartTime(record.pid) === record.startTime;
}

export interface DomainStatus {
  state: DomainState;
  reason: string;
  /** Present while a supervisor is alive (and for a crashed one, its last id). */
  id?: number;
  record?: SupervisorRecord;
  /** A live supervisor (the domain is active: running, paused, or preserved after its end). */
  active: boolean;
}

/** A domain's state from its runtime directory. */
export async function domainStatus(paths: RuntimePaths): Promise<DomainStatus> {
  const record = await readRecord(paths);
  if (record) {
    if (supervisorAlive(record)) return { state: record.state, reason: record.reason, id: record.id, record, active: true };
    return { state: 'crashed', reason: 'unknown', record, active: false };
  }
  const last = await readLastRun(paths);
  if (last?.state === 'crashed') return { state: 'crashed', reason: last.reason, active: false };
  return { state: 'shut off', reason: last?.reason ?? 'unknown', active: false };
}

/** Removes what a dead supervisor left (its record and sockets), noting that it crashed. */
export async function clearDeadSupervisor(paths: RuntimePaths, record: SupervisorRecord): Promise<void> {
  const last = { reason: `supervisor ${record.pid} died`, state: 'crashed' as const, endedAt: new Date().toISOString() };
  await writeLastRun(paths, last).catch(() => {});
  await Promise.all([paths.record, paths.control, paths.console].map((file) => rm(file, { force: true })));
}

/** Allocates the next domain id (ids are never reused within a home, as libvirt's within a daemon's life). */
export async function nextDomainId(store: DomainStore): Promise<number> {
  return store.withLock('ids', async () => {
    const file = path.join(store.runDir, 'last-id');
    let last = 0;
    try {
      last = Number((await readFile(file, 'utf8')).trim()) || 0;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await writeFileAtomic(file, `${last + 1}\n`);
    return last + 1;
  });
}
