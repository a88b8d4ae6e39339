/**
 * The main thread's side of a BIOS boot: whether the run boots through the BIOS, the disks
 * (opened here, used by the board's thread through their file descriptors, closed at the end),
 * POST's memory, the shared buffers the board writes (console text, VGA registers, counters, the
 * attention word), the bridge that carries teletype text out and --keys input in, and the
 * screen and statistics read back while the guest runs and when it ends.
 */
import { closeSync, openSync } from 'node:fs';
import type { RealModeEntry } from '../arch/x86/boot-state.js';
import type { E820Entry } from '../arch/x86/e820.js';
import { HIGH_MEMORY_ADDRESS } from '../arch/x86/pc-layout.js';
import { Vga, VGA_STATE_BYTES } from '../devices/vga.js';
import { UsageError } from '../errors.js';
import { SerialBridge } from '../io/serial-bridge.js';
import type { GuestFormatChoice, LoadedGuest } from '../loader/guest.js';
export { bootsThroughBios } from './boot-choice.js';
import { BIOS_COUNTER_COUNT, countsByService } from './bios.js';
import { diskOpenFlags, openDiskFile } from './disk-file.js';
import { Disk, DiskSet, FdDiskBackend, FIRST_FLOPPY, FIRST_HARD_DISK, floppyFormat, MemoryDiskBackend } from './disk.js';
import { BIOS_TRAP_PORT } from './layout.js';
import { validateBiosOptions, type BiosConfig, type BiosDiskSource } from './options.js';
import { writePostMemory } from './post.js';
import { captureScreen, cp437ToUtf8, type ScreenCapture } from './screen.js';
import { checkSavedDisk, describeBios, parseSavedBios, type OpenDiskSource, type SavedBios } from './snapshot-config.js';
import { ATTENTION_POLL, ATTENTION_SCREEN_USED, ATTENTION_TELETYPE, ATTENTION_WORDS, type BiosBoardSpec, type DiskSpec } from './spec.js';

/** How often the main thread looks whether the board wants a poll (keystrokes waiting). */
export const ATTENTION_POLL_MS = 10;
const MAX_FLOPPIES = 2;
const MAX_HARD_DISKS = 4;

export interface BiosBootInput {
  config: BiosConfig;
  format: GuestFormatChoice;
  /** The image, when one was given (a boot sector here). */
  image: { bytes: Uint8Array; name: string } | undefined;
  memory: Uint8Array;
  memorySize: number;
  e820: E820Entry[];
  /** COM port bases present. */
  com: readonly number[];
  /** --trace's target, when the trace shows BIOS calls. */
  trace: { fd: number; kinds: string[] | null; ports: [number, number][] | null } | undefined;
}

/** What bringing back a saved BIOS machine needs (its memory is already the snapshot's). */
export interface BiosResumeInput {
  /** The snapshot's machine.board.bios (see snapshot-config.ts), unchecked. */
  saved: unknown;
  /** The snapshot file, for messages. */
  snapshot: string;
  /** This run's console, screen and keys (undefined: none). */
  config: BiosConfig | undefined;
  memory: Uint8Array;
  memorySize: number;
  trace: BiosBootInput['trace'];
}

interface OpenedDisk {
  spec: DiskSpec;
  disk: Disk;
  fd: number | undefined;
  source: OpenDiskSource['source'];
}

function openDisk(source: BiosDiskSource): {
  image: DiskSpec['image'];
  backend: FdDiskBackend | MemoryDiskBackend;
  fd: number | undefined;
  size: number;
} {
  if (source.bytes) {
    const buffer = new SharedArrayBuffer(source.bytes.length);
    new Uint8Array(buffer).set(source.bytes);
    return { image: { buffer }, backend: new MemoryDiskBackend(new Uint8Array(buffer)), fd: undefined, size: source.bytes.length };
  }
  const { fd, size } = openDiskFile(source.path!, source.write);
  return { image: { fd, size }, backend: new FdDiskBackend(fd, size), fd, size };
}

