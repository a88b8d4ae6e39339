/**
 * The domain store: one XML file per defined domain under the tskvm home, as libvirt keeps
 * /etc/libvirt/qemu/NAME.xml for qemu:///system and ~/.config/libvirt/qemu/NAME.xml for
 * qemu:///session. Where the home is:
 *
 *   $TSKVM_HOME                     when set (tests, several independent stores)
 *   tskvm:///session (the default)  $XDG_DATA_HOME/tskvm, else ~/.local/share/tskvm
 *   tskvm:///system                 /var/lib/tskvm (root's guests; its run/ directory is root's alone)
 *
 * Inside: domains/NAME.xml (definitions, mode 0600), locks/ (proper-lockfile lock directories),
 * run/NAME/ (a running domain's sockets and state, mode 0700), log/ (supervisor and console logs).
 *
 * Every change to a definition is a whole new file written beside it, fsync'ed, renamed over the
 * old one and the directory fsync'ed: a reader sees the old definition or the new one, never a
 * mix, and a crash loses at most the change being made. Changes to one domain happen under its
 * lock; changes that must see every domain (a define checking names and UUIDs are unused) under
 * the store's lock as well, always taken first, so two processes never wait on each other in a
 * cycle.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { UsageError } from '../errors.js';
import { formatDomain, parseDomain, type Domain } from './xml.js';

export const SESSION_URI = 'tskvm:///session';
export const SYSTEM_URI = 'tskvm:///system';
export const SYSTEM_HOME = '/var/lib/tskvm';

const PRIVATE_DIR_MODE = 0o700;
const PRIVATE_FILE_MODE = 0o600;
const DEFINITION_SUFFIX = '.xml';
const TEMP_SUFFIX = '.tmp';
/** A temporary file this old was left by a process that died mid-write. */
const STALE_TEMP_MS = 60_000;

/** How long a process waits for a lock another holds (define, start and the like take milliseconds). */
const LOCK_RETRIES = { retries: 400, minTimeout: 5, maxTimeout: 100, factor: 1.3, randomize: true };
/** A lock not refreshed for this long belongs to a process that died holding it. */
const LOCK_STALE_MS = 10_000;

export interface HomeOptions {
  /** tskvm:///session or tskvm:///system (libvirt's qemu:///session and qemu:///system). */
  connect?: string;
  /** The home directory itself (wins over everything else). */
  home?: string;
  env?: NodeJS.ProcessEnv;
}

/** The home directory: an explicit home, then --connect, then $TSKVM_HOME, then the session default. */
export function resolveHome(options: HomeOptions = {}): string {
  const env = options.env ?? process.env;
  if (options.home !== undefined) return path.resolve(options.home);
  const uri = options.connect ?? (env.TSKVM_HOME ? undefined : env.TSKVM_DEFAULT_URI);
  if (uri === undefined) {
    if (env.TSKVM_HOME) return path.resolve(env.TSKVM_HOME);
    return sessionHome(env);
  }
  const normalised = uri.replace(/\/+$/, '');
  if (normalised === SYSTEM_URI) return SYSTEM_HOME;
  if (normalised === SESSION_URI) return sessionHome(env);
  throw new UsageError(`unknown connection URI '${uri}': use ${SESSION_URI} (your own guests) or ${SYSTEM_URI} (root's)`);
}

function sessionHome(env: NodeJS.ProcessEnv): string {
  const data =
    env.XDG_DATA_HOME && path.isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : path.join(env.HOME || os.homedir(), '.local', 'share');
  return path.join(data, 'tskvm');
}

/** Creates (or checks) a directory only its owner can enter. */
export async function privateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const st = await lstat(dir);
  if (!st.isDirectory()) throw new UsageError(`'${dir}' is not a directory: move it away, tskvm keeps its state there`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid)
    throw new UsageError(`'${dir}' belongs to uid ${st.uid}, not to you (uid ${uid}): use your own TSKVM_HOME`);
  if ((st.mode & 0o777) !== PRIVATE_DIR_MODE) await chmod(dir, PRIVATE_DIR_MODE);
}

