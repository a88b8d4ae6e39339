/**
 * What the thread that owns the board needs to build the BIOS's side of it: plain data and
 * shared buffers, postMessage-able. The main thread makes it (host.ts) and reads the shared
 * buffers back: the VGA registers (for the screen), the call counters (--stats), the console's
 * teletype text, and the attention word (the board wants to be polled: keystrokes wait).
 */
import type { E820Entry } from '../arch/x86/e820.js';

/** A disk's image: a file descriptor the main thread opened, or bytes in shared memory. */
export type DiskImageSpec = { fd: number; size: number } | { buffer: SharedArrayBuffer };

export interface DiskSpec {
  drive: number;
  image: DiskImageSpec;
  /** Writes reach the image (--disk-write); else they stay in memory. */
  writeThrough: boolean;
}

export interface BiosBoardSpec {
  disks: DiskSpec[];
  /** Drives INT 19h tries, in order. */
  bootOrder: number[];
  memorySize: number;
  e820: E820Entry[];
  /** The console's teletype text: a ByteRing the board writes and the main thread drains. */
  console: SharedArrayBuffer;
  /** --keys: a ByteRing the keyboard alone reads; null: the keyboard shares COM1's input. */
  keys: SharedArrayBuffer | null;
  /** The VGA's registers (VGA_STATE_BYTES). */
  vga: SharedArrayBuffer;
  /** Calls per service (Int32, BIOS_COUNTER_COUNT). */
  counters: SharedArrayBuffer;
  /** Int32 words, see ATTENTION_*. */
  attention: SharedArrayBuffer;
  /** --trace: BIOS call lines to this fd, timed from `startNs`. */
  trace: { fd: number; startNs: bigint } | null;
}

/** attention[ATTENTION_POLL] = 1: keystrokes wait; poll the board soon. */
export const ATTENTION_POLL = 0;
/** Teletype characters written so far (the display tells teletype from direct screen writes). */
export const ATTENTION_TELETYPE = 1;
/** 1 once the guest used the screen beyond teletype (a mode set, cursor moves, writes at the cursor). */
export const ATTENTION_SCREEN_USED = 2;
export const ATTENTION_WORDS = 4;
