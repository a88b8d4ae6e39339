// The entry of `tskvm run`'s own CommonJS bundle (scripts/bundle.mjs: dist/bundle/run.cjs, which
// bin/tskvm.js loads when the command is `run`): the same launch() as cli.cjs's, without the code
// that `run` never reaches (the domain commands with their XML parser and lock files, doctor,
// tskvm-qemu's front end), so that a launch deserialises and evaluates less. One process loads one
// of the two bundles, never both: each has its own copy of every module it holds.

export { launch } from '../src/cli/launch.ts';

/** Build time: evaluates main.ts (a dynamic import), so that the code cache holds it compiled too. */
export async function warmCodeCache() {
  await import('../src/cli/main.ts');
}
