/**
 * Writing and reading snapshot files. Writes are atomic: everything goes to a temporary file in
 * the same directory, which is fsynced and then renamed over the target (and the directory
 * fsynced), so a crash or a full disk leaves either the old file or the new one, never half of
 * one — and a guest restored from the old file keeps its mapping of the old inode. Memory is
 * streamed from guest RAM to the file in large writes, never copied whole. Reading checks
 * everything a corrupt or foreign file could get wrong before anything is used.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { UsageError } from '../errors.js';
import {
  CRC_PLACEHOLDER,
  MEMORY_ALIGN,
  PREAMBLE_SIZE,
  SECTION_ALIGN,
  SNAPSHOT_FORMAT_VERSION,
  SnapshotFormatError,
  alignUp,
  crcHex,
  decodeHeader,
  decodePreamble,
  encodePreamble,
  hex32,
  type MemoryRunEntry,
  type SectionEntry,
  type SnapshotHeader,
} from './format.js';
import type { MemoryRange } from './memory.js';

/** What goes into a snapshot file; the writer lays it out and adds the offsets and checksums. */
export interface SnapshotContent {
  header: Omit<SnapshotHeader, 'format' | 'sections' | 'memory'>;
  sections: readonly { name: string; bytes: Uint8Array }[];
  memory: { ram: Uint8Array; runs: readonly MemoryRange[]; detection: string };
}

/** Guest memory goes to the file in writes of at most this much. */
const WRITE_CHUNK = 8 * 1024 * 1024;
/**
 * After this much more memory is written, an fdatasync starts in the background (one at a time):
 * the disk writes what the page cache has while the next chunks are copied in, instead of all of
 * it at the final fsync (the kernel's own writeback would start only at dirty_background_ratio,
 * gigabytes on most hosts).
 */
const WRITEBACK_EVERY = 32 * 1024 * 1024;
/** Snapshot files hold guest memory, which may hold secrets: readable by their owner only. */
const SNAPSHOT_FILE_MODE = 0o600;
const HEADER_PAD = 0x20; // JSON allows trailing spaces

/** Writes `content` to `file` atomically. Returns the file's size. */
export async function writeSnapshotFile(file: string, content: SnapshotContent): Promise<number> {
  const target = path.resolve(file);
  const dir = path.dirname(target);
  const temp = path.join(dir, `.${path.basename(target)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  const sections = content.sections.map((s) => ({ ...s, crc32: crcHex(s.bytes) }));
  const layout = layOut(content, sections);
  let handle;
  try {
    handle = await open(temp, 'wx', SNAPSHOT_FILE_MODE);
  } catch (err) {
    throw new UsageError(`cannot write snapshot ${file}: ${(err as Error).message}`, 'EOUTPUT', { cause: err });
  }
  const writeback = new Writeback(handle);
  try {
    for (const [i, s] of sections.entries()) await writeAll(handle, s.bytes, layout.header.sections[i]!.offset);
    for (const run of layout.header.memory.runs) {
      let crc = 0;
      for (let done = 0; done < run.length; done += WRITE_CHUNK) {
        const chunk = content.memory.ram.subarray(run.gpa + done, run.gpa + Math.min(run.length, done + WRITE_CHUNK));
        // The write runs on libuv's thread pool while this thread checksums the same bytes.
        const writing = writeAll(handle, chunk, run.offset + done);
        crc = crc32(chunk, crc);
        await writing;
        writeback.wrote(chunk.length);
      }
      run.crc32 = hex32(crc);
    }
    await writeback.settled();
    const headerBytes = encodeHeader(layout.header, layout.headerLength);
    await writeAll(handle, headerBytes, PREAMBLE_SIZE);
    await writeAll(handle, encodePreamble(headerBytes, layout.fileLength), 0);
    await handle.truncate(layout.fileLength);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, target);
    await syncDirectory(dir);
  } catch (err) {
    await writeback.settled().catch(() => {});
    await handle?.close().catch(() => {});
    await unlink(temp).catch(() => {});
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot write snapshot ${file}: ${(err as Error).message}`, 'EOUTPUT', { cause: err });
  }
  return layout.fileLength;
}

/** Background fdatasyncs while a file is written (see WRITEBACK_EVERY); their errors surface at settled(). */
class Writeback {
  private since = 0;
  private running: Promise<void> | undefined;
  private failure: unknown;

  constructor(private readonly handle: FileHandle) {}

  wrote(bytes: number): void {
    this.since += bytes;
    if (this.since < WRITEBACK_EVERY || this.running) return;
    this.since = 0;
    this.running = this.handle.datasync().then(
      () => void (this.running = undefined),
      (err: unknown) => {
        this.failure ??= err;
        this.running = undefined;
      },
    );
  }

  /** Waits for the one in flight; throws what any of them failed with. */
  async settled(): Promise<void> {
    await this.running;
    if (this.failure !== undefined) throw this.failure;
  }
}

interface Layout {
  header: SnapshotHeader;
  headerLength: number;
  fileLength: number;
}

/**
 * Where everything goes. The offsets are written in the header, whose length depends on them:
 * lay out with a guess at the header's length and grow the guess until it holds (a few rounds).
 */