/** How a snapshot will find an opened disk again: its file (by path), or its bytes. */
function diskSource(source: BiosDiskSource, fd: number | undefined): OpenDiskSource['source'] {
  return fd !== undefined ? { fd, path: source.path! } : { name: source.name, bytes: source.bytes! };
}

/** A saved machine's disk file, opened as it was (for writing with write-through). */
function openSavedDisk(file: string, writeThrough: boolean, drive: number, snapshot: string): number {
  try {
    return openSync(file, diskOpenFlags(writeThrough));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'is not there: it must be where it was when the guest was saved' : (err as Error).message;
    throw new UsageError(
      `snapshot ${snapshot} cannot be restored: disk '${file}' (drive ${drive.toString(16).padStart(2, '0')}h) ${why}`,
      'EIMAGE',
    );
  }
}

/** The board's spec and the console bridge for `opened` disks: the part a boot and a restore share. */
function boardParts(
  opened: readonly OpenedDisk[],
  bootOrder: number[],
  e820: E820Entry[],
  memorySize: number,
  config: BiosConfig,
  trace: BiosBootInput['trace'],
): { spec: BiosBoardSpec; bridge: SerialBridge; consoleChunks: Buffer[]; disks: OpenDiskSource[] } {
  const keys = config.keys;
  const consoleChunks: Buffer[] = [];
  const onConsole = config.onConsole;
  const bridge = new SerialBridge((chunk) => {
    consoleChunks.push(chunk);
    return onConsole?.(chunk);
  }, keys);
  const traceBios =
    trace !== undefined &&
    (trace.kinds === null || trace.kinds.includes('io')) &&
    (trace.ports === null || trace.ports.some(([lo, hi]) => BIOS_TRAP_PORT >= lo && BIOS_TRAP_PORT <= hi));
  const spec: BiosBoardSpec = {
    disks: opened.map((d) => d.spec),
    bootOrder,
    memorySize,
    e820,
    console: bridge.tx.buffer,
    keys: keys === undefined ? null : bridge.rx.buffer,
    vga: new SharedArrayBuffer(VGA_STATE_BYTES),
    counters: new SharedArrayBuffer(BIOS_COUNTER_COUNT * 4),
    attention: new SharedArrayBuffer(ATTENTION_WORDS * 4),
    trace: traceBios ? { fd: trace.fd, startNs: process.hrtime.bigint() } : null,
  };
  const disks = opened.map((d) => ({ drive: d.spec.drive, writeThrough: d.spec.writeThrough, source: d.source }));
  return { spec, bridge, consoleChunks, disks };
}

export class BiosHost {
  readonly spec: BiosBoardSpec;
  /** How POST left the boot vCPU; undefined for a machine restored from a snapshot (its vCPUs' state comes from there). */
  readonly loaded: LoadedGuest | undefined;
  private readonly bridge: SerialBridge;
  private readonly consoleChunks: Buffer[];
  private readonly disks: OpenDiskSource[];
  private readonly attention: Int32Array;
  private readonly vgaRegs: Uint8Array;
  private readonly counters: Int32Array;
  private fds: number[];
  private timers: ReturnType<typeof setInterval>[] = [];
  private lastScreenKey = '';

  private constructor(
    private readonly memory: Uint8Array,
    private readonly config: BiosConfig,
    parts: { spec: BiosBoardSpec; bridge: SerialBridge; consoleChunks: Buffer[]; disks: OpenDiskSource[] },
    entry: RealModeEntry | undefined,
  ) {
    this.spec = parts.spec;
    this.bridge = parts.bridge;
    this.consoleChunks = parts.consoleChunks;
    this.disks = parts.disks;
    this.fds = parts.disks.flatMap((d) => ('fd' in d.source ? [d.source.fd] : []));
    this.attention = new Int32Array(this.spec.attention);
    this.vgaRegs = new Uint8Array(this.spec.vga);
    this.counters = new Int32Array(this.spec.counters);
    this.loaded = entry && { format: 'bootsector', bootState: { mode: 'real', entry }, notes: [] };
  }

