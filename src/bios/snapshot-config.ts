/**
 * What a snapshot records of a BIOS machine besides its devices' state: the disks (how to open
 * them again, and how to tell whether they changed since), the boot order and the E820 map the
 * BIOS reports. The devices' state (trap, kept sectors, keyboard, VGA, i8042, RTC) is saved with
 * the board's; the BIOS's memory (IVT, BDA, ROM, screen) is guest RAM, saved with it.
 *
 * A disk image must be as it was when the snapshot was made: the guest has parts of it in its
 * memory (a file system's caches, a loaded program), and a restore over a changed image would
 * mix the two. `virsh save` and QEMU's migration leave that to the user (libvirt documents that
 * the disks must not change before `virsh restore`); tskvm checks, and refuses a changed image.
 * The check is cheap when nothing changed: same size and modification time. A copy (another
 * host, `cp` without `-p`) has another modification time and is then compared by SHA-256.
 */
import { createHash } from 'node:crypto';
import { fstatSync, read } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { E820Entry } from '../arch/x86/e820.js';
import { UsageError } from '../errors.js';

const readAt = promisify(read);
/** Disk images are hashed in reads of this size. */
const HASH_CHUNK = 4 * 1024 * 1024;
const MAX_DRIVE = 0xff;

/** One disk of a saved BIOS machine. */
export interface SavedDisk {
  drive: number;
  /** Writes reached the image (--disk-write). */
  writeThrough: boolean;
  /** A file: its absolute path, and its size, modification time and SHA-256 when the guest was saved. */
  file?: { path: string; size: number; mtimeMs: number; sha256: string };
  /** An image given as bytes (a boot sector IMAGE, a library disk): base64. */
  bytes?: { name: string; base64: string };
}

export interface SavedBios {
  disks: SavedDisk[];
  bootOrder: number[];
  e820: E820Entry[];
}

/** A disk as BiosHost opened it, for describing it in a snapshot. */
export interface OpenDiskSource {
  drive: number;
  writeThrough: boolean;
  /** An open file (its path as given), or the image's bytes. */
  source: { fd: number; path: string } | { name: string; bytes: Uint8Array };
}

/** SHA-256 of the whole file open at `fd`, as hex. */
export async function hashFile(fd: number, size: number): Promise<string> {
  const hash = createHash('sha256');
  const chunk = Buffer.alloc(Math.min(HASH_CHUNK, Math.max(size, 1)));
  for (let at = 0; at < size;) {
    const { bytesRead } = await readAt(fd, chunk, 0, Math.min(chunk.length, size - at), at);
    if (bytesRead === 0) break;
    hash.update(chunk.subarray(0, bytesRead));
    at += bytesRead;
  }
  return hash.digest('hex');
}

/** The snapshot's description of the disks (hashing the files: call with the guest paused). */
export async function describeBios(
  disks: readonly OpenDiskSource[],
  bootOrder: readonly number[],
  e820: readonly E820Entry[],
): Promise<SavedBios> {
  const saved: SavedDisk[] = [];
  for (const d of disks) {
    if ('fd' in d.source) {
      const st = fstatSync(d.source.fd);
      saved.push({
        drive: d.drive,
        writeThrough: d.writeThrough,
        file: { path: path.resolve(d.source.path), size: st.size, mtimeMs: st.mtimeMs, sha256: await hashFile(d.source.fd, st.size) },
      });
    } else {
      saved.push({
        drive: d.drive,
        writeThrough: false,
        bytes: { name: d.source.name, base64: Buffer.from(d.source.bytes).toString('base64') },
      });
    }
  }
  return { disks: saved, bootOrder: [...bootOrder], e820: e820.map((e) => ({ base: e.base, length: e.length, type: e.type })) };
}

/** `value` (a snapshot's machine.board.bios) checked; UsageError naming the snapshot if it is not one. */
export function parseSavedBios(value: unknown, snapshot: string): SavedBios {
  const fail = (why: string): never => {
    throw new UsageError(`snapshot ${snapshot}: it is corrupt: machine.board.bios.${why}`, 'EIMAGE');
  };
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const int = (v: unknown, what: string, max = Number.MAX_SAFE_INTEGER): number =>
    typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= max ? v : fail(`${what} is ${JSON.stringify(v)}`);
  if (!isObject(value)) return fail('is not an object');
  if (!Array.isArray(value.disks) || value.disks.length === 0) fail('disks is not a list of disks');
  const disks = (value.disks as unknown[]).map((d, i): SavedDisk => {
    if (!isObject(d)) return fail(`disks[${i}] is not an object`);
    const drive = int(d.drive, `disks[${i}].drive`, MAX_DRIVE);
    if (typeof d.writeThrough !== 'boolean') fail(`disks[${i}].writeThrough is not a boolean`);
    const writeThrough = d.writeThrough as boolean;
    if (isObject(d.file)) {
      const f = d.file;
      if (typeof f.path !== 'string' || !path.isAbsolute(f.path)) fail(`disks[${i}].file.path is not an absolute path`);
      if (typeof f.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(f.sha256)) fail(`disks[${i}].file.sha256 is not a SHA-256`);
      if (typeof f.mtimeMs !== 'number' || !Number.isFinite(f.mtimeMs)) fail(`disks[${i}].file.mtimeMs is not a time`);
      const file = {
        path: f.path as string,
        size: int(f.size, `disks[${i}].file.size`),
        mtimeMs: f.mtimeMs as number,
        sha256: f.sha256 as string,
      };
      return { drive, writeThrough, file };
    }
    if (isObject(d.bytes) && typeof d.bytes.name === 'string' && typeof d.bytes.base64 === 'string')
      return { drive, writeThrough: false, bytes: { name: d.bytes.name, base64: d.bytes.base64 } };
    return fail(`disks[${i}] has neither a file nor bytes`);
  });
  if (!Array.isArray(value.bootOrder)) fail('bootOrder is not a list');
  const bootOrder = (value.bootOrder as unknown[]).map((v, i) => int(v, `bootOrder[${i}]`, MAX_DRIVE));
  if (!Array.isArray(value.e820)) fail('e820 is not a list');
  const e820 = (value.e820 as unknown[]).map((e, i): E820Entry => {
    if (!isObject(e)) return fail(`e820[${i}] is not an object`);
    return { base: int(e.base, `e820[${i}].base`), length: int(e.length, `e820[${i}].length`), type: int(e.type, `e820[${i}].type`) };
  });
  return { disks, bootOrder, e820 };
}

/**
 * Whether the file open at `fd` is the image `saved` describes: the same size, and the same
 * modification time or else the same SHA-256. Throws UsageError (EIMAGE) naming the disk when not.
 */
export async function checkSavedDisk(fd: number, saved: NonNullable<SavedDisk['file']>, drive: number, snapshot: string): Promise<void> {
  const st = fstatSync(fd);
  const what = `disk '${saved.path}' (drive ${drive.toString(16).padStart(2, '0')}h)`;
  const refuse = (how: string): never => {
    throw new UsageError(
      `snapshot ${snapshot} cannot be restored: ${what} ${how} since the guest was saved, and the guest holds parts of it in memory: ` +
        'put back the image it was saved with, or boot the guest afresh',
      'EIMAGE',
    );
  };
  if (st.size !== saved.size) refuse(`changed size (${saved.size} bytes then, ${st.size} now)`);
  if (st.mtimeMs === saved.mtimeMs) return;
  if ((await hashFile(fd, st.size)) !== saved.sha256) refuse('changed (its SHA-256 differs)');
}
