/**
 * The `tskvm run` options of snapshots — `--save FILE --save-on PATTERN` (save when COM1's output
 * shows PATTERN, then end the run: reason `saved`, exit 0; on a terminal Ctrl-A s saves too, and
 * `--save FILE` alone waits for it) and `--restore FILE` (the machine and the guest come from
 * FILE; output and input are this run's) — and how they become the library's `save` and
 * `restore` options.
 */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import type { RunGuestOptions } from '../machine/options.js';
import type { RunResult } from '../machine/result.js';
import { RESTORE_EXCLUDES } from '../snapshot/options.js';

export interface SnapshotCliOptions {
  save?: string;
  saveOn?: string;
  restore?: string;
  /** Ctrl-A s (terminalSave's signal): saves without --save-on. */
  saveRequest?: AbortSignal;
}

export const SNAPSHOT_HELP = `
Snapshots: --save FILE --save-on PATTERN saves the whole guest (vCPUs, interrupt controllers,
timer, devices, the memory it touched) to FILE once PATTERN appears in its COM1 output, and ends
the run (exit 0); on a terminal, Ctrl-A s saves it to FILE at once, with or without --save-on.
--restore FILE brings it back, here or on another host with the same CPU, and it goes on from
where it was saved, its serial ports (and a BIOS guest's console) on this run's stdin/stdout.
A BIOS guest's disk images must be as they were when it was saved.

  tskvm run --save boot.snap --save-on 'login: ' kernel.elf
  tskvm run --save here.snap basic.img              then Ctrl-A s when it gets somewhere
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
  ['diskWrite', '--disk-write'],
  ['boot', '--boot'],
  ['bios', '--no-bios'],
];

export function addSnapshotOptions(command: Command): Command {
  return command
    .option('--save <file>', 'save the guest to FILE (at --save-on, or Ctrl-A s on a terminal), then end the run (exit 0)')
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
  checkSnapshotFlags(command, image, opts, opts.saveRequest !== undefined);
  const request = opts.saveRequest;
  const save = opts.save === undefined ? {} : { save: { path: opts.save, onSerial: opts.saveOn, ...(request ? { request } : {}) } };
  if (opts.restore === undefined) return { ...options, ...save };
  const restored: Record<string, unknown> = { ...options, ...save, restore: opts.restore };
  for (const key of RESTORE_EXCLUDES) delete restored[key]; // the library refuses these with a restore
  return restored as RunGuestOptions;
}

/**
 * Refuses snapshot flags that do not go together (call before the terminal goes raw).
 * `interactive`: stdin is a terminal, where Ctrl-A s saves, so --save needs no --save-on.
 */
export function checkSnapshotFlags(command: Command, image: string | undefined, opts: SnapshotCliOptions, interactive: boolean): void {
  if (opts.saveOn !== undefined && opts.save === undefined)
    throw new UsageError('--save-on needs --save FILE: where to write the snapshot');
  if (opts.save !== undefined && opts.saveOn === undefined && !interactive) {
    throw new UsageError(
      '--save needs --save-on PATTERN: when to save the guest (on a terminal, Ctrl-A s saves it without one; stdin is not a terminal here)',
    );
  }
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

/** Ctrl-A s on a terminal: the save request the run listens to (`signal`), and what the key does. */
export interface TerminalSave {
  /** Given to options.save.request (undefined when stdin is not a terminal). */
  readonly signal: AbortSignal | undefined;
  /** Ctrl-A s was typed. */
  request(): void;
}

/**
 * Ctrl-A s for a run with `--save FILE` (or without: then the key only says why nothing was
 * saved). `interactive`: stdin is the terminal the keys come from. `say` writes to stderr (the
 * terminal is in raw mode: lines end CR LF).
 */
export function terminalSave(save: string | undefined, interactive: boolean, say: (text: string) => void): TerminalSave {
  if (!interactive) return { signal: undefined, request: () => {} };
  const controller = new AbortController();
  return {
    signal: save === undefined ? undefined : controller.signal,
    request() {
      if (save === undefined) say('tskvm: Ctrl-A s: nothing saved: give --save FILE to save the guest with Ctrl-A s\r\n');
      else if (!controller.signal.aborted) controller.abort();
    },
  };
}

/** What the CLI says on stderr when --save wrote its snapshot. */
export function savedMessage(result: RunResult): string | undefined {
  const saved = result.saved;
  if (!saved) return undefined;
  return `tskvm: saved the guest to ${saved.path} (${saved.pages} pages, ${saved.bytes} bytes, ${saved.durationMs.toFixed(1)} ms)\n`;
}