/**
 * Writes a file so that readers see the old contents or the new, never a mix, and the new
 * contents survive a crash once this resolves: a temporary file beside it, fsync, rename, then
 * fsync the directory (so the rename itself is on disk).
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = PRIVATE_FILE_MODE): Promise<void> {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`);
  const handle = await open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, mode);
  try {
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await syncDir(dir);
}

export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export interface StoredDomain {
  domain: Domain;
  /** The definition file. */
  file: string;
}

/** Why a definition in the store could not be read (listed, not fatal: the others still are). */
export interface StoreProblem {
  file: string;
  message: string;
}

export class DomainStore {
  readonly domainsDir: string;
  readonly locksDir: string;
  readonly runDir: string;
  readonly logDir: string;

  private constructor(readonly home: string) {
    this.domainsDir = path.join(home, 'domains');
    this.locksDir = path.join(home, 'locks');
    this.runDir = path.join(home, 'run');
    this.logDir = path.join(home, 'log');
  }

  /** Opens the store at the home `options` select, creating its directories (mode 0700). */
  static async open(options: HomeOptions = {}): Promise<DomainStore> {
    const store = new DomainStore(resolveHome(options));
    await privateDir(store.home);
    for (const dir of [store.domainsDir, store.locksDir, store.runDir, store.logDir]) await privateDir(dir);
    return store;
  }

  definitionFile(name: string): string {
    return path.join(this.domainsDir, `${name}${DEFINITION_SUFFIX}`);
  }

  /** The names of the defined domains, sorted. */
  async names(): Promise<string[]> {
    const entries = await readdir(this.domainsDir);
    const names = entries
      .filter((e) => e.endsWith(DEFINITION_SUFFIX) && !e.startsWith('.'))
      .map((e) => e.slice(0, -DEFINITION_SUFFIX.length));
    return names.sort();
  }

  /** Every definition that reads back; those that do not are in `problems`. */
  async list(): Promise<{ domains: StoredDomain[]; problems: StoreProblem[] }> {
    const domains: StoredDomain[] = [];
    const problems: StoreProblem[] = [];
    for (const name of await this.names()) {
      try {
        const found = await this.find(name);
        if (found) domains.push(found);
      } catch (err) {
        problems.push({ file: this.definitionFile(name), message: (err as Error).message });
      }
    }
    void this.removeStaleTemps();
    return { domains, problems };
  }

  /** A domain by name, or undefined. */
  async find(name: string): Promise<StoredDomain | undefined> {
    if (!isPlainName(name)) return undefined;
    const file = this.definitionFile(name);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const domain = parseDomain(text, file);
    if (domain.config.name !== name)
      throw new UsageError(
        `${file} defines '${domain.config.name}', not '${name}': the store was edited by hand; rename the file or fix <name>`,
      );
    return { domain, file };
  }

  /** A domain by name, UUID or a running domain's id is resolved by the caller; this takes a name. */
  async get(name: string): Promise<StoredDomain> {
    const found = await this.find(name);
    if (!found)
      throw new UsageError(`domain '${name}' not found: \`tskvm list --all\` shows the defined domains, \`tskvm define FILE\` adds one`);
    return found;
  }

