/**
 * Reading the files a guest is made of (the image, multiboot modules), all through the same
 * checks: a regular file (not a FIFO, device or directory, whose `stat` size says nothing), no
 * larger than guest RAM, read with a bound whatever the file does while it is read. Opening with
 * O_NONBLOCK means a FIFO with no writer cannot hang the run. Opening and fstat are synchronous
 * (each an instant on a regular file, where a trip through libuv's thread pool costs more than
 * the small guests most runs have), and so is the read of a file of at most one chunk; a larger
 * file is read through the thread pool, so that the caller's event loop keeps running.
 */
import { closeSync, fstatSync, constants as fsConstants, openSync, read, readSync } from 'node:fs';
import { promisify } from 'node:util';
import { openDiskFile } from '../bios/disk-file.js';
import { UsageError } from '../errors.js';
import { KvmError } from '../kvm/error.js';
import type { MultibootModule } from '../loader/multiboot.js';
import { memoryAdvice } from '../units.js';
import type { GuestFileSource, MachineConfig } from './options.js';

/** The most bytes read per read(2); a file no larger is read synchronously. */
const READ_CHUNK = 1 << 20;

type ReadAsync = (fd: number, into: Uint8Array, offset: number, length: number, position: number) => Promise<{ bytesRead: number }>;
let readAsyncFn: ReadAsync | undefined;

/** fs.read as a promise, made on first use (~0.25 ms cold): only a file over READ_CHUNK is read so. */
const readAsync: ReadAsync = (...args) => (readAsyncFn ??= promisify(read) as ReadAsync)(...args);

export interface GuestFiles {
  /** Absent when the BIOS boots a disk and no image was given. */
  image: { bytes: Uint8Array; name: string } | undefined;
  modules: MultibootModule[];
}

/** Reads the image and the modules, each bounded by guest RAM. */
export async function readGuestFiles(config: MachineConfig): Promise<GuestFiles> {
  const image = config.image ? await readSource(config.image, 'image', config.memorySize) : undefined;
  const modules: MultibootModule[] = [];
  for (const m of config.modules) {
    const { bytes, name } = await readSource(m, 'module', config.memorySize);
    modules.push({ name, bytes, ...(m.cmdline === undefined ? {} : { cmdline: m.cmdline }) });
  }
  return { image, modules };
}

async function readSource(source: GuestFileSource, kind: string, memorySize: number): Promise<{ bytes: Uint8Array; name: string }> {
  if ('bytes' in source) {
    if (source.bytes.length > memorySize) throw tooLarge(`${kind} '${source.name}'`, source.bytes.length, memorySize);
    return source;
  }
  return { bytes: await readGuestFile(source.path, `${kind} '${source.path}'`, memorySize), name: source.path };
}

/**
 * Checks the image and the modules as readGuestFiles will (each a readable regular file no larger
 * than guest RAM) without reading them: the CLI calls it before it creates any output file.
 */
export async function checkGuestFiles(config: MachineConfig): Promise<void> {
  const sources = [...(config.image ? [[config.image, 'image'] as const] : []), ...config.modules.map((m) => [m, 'module'] as const)];
  for (const [source, kind] of sources) {
    if ('bytes' in source) {
      if (source.bytes.length > config.memorySize) throw tooLarge(`${kind} '${source.name}'`, source.bytes.length, config.memorySize);
      continue;
    }
    closeSync(openGuestFile(source.path, `${kind} '${source.path}'`, config.memorySize).fd);
  }
  // The BIOS's disks, opened as the BIOS will open them (for writing with diskWrite), then closed.
  for (const disk of config.bios?.disks ?? []) if (disk.path !== undefined) closeSync(openDiskFile(disk.path, disk.write).fd);
}

/**
 * Reads a whole regular file of at most `maxBytes`. Throws UsageError (code EIMAGE) for a file
 * that is missing, unreadable, not a regular file or too large; KvmError ERESOURCE when the
 * process is out of file descriptors or memory.
 */
export async function readGuestFile(file: string, what: string, maxBytes: number): Promise<Uint8Array> {
  const { fd, size } = openGuestFile(file, what, maxBytes);
  try {
    // Read at most the size fstat gave plus one byte, so a file that grows meanwhile is noticed, not followed.
    const bytes = Buffer.allocUnsafe(size);
    const readAt = async (into: Buffer, offset: number, length: number, position: number): Promise<number> =>
      size <= READ_CHUNK ? readSync(fd, into, offset, length, position) : (await readAsync(fd, into, offset, length, position)).bytesRead;
    let done = 0;
    for (;;) {
      const want = Math.min(READ_CHUNK, bytes.length - done);
      if (want === 0) break;
      const bytesRead = await readAt(bytes, done, want, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    if (done === bytes.length && bytes.length < maxBytes) {
      const extra = Buffer.alloc(1);
      if ((await readAt(extra, 0, 1, done)) > 0) {
        throw new UsageError(`${what} grew while it was being read: give a file that is not being written`, 'EIMAGE');
      }
    }
    return done === bytes.length ? bytes : bytes.subarray(0, done);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw fileError(what, err);
  } finally {
    closeSync(fd);
  }
}

/** Opens without blocking (a FIFO with no writer cannot hang it) and checks what the file is. */
function openGuestFile(file: string, what: string, maxBytes: number): { fd: number; size: number } {
  let fd: number;
  try {
    fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY);
  } catch (err) {
    throw fileError(what, err);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new UsageError(`${what} is a directory: give the path of a file`, 'EIMAGE');
    if (!st.isFile()) {
      const kind = st.isFIFO()
        ? 'a FIFO'
        : st.isCharacterDevice()
          ? 'a character device'
          : st.isBlockDevice()
            ? 'a block device'
            : 'a socket';
      throw new UsageError(`${what} is ${kind}, not a regular file: copy what it holds into a file and give that`, 'EIMAGE');
    }
    if (st.size > maxBytes) throw tooLarge(what, st.size, maxBytes);
    return { fd, size: st.size };
  } catch (err) {
    closeSync(fd);
    if (err instanceof UsageError) throw err;
    throw fileError(what, err);
  }
}

function tooLarge(what: string, size: number, memorySize: number): UsageError {
  return new UsageError(`${what} is ${size} bytes, larger than guest RAM (${memorySize} bytes): ${memoryAdvice(size)}`, 'EIMAGE');
}

function fileError(what: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT')
    return new UsageError(`${what} not found: check the path (build the bundled guests with \`npm run build:guests\`)`, 'EIMAGE');
  if (code === 'EACCES' || code === 'EPERM')
    return new UsageError(`${what} cannot be read (permission denied): fix its permissions`, 'EIMAGE');
  if (code === 'EISDIR') return new UsageError(`${what} is a directory: give the path of a file`, 'EIMAGE');
  if (code === 'ELOOP') return new UsageError(`${what} is a symbolic link loop: give the path of a file`, 'EIMAGE');
  if (code === 'ENOTDIR') return new UsageError(`${what} not found: a part of the path is not a directory`, 'EIMAGE');
  if (code === 'EMFILE' || code === 'ENFILE' || code === 'ENOMEM') return KvmError.resource(`reading ${what}`, code);
  return new UsageError(`${what} cannot be read: ${(err as Error).message}`, 'EIMAGE');
}
