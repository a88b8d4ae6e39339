/**
 * Exiting when a normal exit would hang: process.exit() joins libuv's thread pool, and a pool
 * thread blocked writing to a pipe nobody reads never returns. The CLI then ends with _exit(2)
 * (through ffi-rs, which needs no compiler), after everything that can be said has gone to stderr.
 */
import { createRequire } from 'node:module';
import type * as Ffi from 'ffi-rs';

export function hardExit(status: number): never {
  const ffi = createRequire(import.meta.url)('ffi-rs') as typeof Ffi;
  ffi.open({ library: 'libc', path: '' });
  ffi.load({ library: 'libc', funcName: '_exit', retType: ffi.DataType.Void, paramsType: [ffi.DataType.I32], paramsValue: [status] });
  // _exit does not return; should the call fail, fall back to the ordinary path.
  process.exit(status);
}
