// The entry of the command lines' CommonJS bundle (scripts/bundle.mjs: dist/bundle/cli.cjs,
// loaded through src/cli/code-cache.cts by bin/tskvm.js and bin/tskvm-qemu.js, which share it and
// its V8 code cache): tskvm's launch(), tskvm-qemu's front end on demand, and what the build runs
// before it writes the cache. Build glue, outside src/: it ties two command lines of one layer.

export { launch } from '../src/cli/launch.ts';

/** tskvm-qemu's front end (src/qemu/main.ts): evaluated only when called, so that `tskvm` never runs its module bodies. */
export const qemu = () => import('../src/qemu/main.ts');

/**
 * Build time: evaluates the modules a run of either command loads (dynamic imports, whose
 * modules' bodies are functions V8 compiles only when run), so that the code cache holds them
 * compiled too, not only the bundle's top level. Runs no command and opens nothing.
 */
export async function warmCodeCache() {
  await import('../src/cli/main.ts');
  await import('../src/qemu/main.ts');
  await import('../src/qemu/run.ts');
}
