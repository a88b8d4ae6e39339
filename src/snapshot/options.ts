/**
 * The run options snapshots add (`restore`, `save`), validated like every other run option
 * (machine/options.ts calls these): before anything is opened, with a UsageError naming the
 * option and the fix.
 */
import { UsageError } from '../errors.js';

export interface SnapshotRunOptions {
  /**
   * Restore a snapshot instead of booting an image: the machine (RAM, vCPUs, devices) and the
   * guest come from the file; the serial endpoints, timeout and tracing are this run's. A path,
   * or `{ path, verifyMemory }` (check the saved pages' CRC-32s first; default true).
   */
  restore?: string | { path: string; verifyMemory?: boolean };
  /**
   * Save a snapshot when the guest gets somewhere: its COM1 output matches `onSerial`, or it
   * writes `onDebugExit` to the debug-exit port (that write then does not end the run). The run
   * then ends with reason 'saved' (`then: 'end'`, the default) or goes on (`'resume'`).
   */
  save?: SaveOptions;
}

export interface SaveOptions {
  path: string;
  onSerial?: string | RegExp;
  onDebugExit?: number;
  then?: 'end' | 'resume';
}

export interface RestoreConfig {
  path: string;
  verifyMemory: boolean;
}

export interface SaveConfig {
  path: string;
  onSerial: string | RegExp | undefined;
  onDebugExit: number | undefined;
  then: 'end' | 'resume';
}

/**
 * Options that describe the machine or the image: with `restore` they come from the snapshot,
 * so giving them too is a mistake (the guest already knows its RAM size and CPUs).
 */
export const RESTORE_EXCLUDES = [
  'image',
  'memory',
  'cpus',
  'format',
  'cmdline',
  'modules',
  'longMode',
  'irqchip',
  'bios',
  'memPrealloc',
  'gdb',
] as const;

const U32_MAX = 0xffffffff;

export function validateRestoreOption(options: Record<string, unknown>): RestoreConfig | undefined {
  const value = options.restore;
  if (value === undefined) return undefined;
  const given = RESTORE_EXCLUDES.filter((name) => options[name] !== undefined);
  if (given.length > 0) {
    throw new UsageError(
      `options.restore cannot be combined with ${given.map((n) => `options.${n}`).join(', ')}: the machine and the guest come from the snapshot`,
    );
  }
  if (typeof value === 'string' && value !== '') return { path: value, verifyMemory: true };
  if (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { path?: unknown }).path === 'string' &&
    (value as { path: string }).path !== ''
  ) {
    const verify = (value as { verifyMemory?: unknown }).verifyMemory;
    if (verify !== undefined && typeof verify !== 'boolean')
      throw new UsageError('invalid options.restore.verifyMemory: give true or false');
    return { path: (value as { path: string }).path, verifyMemory: verify ?? true };
  }
  throw new UsageError("invalid options.restore: give the snapshot file's path, or { path, verifyMemory? }", 'EIMAGE');
}

export function validateSaveOption(value: unknown): SaveConfig | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null)
    throw new UsageError('invalid options.save: give { path, onSerial?, onDebugExit?, then? }');
  const { path, onSerial, onDebugExit, then } = value as Record<string, unknown>;
  if (typeof path !== 'string' || path === '') throw new UsageError('invalid options.save.path: give the file to write the snapshot to');
  if (onSerial !== undefined && !(typeof onSerial === 'string' && onSerial !== '') && !(onSerial instanceof RegExp)) {
    throw new UsageError("invalid options.save.onSerial: give the text (or a RegExp) to wait for in the guest's COM1 output");
  }
  if (
    onDebugExit !== undefined &&
    !(typeof onDebugExit === 'number' && Number.isInteger(onDebugExit) && onDebugExit >= 0 && onDebugExit <= U32_MAX)
  ) {
    throw new UsageError(
      'invalid options.save.onDebugExit: give the value (0 to 0xffffffff) the guest writes to port 0xf4 to ask for the snapshot',
    );
  }
  if (onSerial === undefined && onDebugExit === undefined) {
    throw new UsageError('options.save needs onSerial or onDebugExit: when to save (or call run.snapshot() yourself)');
  }
  if (then !== undefined && then !== 'end' && then !== 'resume')
    throw new UsageError("invalid options.save.then: give 'end' (the default) or 'resume'");
  return { path, onSerial: onSerial as string | RegExp | undefined, onDebugExit: onDebugExit as number | undefined, then: then ?? 'end' };
}
