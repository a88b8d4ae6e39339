/**
 * The library's BIOS options (`RunGuestOptions.bios`), checked before anything is opened: the
 * disks, whether their writes reach the files, which drive boots, the keyboard's own input, and
 * the callbacks that get the console's teletype text and the screen.
 */
import { UsageError } from '../errors.js';
import type { SerialInput, SerialSink } from '../io/serial-bridge.js';
import type { ScreenActivity } from './display.js';
import type { ScreenCapture } from './screen.js';

/** A disk image: a file path (written only with `write`), or bytes (writes change the copy the guest sees). */
export type DiskOption = string | { path: string; write?: boolean } | { name: string; bytes: Uint8Array };

export interface BiosOptions {
  /** Disks in drive order: standard floppy sizes become 0x00, 0x01; others 0x80, 0x81... */
  disks?: DiskOption[];
  /** Writes reach every disk file (else they stay in memory). */
  diskWrite?: boolean;
  /** The drive to boot: 'a' (first floppy), 'c' (first hard disk), or a drive number; default: the first drive. */
  boot?: string | number;
  /** Keystrokes for the keyboard alone (then COM1 keeps its own input). */
  keys?: SerialInput;
  /** The console's teletype output (INT 10h 0Eh and 13h), as code page 437 bytes. */
  onConsole?: SerialSink;
  /** Called with the screen at most every `screenIntervalMs` (default 50) while it changes. */
  onScreen?: (screen: ScreenCapture, activity: ScreenActivity) => void;
  screenIntervalMs?: number;
}

export interface BiosDiskSource {
  path?: string;
  name: string;
  bytes?: Uint8Array;
  write: boolean;
}

/** Validated: `undefined` in MachineConfig means "no BIOS" (options.bios === false). */
export interface BiosConfig {
  disks: BiosDiskSource[];
  boot: number | 'a' | 'c' | undefined;
  keys: SerialInput | undefined;
  onConsole: SerialSink | undefined;
  onScreen: ((screen: ScreenCapture, activity: ScreenActivity) => void) | undefined;
  screenIntervalMs: number;
}

export const DEFAULT_SCREEN_INTERVAL_MS = 50;
const MAX_DRIVE = 0xff;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

export function parseBootDrive(value: string | number, what = 'options.bios.boot'): number | 'a' | 'c' {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_DRIVE) return value;
  if (typeof value === 'string') {
    const v = value.trim().toLowerCase();
    if (v === 'a' || v === 'floppy') return 'a';
    if (v === 'c' || v === 'disk' || v === 'hd') return 'c';
    if (/^(0x[0-9a-f]{1,2}|\d{1,3})$/.test(v) && Number(v) <= MAX_DRIVE) return Number(v);
  }
  throw new UsageError(`invalid ${what} '${String(value)}': use a (first floppy), c (first hard disk) or a BIOS drive number such as 0x80`);
}

/** Checks `options.bios`; undefined when it is false (the bare boot-sector start). */
export function validateBiosOptions(value: unknown): BiosConfig | undefined {
  if (value === false) return undefined;
  if (value === undefined || value === true)
    return {
      disks: [],
      boot: undefined,
      keys: undefined,
      onConsole: undefined,
      onScreen: undefined,
      screenIntervalMs: DEFAULT_SCREEN_INTERVAL_MS,
    };
  if (!isObject(value))
    throw new UsageError('invalid options.bios: give false (no BIOS) or { disks?, diskWrite?, boot?, keys?, onConsole?, onScreen? }');
  const diskWrite = value.diskWrite ?? false;
  if (typeof diskWrite !== 'boolean') throw new UsageError('invalid options.bios.diskWrite: give true or false');
  const disks = value.disks ?? [];
  if (!Array.isArray(disks))
    throw new UsageError('invalid options.bios.disks: give an array of paths, { path, write? } or { name, bytes }');
  const sources = disks.map((d: unknown, i): BiosDiskSource => {
    const what = `options.bios.disks[${i}]`;
    if (typeof d === 'string' && d !== '') return { path: d, name: d, write: diskWrite };
    if (isObject(d) && typeof d.path === 'string' && d.path !== '') {
      if (d.write !== undefined && typeof d.write !== 'boolean') throw new UsageError(`invalid ${what}.write: give true or false`);
      return { path: d.path, name: d.path, write: (d.write as boolean | undefined) ?? diskWrite };
    }
    if (isObject(d) && typeof d.name === 'string' && d.bytes instanceof Uint8Array) return { name: d.name, bytes: d.bytes, write: false };
    throw new UsageError(`invalid ${what}: give a file path, { path, write? } or { name, bytes }`, 'EIMAGE');
  });
  for (const [name, fn] of [
    ['onConsole', value.onConsole],
    ['onScreen', value.onScreen],
  ] as const) {
    if (fn !== undefined && typeof fn !== 'function') throw new UsageError(`invalid options.bios.${name}: give a function`);
  }
  const interval = value.screenIntervalMs ?? DEFAULT_SCREEN_INTERVAL_MS;
  if (typeof interval !== 'number' || !(interval > 0))
    throw new UsageError('invalid options.bios.screenIntervalMs: give a positive number of milliseconds');
  const keys = value.keys;
  if (
    keys !== undefined &&
    typeof keys !== 'string' &&
    !(keys instanceof Uint8Array) &&
    !(isObject(keys) && typeof keys.on === 'function')
  ) {
    throw new UsageError('invalid options.bios.keys: give a string, a Uint8Array or a readable stream');
  }
  return {
    disks: sources,
    boot: value.boot === undefined ? undefined : parseBootDrive(value.boot as string | number),
    keys: keys as SerialInput | undefined,
    onConsole: value.onConsole as SerialSink | undefined,
    onScreen: value.onScreen as BiosConfig['onScreen'],
    screenIntervalMs: interval,
  };
}