  /** Opens the disks, writes POST's memory and makes the board's spec. Throws UsageError for bad disks. */
  static prepare(input: BiosBootInput): BiosHost {
    if (input.memorySize < HIGH_MEMORY_ADDRESS) {
      throw new UsageError(`booting through the BIOS needs at least 1M of guest RAM, not ${input.memorySize} bytes: raise --memory`);
    }
    const opened: OpenedDisk[] = [];
    try {
      const sources: BiosDiskSource[] = [
        ...(input.image ? [{ name: input.image.name, bytes: input.image.bytes, write: false }] : []),
        ...input.config.disks,
      ];
      let floppies = 0;
      let hardDisks = 0;
      for (const source of sources) {
        const { image, backend, fd, size } = openDisk(source);
        const isFloppy = floppyFormat(size) !== undefined && floppies < MAX_FLOPPIES;
        if (!isFloppy && hardDisks >= MAX_HARD_DISKS)
          throw new UsageError(`too many disks: the BIOS has drives for ${MAX_FLOPPIES} floppies and ${MAX_HARD_DISKS} hard disks`);
        const drive = isFloppy ? FIRST_FLOPPY + floppies++ : FIRST_HARD_DISK + hardDisks++;
        const disk = new Disk(backend, { drive, writeThrough: source.write });
        opened.push({ spec: { drive, image, writeThrough: source.write }, disk, fd, source: diskSource(source, fd) });
      }
      if (opened.length === 0) throw new UsageError('nothing to boot: give a boot sector as IMAGE or a disk with --disk');
      const drives = opened.map((d) => d.spec.drive);
      const wanted = input.config.boot;
      const bootDrive = wanted === 'a' ? FIRST_FLOPPY : wanted === 'c' ? FIRST_HARD_DISK : (wanted ?? drives[0]!);
      if (!drives.includes(bootDrive)) {
        throw new UsageError(
          `--boot ${typeof wanted === 'number' ? `0x${wanted.toString(16)}` : wanted}: there is no such drive (the drives are ${drives.map((d) => `0x${d.toString(16).padStart(2, '0')}`).join(', ')})`,
        );
      }
      const parts = boardParts(
        opened,
        [bootDrive, ...drives.filter((d) => d !== bootDrive)],
        input.e820,
        input.memorySize,
        input.config,
        input.trace,
      );
      const entry = writePostMemory(
        input.memory,
        { memorySize: input.memorySize, com: input.com, disks: new DiskSet(opened.map((d) => d.disk)), nowMs: Date.now() },
        new Vga(new Uint8Array(parts.spec.vga)),
      );
      return new BiosHost(input.memory, input.config, parts, entry);
    } catch (err) {
      for (const d of opened) if (d.fd !== undefined) closeSync(d.fd);
      throw err;
    }
  }

