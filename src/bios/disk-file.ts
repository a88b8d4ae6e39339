/**
 * A disk image file opened as tskvm's BIOS uses it, and the checks that come with it. Apart from
 * the BIOS host so that the CLI's up-front checks (machine/guest-files.ts) need nothing else of
 * the BIOS.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync } from 'node:fs';
import { UsageError } from '../errors.js';

/**
 * open(2) flags for a disk image. O_NONBLOCK: a FIFO with no writer must be refused (it is not a
 * regular file), not block the main thread, where no signal handler could run; for the regular
 * files disks are, it changes nothing. O_NOCTTY: a terminal given as a disk never becomes ours.
 */
export function diskOpenFlags(write: boolean): number {
  return (write ? fsConstants.O_RDWR : fsConstants.O_RDONLY) | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY;
}

/**
 * Opens a disk image file as the BIOS will use it (for writing with `write`): a non-empty regular
 * file, or a UsageError (EIMAGE) naming the problem. The CLI checks disks with it (then closes
 * them) before it creates any output file.
 */
export function openDiskFile(path: string, write: boolean): { fd: number; size: number } {
  let fd: number;
  try {
    fd = openSync(path, diskOpenFlags(write));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'not found: check the path'
        : code === 'EACCES' || code === 'EPERM'
          ? `cannot be opened${write ? ' for writing' : ''} (permission denied): fix its permissions`
          : code === 'EISDIR'
            ? 'is a directory: give a disk image file'
            : (err as Error).message;
    throw new UsageError(`disk '${path}' ${why}`, 'EIMAGE');
  }
  const st = fstatSync(fd);
  if (!st.isFile() || st.size === 0) {
    closeSync(fd);
    throw new UsageError(`disk '${path}' is ${st.isFile() ? 'empty' : 'not a regular file'}: give a disk image file`, 'EIMAGE');
  }
  return { fd, size: st.size };
}
