/**
 * The `tskvm run` options of tskvm's BIOS — disks, boot drive, keyboard input, screenshots and
 * the terminal display — and how they become the library's `bios` option, plus what the CLI does
 * with a BIOS run's result (screenshots, the display handed back, the per-service call counts).
 */
import { accessSync, constants as fsConstants, createReadStream } from 'node:fs';
import { Option, type Command } from 'commander';
import { TerminalDisplay, type DisplayMode } from '../bios/display.js';
import { parseBootDrive, type BiosOptions } from '../bios/options.js';
import { cp437ToUtf8, screenAnsi, screenText } from '../bios/screen.js';
import { UsageError } from '../errors.js';
import type { RunResult } from '../machine/result.js';
import { FdWriter } from './output.js';
import { stderr } from './stdio.js';

export interface BiosCliOptions {
  disk: string[];
  diskWrite?: boolean;
  boot?: string;
  /** false with --no-bios. */
  bios: boolean;
  screenshot?: string;
  screenshotAnsi?: string;
  display?: 'text' | 'none';
  keys?: string;
}

export const BIOS_HELP = `
BIOS boot: a boot sector IMAGE, or --disk FILE without an IMAGE, boots through tskvm's BIOS
(INT 10h/13h/14h/15h/16h/1Ah, VGA text at 0xB8000, a keyboard on the i8042). Disks of a standard
floppy size (160K-2.88M) are floppies 0x00/0x01, others hard disks 0x80...; the first boots
unless --boot says otherwise. Console input (stdin or --serial-input) is typed on the keyboard
unless the guest reads COM1. --no-bios starts a boot sector bare, as kvmtool does.

  tskvm run basic.img                               a boot-sector BASIC on this terminal
  printf 'print 6*7\\r' | tskvm run --timeout 2s --screenshot s.txt basic.img
  tskvm run --disk floppy.img --disk hd.img --boot c
`;

export function addBiosOptions(command: Command): Command {
  return command
    .option('--disk <file>', 'a disk image for the BIOS (repeatable): floppy sizes are drive 0x00, others 0x80', collect, [])
    .option('--disk-write', 'let the guest write the disk files (by default writes stay in memory)')
    .option('--boot <drive>', 'boot drive: a (first floppy), c (first hard disk) or a drive number (default: the first disk)')
    .option('--no-bios', 'start a boot sector without the BIOS (CS:IP=0000:7C00, DL=0x80), as before tskvm had one')
    .option('--screenshot <file>', 'at the end, write the text screen to FILE (one line per row)')
    .option('--screenshot-ansi <file>', 'at the end, write the text screen with ANSI colours to FILE')
    .addOption(
      new Option('--display <mode>', 'draw the screen on the terminal (default: when stdout is one and the guest uses the screen)').choices(
        ['text', 'none'],
      ),
    )
    .option('--keys <file>', 'type FILE on the keyboard (COM1 then keeps stdin)');
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export interface BiosCliRun {
  /** The library's `bios` option. */
  bios: BiosOptions | false;
  /** Gives the terminal back if the display took it (call on every path). */
  close(): void;
  /**
   * Creates the screenshot files through `open` (the run's own, called once every check has
   * passed, as for the other outputs); the run reports the writers' errors. Absent: no files.
   */
  openOutputs?(open: (path: string, what: string) => number): FdWriter[];
  /** After the run: screenshots and BIOS call counts (with --stats). */
  finish(result: RunResult, stats: boolean): Promise<void>;
}

/**
 * The `bios` option from the flags. `writeStdout` takes teletype text and the display's drawing
 * (its promise, if any, settles once written: writes are queued so they land in order);
 * `stdoutIsTerminal` picks the display's default.
 */
export function biosCliRun(
  image: string | undefined,
  opts: BiosCliOptions,
  io: { writeStdout: (text: string) => void | Promise<void>; stdoutIsTerminal: boolean },
): BiosCliRun {
  if (image === undefined && opts.disk.length === 0) {
    throw new UsageError("missing required argument 'image': give the guest to run (or --disk FILE to boot a disk through the BIOS)");
  }
  if (!opts.bios) {
    const biosOnly = opts.disk.length > 0 || opts.boot !== undefined || opts.keys !== undefined || opts.diskWrite;
    if (biosOnly || opts.screenshot !== undefined || opts.screenshotAnsi !== undefined) {
      throw new UsageError(
        '--no-bios starts a boot sector bare: --disk, --disk-write, --boot, --keys and --screenshot need the BIOS (drop --no-bios)',
      );
    }
    return { bios: false, close: () => {}, finish: async () => {} };
  }
  if (opts.diskWrite && opts.disk.length === 0) throw new UsageError('--disk-write needs a --disk FILE to write');
  if (opts.keys !== undefined) {
    try {
      accessSync(opts.keys, fsConstants.R_OK);
    } catch {
      throw new UsageError(`--keys file '${opts.keys}' cannot be read: check the path`, 'EIMAGE');
    }
  }
  const mode: DisplayMode = opts.display ?? (io.stdoutIsTerminal ? 'auto' : 'none');
  // One queue for teletype text and the display: asynchronous writes must not overtake each other.
  let queue: Promise<void> = Promise.resolve();
  const write = (text: string): Promise<void> => (queue = queue.then(() => io.writeStdout(text)));
  const display = new TerminalDisplay((text) => void write(text), mode);
  const bios: BiosOptions = {
    disks: opts.disk,
    diskWrite: opts.diskWrite ?? false,
    ...(opts.boot !== undefined ? { boot: parseBootDrive(opts.boot, '--boot') } : {}),
    ...(opts.keys !== undefined ? { keys: createReadStream(opts.keys) } : {}),
    onConsole: (chunk) => (display.active ? undefined : write(cp437ToUtf8(chunk))),
    ...(mode !== 'none' ? { onScreen: (screen, activity) => display.offer(screen, activity) } : {}),
  };
  const shots: { writer: FdWriter; render: typeof screenText }[] = [];
  return {
    bios,
    close: () => display.close(),
    openOutputs(open) {
      const wanted: [string | undefined, typeof screenText][] = [
        [opts.screenshot, screenText],
        [opts.screenshotAnsi, screenAnsi],
      ];
      for (const [path, render] of wanted) {
        if (path === undefined) continue;
        const what = `screenshot '${path}'`;
        shots.push({ writer: new FdWriter(open(path, what), what), render });
      }
      return shots.map((shot) => shot.writer);
    },
    async finish(result, stats) {
      await queue;
      const screen = result.bios?.screen;
      if (screen) for (const { writer, render } of shots) await writer.write(Buffer.from(render(screen)));
      if (stats && result.bios) stderr().write(formatBiosCalls(result.bios.calls));
    },
  };
}

/** --stats: BIOS calls by service, most first. */
export function formatBiosCalls(calls: Record<string, number>): string {
  const rows = Object.entries(calls).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (rows.length === 0) return 'BIOS calls: none\n';
  const width = Math.max(...rows.map(([name]) => name.length));
  return `BIOS calls by service:\n${rows.map(([name, n]) => `  ${name.padEnd(width)}  ${String(n).padStart(8)}`).join('\n')}\n`;
}
