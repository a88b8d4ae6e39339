#!/usr/bin/env node
// Builds what the package ships — dist/ (TypeScript, with types and source maps, and the bundled
// command line in dist/bundle/, see scripts/bundle.mjs) and the example guests in guests/build/ —
// for npm's lifecycle scripts:
//
//   node scripts/prepare.mjs prepack   npm pack / npm publish, and a git dependency before npm
//                                      packs it: a clean build (dist/ emptied first, so no file of
//                                      a deleted module is shipped).
//   node scripts/prepare.mjs prepare   npm install / npm ci in a clone, a git dependency (whose
//                                      devDependencies npm installs first), a directory
//                                      dependency: builds in place. Under npm pack / publish it
//                                      does nothing (prepack has built). Without TypeScript (a
//                                      directory whose devDependencies are not installed) it
//                                      keeps a dist/ that is there, or says what to do.
//   node scripts/prepare.mjs build     `npm run build:ts`: tsc, then the bundles, dist/ kept. The
//                                      bundles are built even when tsc reports type errors (tsc
//                                      still emits), so bin/tskvm.js never runs a stale bundle.
//
// Exit status: 0 when built (or nothing to do), 1 when a build failed, 2 on bad usage.

import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundle } from './bundle.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist');
const require = createRequire(join(ROOT, 'package.json'));

function say(message) {
  process.stderr.write(`tskvm: ${message}\n`);
}

/** The TypeScript compiler of this package's devDependencies, or undefined when they are not installed. */
function findTsc() {
  try {
    return require.resolve('typescript/bin/tsc');
  } catch {
    return undefined;
  }
}

/** Runs a build step; false (said on stderr) when it failed. */
function step(what, args) {
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: 'inherit' });
  if (r.status === 0) return true;
  say(`${what} failed (${r.error ? r.error.message : `exit ${r.status ?? r.signal}`})`);
  return false;
}

function run(what, args) {
  if (!step(what, args)) process.exit(1);
}

async function bundleOrExit() {
  try {
    await bundle();
  } catch (err) {
    say(`the bundle build (scripts/bundle.mjs) failed: ${err.message}`);
    process.exit(1);
  }
}

async function build(clean) {
  const tsc = findTsc();
  if (!tsc) {
    if (!clean && existsSync(join(DIST, 'index.js'))) {
      say('TypeScript is not installed here; using the dist/ already built');
      return;
    }
    say(
      `cannot build dist/: TypeScript is not installed in ${ROOT}. Run \`npm install\` there first ` +
        '(it installs the devDependencies and builds), or install tskvm from a packed tarball (`npm pack`).',
    );
    process.exit(1);
  }
  if (clean) rmSync(DIST, { recursive: true, force: true });
  run('the TypeScript build (tsc -p tsconfig.json)', [tsc, '-p', 'tsconfig.json']);
  await bundleOrExit();
  run('the guest build (node guests/build.mjs; needs GNU binutils)', [join(ROOT, 'guests', 'build.mjs')]);
}

/** `npm run build:ts`: dist/ only, bundles included; tsc's status is the exit status. */
async function buildTs() {
  const tsc = findTsc();
  if (!tsc) {
    say(`TypeScript is not installed in ${ROOT}: run \`npm install\` there first (it installs the devDependencies)`);
    process.exit(1);
  }
  const typed = step('the TypeScript build (tsc -p tsconfig.json)', [tsc, '-p', 'tsconfig.json']);
  await bundleOrExit();
  if (!typed) process.exit(1);
}

const stage = process.argv[2];
if (stage === 'prepack') await build(true);
else if (stage === 'build') await buildTs();
else if (stage === 'prepare') {
  const command = process.env.npm_command;
  if (command !== 'pack' && command !== 'publish') await build(false);
} else {
  say('usage: node scripts/prepare.mjs prepack|prepare|build');
  process.exit(2);
}
