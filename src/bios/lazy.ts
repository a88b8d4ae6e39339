/**
 * The BIOS's modules are loaded only for runs that boot through it: a flat binary or a kernel
 * never pays for importing them, in the main thread or in a vCPU or board thread. `loadBios()`
 * (async) first, then `loadedBios()` where the code must be synchronous (building the board).
 */
import type * as BiosBoard from './board.js';
import type * as BiosHost from './host.js';

export interface BiosModules {
  board: typeof BiosBoard;
  host: typeof BiosHost;
}

let modules: BiosModules | undefined;

/** Imports the BIOS (once per thread). */
export async function loadBios(): Promise<BiosModules> {
  if (!modules) {
    const [board, host] = await Promise.all([import('./board.js'), import('./host.js')]);
    modules = { board, host };
  }
  return modules;
}

/** The BIOS's modules, which `loadBios()` must have loaded in this thread. */
export function loadedBios(): BiosModules {
  if (!modules) throw new Error('the BIOS modules are not loaded in this thread: await loadBios() before building a BIOS machine');
  return modules;
}