  /**
   * Adds a definition, or replaces the one with the same name and UUID (libvirt's redefine).
   * Refused, with the store unchanged: a name in use with another UUID, a UUID in use by another name.
   */
  async define(domain: Domain): Promise<{ created: boolean; file: string }> {
    const { name, uuid } = domain.config;
    return this.withStoreLock(() =>
      this.withDomainLock(name, async () => {
        const existing = await this.find(name).catch(() => undefined);
        if (existing && existing.domain.config.uuid !== uuid) {
          throw new UsageError(
            `domain '${name}' already exists with uuid ${existing.domain.config.uuid}: choose another <name>, ` +
              `or give <uuid>${existing.domain.config.uuid}</uuid> to replace its definition`,
          );
        }
        for (const other of await this.names()) {
          if (other === name) continue;
          const found = await this.find(other).catch(() => undefined);
          if (found && found.domain.config.uuid === uuid) {
            throw new UsageError(`<uuid>${uuid}</uuid> is already used by domain '${other}': leave <uuid> out to have a new one generated`);
          }
        }
        const file = this.definitionFile(name);
        await writeFileAtomic(file, formatDomain(domain));
        return { created: existing === undefined, file };
      }),
    );
  }

  /** Replaces a definition in place (edit): same name and UUID, under the domain's lock. */
  async replace(domain: Domain, expectedUuid: string): Promise<void> {
    const { name, uuid } = domain.config;
    if (uuid !== expectedUuid)
      throw new UsageError(`<uuid> changed from ${expectedUuid} to ${uuid}: a domain keeps its UUID; define a new domain instead`);
    await this.withDomainLock(name, async () => {
      const existing = await this.get(name);
      if (existing.domain.config.uuid !== expectedUuid) throw new UsageError(`domain '${name}' was redefined meanwhile: edit it again`);
      await writeFileAtomic(this.definitionFile(name), formatDomain(domain));
    });
  }

  /** Removes a definition; `check` runs under the locks first (e.g. refuse a running domain). */
  async undefine(name: string, check?: (stored: StoredDomain) => Promise<void>): Promise<StoredDomain> {
    return this.withStoreLock(() =>
      this.withDomainLock(name, async () => {
        const stored = await this.get(name);
        await check?.(stored);
        await rm(stored.file);
        await syncDir(this.domainsDir);
        return stored;
      }),
    );
  }

  /** Runs `body` holding the lock of one domain (it need not be defined yet). */
  withDomainLock<T>(name: string, body: () => Promise<T>): Promise<T> {
    if (!isPlainName(name)) throw new UsageError(`'${name}' is not a domain name`);
    return this.withLock(`domain-${name}`, body);
  }

  /** Runs `body` holding the store-wide lock (taken before any domain's lock). */
  withStoreLock<T>(body: () => Promise<T>): Promise<T> {
    return this.withLock('store', body);
  }

  /** Runs `body` holding a named lock of the store (proper-lockfile: a lock directory refreshed while held). */
  async withLock<T>(lockName: string, body: () => Promise<T>): Promise<T> {
    const lockPath = path.join(this.locksDir, `${lockName}.lock`);
    let compromised: Error | undefined;
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(lockPath, {
        realpath: false,
        lockfilePath: lockPath,
        retries: LOCK_RETRIES,
        stale: LOCK_STALE_MS,
        onCompromised: (err) => {
          compromised = err;
        },
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOCKED') {
        throw new UsageError(
          `another tskvm command has held the lock ${lockPath} for too long: try again, or remove it if no tskvm command runs`,
        );
      }
      throw err;
    }
    try {
      const result = await body();
      if (compromised) throw new Error(`the lock ${lockPath} was lost while held (${compromised.message}): check the result and try again`);
      return result;
    } finally {
      await release().catch(() => {});
    }
  }

  private async removeStaleTemps(): Promise<void> {
    try {
      for (const entry of await readdir(this.domainsDir)) {
        if (!entry.startsWith('.') || !entry.endsWith(TEMP_SUFFIX)) continue;
        const file = path.join(this.domainsDir, entry);
        const st = await stat(file);
        if (Date.now() - st.mtimeMs > STALE_TEMP_MS) await rm(file, { force: true });
      }
    } catch {
      // Best effort: a leftover temporary file is harmless.
    }
  }
}

/** Names that can be file names (definitions are NAME.xml): what parseDomain accepts. */
function isPlainName(name: string): boolean {
  return name !== '' && !name.includes('/') && !name.startsWith('.') && name.length <= 255;
}
