/**
 * The `tskvm run` options of snapshots — `--save FILE --save-on PATTERN` (save when COM1's output
 * shows PATTERN, then end the run: reason `saved`, exit 0) and `--restore FILE` (the machine and
 * the guest come from FILE; output and input are this run's) — and how they become the library's
 * `save` and `restore` options.
 */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import type { RunGuestOptions } from '../machine/options.js';
import type { RunResult } from '../machine/result.js';
import { RESTORE_EXCLUDES } from '../snapshot/options.js';
import type { BiosCliRun } from './bios-options.js';

export interface SnapshotCliOptions {
  save?: string;
  saveOn?: string;
  restore?: string;
}

export const SNAPSHOT_HELP = `
Snapshots: --save FILE --save-on PATTERN saves the whole guest (vCPUs, interrupt controllers,
timer, devices, the memory it touched) to FILE once PATTERN appears in its COM1 output, and ends
the run (exit 0); --restore FILE brings it back, here or on another host with the same CPU, and it
goes on from where it was saved, its serial ports on this run's stdin/stdout.

  tskvm run --save boot.snap --save-on 'login: ' kernel.elf
  tskvm run --restore boot.snap
`;

/** The command-line flags a restore takes from the snapshot instead, and the option names they set. */
const MACHINE_FLAGS: readonly [string, string][] = [
  ['memory', '--memory'],
  ['cpus', '--cpus'],
  ['format', '--format'],
  ['append', '--append'],
  ['initrd', '--initrd'],
  ['longMode', '--long-mode'],
  ['memPrealloc', '--mem-prealloc'],
  ['gdb', '--gdb'],
  ['disk', '--disk'],
  ['boot', '--boot'],
  ['bios', '--no-bios'],
];

export function addSnapshotOptions(command: Command): Command {
  return command
    .option('--save <file>', 'with --save-on: save the guest to FILE when it gets there, then end the run (exit 0)')
    .option('--save-on <pattern>', "save once PATTERN appears in the guest's COM1 output")
    .option('--restore <file>', 'restore the guest saved in FILE instead of booting an IMAGE');
}

/**
 * Turns the run's library options into a save or restore run. For a restore, flags that would
 * describe another machine are refused (the snapshot has its own), IMAGE must be absent, and the
 * defaults the command line filled in for them are dropped.
 */
export function snapshotRunOptions(
  command: Command,
  image: string | undefined,
  opts: SnapshotCliOptions,
  options: RunGuestOptions,
): RunGuestOptions {
  checkSnapshotFlags(command, image, opts);
  const save = opts.save === undefined ? {} : { save: { path: opts.save, onSerial: opts.saveOn } };
  if (opts.restore === undefined) return { ...options, ...save };
  const restored: Record<string, unknown> = { ...options, ...save, restore: opts.restore };
  for (const key of RESTORE_EXCLUDES) delete restored[key]; // the library refuses these with a restore
  return restored as RunGuestOptions;
}

/** Refuses snapshot flags that do not go together (call before the terminal goes raw). */
export function checkSnapshotFlags(command: Command, image: string | undefined, opts: SnapshotCliOptions): void {
  if (opts.saveOn !== undefined && opts.save === undefined)
    throw new UsageError('--save-on needs --save FILE: where to write the snapshot');
  if (opts.save !== undefined && opts.saveOn === undefined) throw new UsageError('--save needs --save-on PATTERN: when to save the guest');
  if (opts.save !== undefined && opts.restore !== undefined && opts.save === opts.restore) {
    throw new UsageError(
      `--save and --restore name the same file '${opts.save}': save to another file (the restored guest's memory is mapped from this one)`,
    );
  }
  if (opts.restore === undefined) return;
  if (image !== undefined) throw new UsageError(`--restore brings back a saved guest: drop IMAGE '${image}' (the snapshot has its own)`);
  const given = MACHINE_FLAGS.filter(([key]) => command.getOptionValueSource(key) === 'cli').map(([, flag]) => flag);
  if (given.length > 0) throw new UsageError(`--restore cannot be combined with ${given.join(', ')}: the machine comes from the snapshot`);
}

/** A restore boots nothing through the BIOS: the BIOS flags' run, with nothing to do. */
export const RESTORE_BIOS_RUN: BiosCliRun = { bios: false, close: () => {}, finish: async () => {} };

/** What the CLI says on stderr when --save wrote its snapshot. */
export function savedMessage(result: RunResult): string | undefined {
  const saved = result.saved;
  if (!saved) return undefined;
  return `tskvm: saved the guest to ${saved.path} (${saved.pages} pages, ${saved.bytes} bytes, ${saved.durationMs.toFixed(1)} ms)\n`;
}
