/**
 * The run options snapshots add (`restore`, `save`), validated like every other run option
 * (machine/options.ts calls these): before anything is opened, with a UsageError naming the
 * option and the fix.
 */
import { UsageError } from '../errors.js';

export interface SnapshotRunOptions {
  /**
   * Restore a snapshot instead of booting an image: the machine (RAM, vCPUs, devices, a BIOS
   * guest's disks) and the guest come from the file; the serial endpoints, timeout and tracing
   * are this run's, and so are a BIOS guest's console, screen and keys (`bios.onConsole`,
   * `bios.onScreen`, `bios.keys`). A path, or `{ path, verifyMemory }` (check the saved pages'
   * CRC-32s first; default true).
   */
  restore?: string | { path: string; verifyMemory?: boolean };
  /**
   * Save a snapshot when the guest gets somewhere: its COM1 output matches `onSerial`, or it
   * writes `onDebugExit` to the debug-exit port (that write then does not end the run), or when
   * `request` fires (the CLI's Ctrl-A s), whichever comes first. The run then ends with reason
   * 'saved' (`then: 'end'`, the default) or goes on (`'resume'`).
   */
  save?: SaveOptions;
}

export interface SaveOptions {
  path: string;
  onSerial?: string | RegExp;
  onDebugExit?: number;
  /** Save when this signal is aborted (a one-shot trigger the caller fires: the CLI's Ctrl-A s). */
  request?: AbortSignal;
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
  request: AbortSignal | undefined;
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
  'memPrealloc',
  'gdb',
] as const;

const U32_MAX = 0xffffffff;
/** BIOS options that describe the machine (a restore takes them from the snapshot); the rest are this run's endpoints. */
const BIOS_MACHINE_OPTIONS = ['disks', 'diskWrite', 'boot'] as const;

export function validateRestoreOption(options: Record<string, unknown>): RestoreConfig | undefined {
  const value = options.restore;
  if (value === undefined) return undefined;
  const given: string[] = RESTORE_EXCLUDES.filter((name) => options[name] !== undefined);
  const bios = options.bios;
  if (typeof bios === 'object' && bios !== null) {
    const b = bios as Record<string, unknown>;
    const machine = BIOS_MACHINE_OPTIONS.filter((name) =>
      name === 'disks' ? Array.isArray(b.disks) && b.disks.length > 0 : name === 'diskWrite' ? b.diskWrite === true : b[name] !== undefined,
    );
    given.push(...machine.map((name) => `bios.${name}`));
  }
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
    throw new UsageError('invalid options.save: give { path, onSerial?, onDebugExit?, request?, then? }');
  const { path, onSerial, onDebugExit, request, then } = value as Record<string, unknown>;
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
  if (request !== undefined && !(request instanceof AbortSignal))
    throw new UsageError('invalid options.save.request: give an AbortSignal (abort it to save)');
  if (onSerial === undefined && onDebugExit === undefined && request === undefined) {
    throw new UsageError('options.save needs onSerial, onDebugExit or request: when to save (or call run.snapshot() yourself)');
  }
  if (then !== undefined && then !== 'end' && then !== 'resume')
    throw new UsageError("invalid options.save.then: give 'end' (the default) or 'resume'");
  return {
    path,
    onSerial: onSerial as string | RegExp | undefined,
    onDebugExit: onDebugExit as number | undefined,
    request: request as AbortSignal | undefined,
    then: then ?? 'end',
  };
}