  /**
   * The BIOS of a machine restored from a snapshot: its disks opened again (and checked to be
   * the images it was saved with: snapshot-config.ts) and the board's shared buffers made; no
   * POST, since the BIOS's memory comes with the guest's. Throws UsageError (EIMAGE).
   */
  static async resume(input: BiosResumeInput): Promise<BiosHost> {
    const saved = parseSavedBios(input.saved, input.snapshot);
    const config = input.config ?? validateBiosOptions(undefined)!;
    const opened: OpenedDisk[] = [];
    try {
      for (const d of saved.disks) {
        if (d.file) {
          const fd = openSavedDisk(d.file.path, d.writeThrough, d.drive, input.snapshot);
          opened.push({
            spec: { drive: d.drive, image: { fd, size: d.file.size }, writeThrough: d.writeThrough },
            disk: new Disk(new FdDiskBackend(fd, d.file.size), { drive: d.drive, writeThrough: d.writeThrough }),
            fd,
            source: { fd, path: d.file.path },
          });
          await checkSavedDisk(fd, d.file, d.drive, input.snapshot);
        } else {
          const bytes = new Uint8Array(Buffer.from(d.bytes!.base64, 'base64'));
          const buffer = new SharedArrayBuffer(bytes.length);
          new Uint8Array(buffer).set(bytes);
          opened.push({
            spec: { drive: d.drive, image: { buffer }, writeThrough: false },
            disk: new Disk(new MemoryDiskBackend(new Uint8Array(buffer)), { drive: d.drive, writeThrough: false }),
            fd: undefined,
            source: { name: d.bytes!.name, bytes },
          });
        }
      }
      return new BiosHost(
        input.memory,
        config,
        boardParts(opened, saved.bootOrder, saved.e820, input.memorySize, config, input.trace),
        undefined,
      );
    } catch (err) {
      for (const d of opened) if (d.fd !== undefined) closeSync(d.fd);
      if (err instanceof RangeError) throw new UsageError(`snapshot ${input.snapshot}: it is corrupt: ${err.message}`, 'EIMAGE');
      throw err;
    }
  }

  /** What a snapshot records of this BIOS machine (call with the guest paused: the disk files are hashed). */
  snapshotConfig(): Promise<SavedBios> {
    return describeBios(this.disks, this.spec.bootOrder, this.spec.e820);
  }

  /** Starts the polls: keystrokes waiting make `kick` tell the board; the screen goes to onScreen. */
  start(kick: () => void): void {
    this.timers.push(
      setInterval(() => {
        // The board asked (keystrokes wait), or --keys input arrived that it has not seen yet.
        if (Atomics.load(this.attention, ATTENTION_POLL) || (this.spec.keys && this.bridge.rx.used() > 0)) kick();
      }, ATTENTION_POLL_MS),
    );
    const onScreen = this.config.onScreen;
    if (onScreen) this.timers.push(setInterval(() => this.offerScreen(onScreen), this.config.screenIntervalMs));
  }

  /** BIOS trace lines count time from the exit trace's start (call before the vCPUs start). */
  alignTrace(startNs: bigint): void {
    if (this.spec.trace) this.spec.trace.startNs = startNs;
  }

  private offerScreen(onScreen: NonNullable<BiosConfig['onScreen']>): void {
    const screen = this.screen();
    const key = JSON.stringify([screen.cells, screen.cursor, screen.mode]);
    if (key === this.lastScreenKey) return;
    this.lastScreenKey = key;
    onScreen(screen, { screenUsed: this.screenUsed, teletype: this.teletypeCount });
  }

  /** The screen now. */
  screen(): ScreenCapture {
    return captureScreen(this.memory, this.vgaRegs);
  }

  /** Whether the guest used the screen beyond teletype text (so it is worth drawing). */
  get screenUsed(): boolean {
    return Atomics.load(this.attention, ATTENTION_SCREEN_USED) !== 0;
  }

  /** Teletype characters so far. */
  get teletypeCount(): number {
    return Atomics.load(this.attention, ATTENTION_TELETYPE);
  }

  /** Calls per service so far. */
  counts(): Record<string, number> {
    return countsByService(this.counters);
  }

  /** The console's teletype text so far, as UTF-8. */
  consoleText(): string {
    return cp437ToUtf8(Buffer.concat(this.consoleChunks));
  }

  /** After the vCPUs stopped: the last screen callback, the console text delivered, the disks closed. */
  async finish(): Promise<void> {
    for (const timer of this.timers.splice(0)) clearInterval(timer);
    if (this.config.onScreen) this.offerScreen(this.config.onScreen);
    await this.bridge.finish();
    this.close();
  }

  /** Closes the disk files (idempotent). */
  close(): void {
    for (const fd of this.fds.splice(0)) closeSync(fd);
    for (const timer of this.timers.splice(0)) clearInterval(timer);
  }
}
