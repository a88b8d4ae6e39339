/**
 * The command lines' stdout and stderr as Node streams, each made on first use with its error
 * watched, and what the CLI asks of fds 0-2 without making them. Node creates process.stdout,
 * stderr and stdin lazily too, but the first touch of one loads Node's stream modules and, for a
 * pipe or a terminal, node:net, or for a file the fs streams and fs/promises: ~10 ms of a
 * launch here, which a run that prints nothing but the guest's output (FdWriter writes fd 1
 * itself) never needs.
 */
import { fstatSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as Tty from 'node:tty';
import { native } from '../kvm/native.js';

export const STDIN_FD = 0;
export const STDOUT_FD = 1;

let stdoutMade = false;
let stderrMade = false;
/** stdout or stderr failed (EPIPE, ENOSPC): nothing more is flushed there. */
let failed = false;

/** `tskvm --help | head -2`: a reader that leaves early is no error of ours; later writes are dropped. */
function watched(stream: NodeJS.WriteStream): NodeJS.WriteStream {
  stream.on('error', () => (failed = true));
  return stream;
}

/** process.stdout, watched: help texts, doctor's report, the domain commands' output. Never the guest's. */
export function stdout(): NodeJS.WriteStream {
  if (!stdoutMade) {
    stdoutMade = true;
    watched(process.stdout);
  }
  return process.stdout;
}

/** process.stderr, watched: every diagnostic. */
export function stderr(): NodeJS.WriteStream {
  if (!stderrMade) {
    stderrMade = true;
    watched(process.stderr);
  }
  return process.stderr;
}

/** Settles once what was written to stdout has gone (at once when nothing was, or it failed). */
export function flushStdout(): Promise<void> {
  if (!stdoutMade || failed) return Promise.resolve();
  return new Promise((resolve) => process.stdout.write('', () => resolve()));
}

/** Whether fd 0, 1 or 2 is a terminal: the addon's isatty, else node:tty's. */
export function isTerminal(fd: number): boolean {
  let ask: ((fd: number) => boolean) | undefined;
  try {
    ask = native().isatty;
  } catch {
    ask = undefined; // no backend (the run will say why): node:tty answers
  }
  if (ask) return ask(fd);
  return (createRequire(import.meta.url)('node:tty') as typeof Tty).isatty(fd);
}

/** Whether fd is /dev/null (`< /dev/null`, a harness's 'ignore'): there is nothing to read from it. */
export function isDevNull(fd: number): boolean {
  try {
    const st = fstatSync(fd);
    return st.isCharacterDevice() && st.rdev === statSync('/dev/null').rdev;
  } catch {
    return false;
  }
}