function layOut(content: SnapshotContent, sections: readonly { name: string; bytes: Uint8Array; crc32: string }[]): Layout {
  let headerLength = 0;
  for (;;) {
    let at = alignUp(PREAMBLE_SIZE + headerLength, SECTION_ALIGN);
    const sectionEntries: SectionEntry[] = sections.map((s) => {
      const entry = { name: s.name, offset: at, length: s.bytes.length, crc32: s.crc32 };
      at = alignUp(at + s.bytes.length, SECTION_ALIGN);
      return entry;
    });
    at = alignUp(at, MEMORY_ALIGN);
    const runs: MemoryRunEntry[] = content.memory.runs.map((r) => {
      const entry = { gpa: r.gpa, length: r.length, offset: at, crc32: CRC_PLACEHOLDER };
      at += r.length;
      return entry;
    });
    const fileLength =
      runs.length > 0 ? at : (sectionEntries.at(-1)?.offset ?? PREAMBLE_SIZE + headerLength) + (sectionEntries.at(-1)?.length ?? 0);
    const header: SnapshotHeader = {
      format: SNAPSHOT_FORMAT_VERSION,
      ...content.header,
      sections: sectionEntries,
      memory: { size: content.memory.ram.length, pageSize: MEMORY_ALIGN, detection: content.memory.detection, runs },
    };
    const needed = new TextEncoder().encode(JSON.stringify(header)).length;
    if (needed <= headerLength) return { header, headerLength, fileLength };
    headerLength = needed;
  }
}

/** The header as UTF-8 JSON, padded with spaces to `length` (the checksums do not change its length). */
function encodeHeader(header: SnapshotHeader, length: number): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  if (json.length > length) throw new Error(`snapshot header grew from ${length} to ${json.length} bytes`);
  const out = new Uint8Array(length).fill(HEADER_PAD);
  out.set(json);
  return out;
}

async function writeAll(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.length;) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

/** The rename is durable only once the directory entry is on disk. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A snapshot file opened and checked: its header, its state sections, and its fd for mapping memory. */
export interface SnapshotFile {
  readonly path: string;
  readonly header: SnapshotHeader;
  /** Open read-only until close(): restore maps memory from it. */
  readonly fd: number;
  /** A section's bytes (checked against its CRC-32 when the file was opened); throws if absent. */
  section(name: string): Uint8Array;
  has(name: string): boolean;
  close(): void;
}

/**
 * Opens a snapshot and checks it: magic, format version, length, header CRC and shape, the
 * tskvm version that wrote it, and every section's CRC (memory runs are checked once mapped, see
 * verifyMemory). Throws UsageError (code EIMAGE: the snapshot stands in for the guest image) naming the file and what is wrong with it.
 */
export function openSnapshotFile(file: string, tskvmVersion: string): SnapshotFile {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new UsageError(`cannot read snapshot ${file}: ${why}`, 'EIMAGE', { cause: err });
  }
  try {
    const size = fstatSync(fd).size;
    const preamble = decodePreamble(readAt(fd, 0, Math.min(PREAMBLE_SIZE, size)), size);
    const header = decodeHeader(readAt(fd, PREAMBLE_SIZE, preamble.headerLength), preamble);
    if (header.tskvm !== tskvmVersion) {
      throw new SnapshotFormatError(
        `it was made by tskvm ${header.tskvm}; this is tskvm ${tskvmVersion}, and a snapshot is restored only by the version that made it`,
      );
    }
    // The sections lie together after the header: one read for all of them.
    const sections = new Map<string, Uint8Array>();
    const start = Math.min(...header.sections.map((s) => s.offset));
    const end = Math.max(...header.sections.map((s) => s.offset + s.length));
    const state = header.sections.length > 0 ? readAt(fd, start, end - start) : new Uint8Array(0);
    for (const s of header.sections) {
      const bytes = state.subarray(s.offset - start, s.offset - start + s.length);
      if (crcHex(bytes) !== s.crc32) throw new SnapshotFormatError(`it is corrupt: section "${s.name}" fails its CRC-32 check`);
      sections.set(s.name, bytes);
    }
    let open = true;
    return {
      path: file,
      header,
      fd,
      section(name) {
        const bytes = sections.get(name);
        if (!bytes) throw new UsageError(`snapshot ${file} is corrupt: it has no "${name}" section`, 'EIMAGE');
        return bytes;
      },
      has: (name) => sections.has(name),
      close() {
        if (!open) return;
        open = false;
        closeSync(fd);
      },
    };
  } catch (err) {
    closeSync(fd);
    if (err instanceof SnapshotFormatError) throw snapshotError(file, err);
    throw err;
  }
}

/** Checks each memory run of `header` against guest RAM it was mapped into. */
export function verifyMemory(file: string, header: SnapshotHeader, ram: Uint8Array): void {
  header.memory.runs.forEach((run, i) => {
    if (crcHex(ram.subarray(run.gpa, run.gpa + run.length)) !== run.crc32) {
      throw snapshotError(
        file,
        new SnapshotFormatError(
          `it is corrupt: memory run ${i} (guest-physical 0x${run.gpa.toString(16)}, ${run.length} bytes) fails its CRC-32 check`,
        ),
      );
    }
  });
}

export function snapshotError(file: string, err: SnapshotFormatError): UsageError {
  return new UsageError(`snapshot ${file}: ${err.message}`, 'EIMAGE', { cause: err });
}

function readAt(fd: number, position: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let done = 0; done < length;) {
    const n = readSync(fd, out, done, length - done, position + done);
    if (n === 0) throw new SnapshotFormatError(`it is truncated: nothing to read at offset ${position + done}`);
    done += n;
  }
  return out;
}
