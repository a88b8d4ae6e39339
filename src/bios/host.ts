/**
 * The main thread's side of a BIOS boot: whether the run boots through the BIOS, the disks
 * (opened here, used by the board's thread through their file descriptors, closed at the end),
 * POST's memory, the shared buffers the board writes (console text, VGA registers, counters, the
 * attention word), the bridge that carries teletype text out and --keys input in, and the
 * screen and statistics read back while the guest runs and when it ends.
 */
import { closeSync, fstatSync, openSync } from 'node:fs';
import type { RealModeEntry } from '../arch/x86/boot-state.js';
import type { E820Entry } from '../arch/x86/e820.js';
import { HIGH_MEMORY_ADDRESS } from '../arch/x86/pc-layout.js';
import { Vga, VGA_STATE_BYTES } from '../devices/vga.js';
import { UsageError } from '../errors.js';
import { SerialBridge } from '../io/serial-bridge.js';
import type { GuestFormatChoice, LoadedGuest } from '../loader/guest.js';
export { bootsThroughBios } from './boot-choice.js';
import { BIOS_COUNTER_COUNT, countsByService } from './bios.js';
import { Disk, DiskSet, FdDiskBackend, FIRST_FLOPPY, FIRST_HARD_DISK, floppyFormat, MemoryDiskBackend } from './disk.js';
import { BIOS_TRAP_PORT } from './layout.js';
import type { BiosConfig, BiosDiskSource } from './options.js';
import { writePostMemory } from './post.js';
import { captureScreen, cp437ToUtf8, type ScreenCapture } from './screen.js';
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

interface OpenedDisk {
  spec: DiskSpec;
  disk: Disk;
  fd: number | undefined;
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
  const path = source.path!;
  let fd: number;
  try {
    fd = openSync(path, source.write ? 'r+' : 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'not found: check the path'
        : code === 'EACCES'
          ? `cannot be opened${source.write ? ' for writing' : ''} (permission denied): fix its permissions`
          : (err as Error).message;
    throw new UsageError(`disk '${path}' ${why}`, 'EIMAGE');
  }
  const st = fstatSync(fd);
  if (!st.isFile() || st.size === 0) {
    closeSync(fd);
    throw new UsageError(`disk '${path}' is ${st.isFile() ? 'empty' : 'not a regular file'}: give a disk image file`, 'EIMAGE');
  }
  return { image: { fd, size: st.size }, backend: new FdDiskBackend(fd, st.size), fd, size: st.size };
}

export class BiosHost {
  readonly spec: BiosBoardSpec;
  readonly loaded: LoadedGuest;
  private readonly bridge: SerialBridge;
  private readonly attention: Int32Array;
  private readonly vgaRegs: Uint8Array;
  private readonly counters: Int32Array;
  private fds: number[];
  private timers: ReturnType<typeof setInterval>[] = [];
  private lastScreenKey = '';

  private constructor(
    private readonly memory: Uint8Array,
    private readonly config: BiosConfig,
    spec: BiosBoardSpec,
    entry: RealModeEntry,
    fds: number[],
    bridge: SerialBridge,
    private readonly consoleChunks: Buffer[],
  ) {
    this.spec = spec;
    this.fds = fds;
    this.bridge = bridge;
    this.attention = new Int32Array(spec.attention);
    this.vgaRegs = new Uint8Array(spec.vga);
    this.counters = new Int32Array(spec.counters);
    this.loaded = { format: 'bootsector', bootState: { mode: 'real', entry }, notes: [] };
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
        opened.push({ spec: { drive, image, writeThrough: source.write }, disk, fd });
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
      const keys = input.config.keys;
      const chunks: Buffer[] = [];
      const onConsole = input.config.onConsole;
      const bridge = new SerialBridge((chunk) => {
        chunks.push(chunk);
        return onConsole?.(chunk);
      }, keys);
      const trace = input.trace;
      const traceBios =
        trace !== undefined &&
        (trace.kinds === null || trace.kinds.includes('io')) &&
        (trace.ports === null || trace.ports.some(([lo, hi]) => BIOS_TRAP_PORT >= lo && BIOS_TRAP_PORT <= hi));
      const spec: BiosBoardSpec = {
        disks: opened.map((d) => d.spec),
        bootOrder: [bootDrive, ...drives.filter((d) => d !== bootDrive)],
        memorySize: input.memorySize,
        e820: input.e820,
        console: bridge.tx.buffer,
        keys: keys === undefined ? null : bridge.rx.buffer,
        vga: new SharedArrayBuffer(VGA_STATE_BYTES),
        counters: new SharedArrayBuffer(BIOS_COUNTER_COUNT * 4),
        attention: new SharedArrayBuffer(ATTENTION_WORDS * 4),
        trace: traceBios ? { fd: trace.fd, startNs: process.hrtime.bigint() } : null,
      };
      const entry = writePostMemory(
        input.memory,
        { memorySize: input.memorySize, com: input.com, disks: new DiskSet(opened.map((d) => d.disk)), nowMs: Date.now() },
        new Vga(new Uint8Array(spec.vga)),
      );
      const fds = opened.map((d) => d.fd).filter((fd) => fd !== undefined);
      return new BiosHost(input.memory, input.config, spec, entry, fds, bridge, chunks);
    } catch (err) {
      for (const d of opened) if (d.fd !== undefined) closeSync(d.fd);
      throw err;
    }
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
