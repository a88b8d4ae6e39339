#!/usr/bin/env node
// Bundles the command line and the threads it starts into one file each, with esbuild, from the
// TypeScript sources: dist/bundle/cli.js (what bin/tskvm.js loads), dist/bundle/worker.js (a vCPU
// thread), dist/bundle/board-worker.js (the board thread of a multi-vCPU run) and
// dist/bundle/supervisor-main.js (a domain's supervisor process). Loading one file instead of
// ~130 modules and their packages is most of what `tskvm run` pays before the guest starts.
//
// The bundles live side by side, so the `new URL('./worker.js', import.meta.url)` of
// src/vcpu/thread.ts (and './board-worker.js', './supervisor-main.js') finds the bundled thread
// from the bundled CLI, and the tsc output's own thread from the library (dist/index.js and the
// package's other "exports", which stay tsc output). Paths that climb to the package root
// ('../../package.json', '../../build/Release/tskvm.node') work from dist/bundle/ as from
// dist/<folder>/. ffi-rs (native) and iced-x86 (WASM) stay outside: they are loaded with
// createRequire from node_modules, and only when used.
//
//   node scripts/bundle.mjs        by hand; `npm run build:ts` and npm's lifecycle scripts bundle
//                                  through scripts/prepare.mjs, after tsc
//
// Exit status: 0 when built, 1 when esbuild failed or is not installed.

import { mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'dist', 'bundle');
const require = createRequire(join(ROOT, 'package.json'));

/** Entry points, by the file name each bundle gets (the name the code that starts it uses). */
const ENTRIES = {
  cli: 'src/cli/launch.ts',
  worker: 'src/vcpu/worker.ts',
  'board-worker': 'src/board/board-worker.ts',
  'supervisor-main': 'src/domains/supervisor-main.ts',
};

/** Packages loaded at run time from node_modules rather than bundled: native code and WASM, loaded only when used. */
const EXTERNAL = ['ffi-rs', 'iced-x86'];

// Bundled CommonJS packages (commander) call require() for Node's built-ins; an ES module has none.
const BANNER = "import { createRequire as tskvmCreateRequire } from 'node:module';\nconst require = tskvmCreateRequire(import.meta.url);";

export async function bundle() {
  let esbuild;
  try {
    esbuild = require('esbuild');
  } catch {
    throw new Error(`esbuild is not installed in ${ROOT}: run \`npm install\` there (it is a devDependency)`);
  }
  // Built beside dist/bundle/, then swapped in: a CLI started during a rebuild finds every chunk
  // of one build or the other (chunk names carry a hash of their contents), never a half-written one.
  mkdirSync(dirname(OUT), { recursive: true });
  const fresh = mkdtempSync(`${OUT}.new-`);
  try {
    await build(esbuild, fresh);
    const old = `${fresh.replace('.new-', '.old-')}`;
    try {
      renameSync(OUT, old);
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
    renameSync(fresh, OUT);
    rmSync(old, { recursive: true, force: true });
  } finally {
    rmSync(fresh, { recursive: true, force: true });
  }
}

async function build(esbuild, outdir) {
  await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: Object.fromEntries(Object.entries(ENTRIES).map(([name, file]) => [name, join(ROOT, file)])),
    outdir,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: EXTERNAL,
    // Code behind a dynamic import() (the domain commands, doctor, the BIOS) in chunks of its own,
    // and code the entries share in shared chunks: each entry compiles only what it can run.
    splitting: true,
    chunkNames: '[name]-[hash]',
    banner: { js: BANNER },
    // No source maps: they would double the package; the bundle keeps every name and a
    // `// src/<file>.ts` line above each module, and the library's dist/ has its maps.
    // The third-party notices of what is bundled (commander, fast-xml-parser...) stay in the output.
    legalComments: 'inline',
    logLevel: 'warning',
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    await bundle();
  } catch (err) {
    process.stderr.write(`tskvm: the bundle build (scripts/bundle.mjs) failed: ${err.message}\n`);
    process.exit(1);
  }
}
