#!/usr/bin/env node
// Bundles the command lines and the threads they start into one file each, with esbuild, from the
// TypeScript sources, into dist/bundle/:
//   cli.cjs                what bin/tskvm.js and bin/tskvm-qemu.js load: CommonJS, one file (a
//                          dynamic import() inside becomes a lazy call), loaded with V8's code
//                          cache (cli.cjs.<hash>.<place>.cache, written here once the bundle is in
//                          place, see src/cli/code-cache.cts): Node 20 caches no ES module's code.
//   run.cjs                what bin/tskvm.js loads for `tskvm run`: the same, less the modules only
//                          other commands reach (a third of cli.cjs; ~1.3 ms of a launch here).
//   worker.js              a vCPU thread; board-worker.js, the board thread of a multi-vCPU run;
//   supervisor-main.js     a domain's supervisor process: ES modules with shared chunks.
// Loading one file instead of ~130 modules and their packages, compiled once at build time, is
// most of what `tskvm run` pays before the guest starts.
//
// The bundles live side by side, so the `new URL('./worker.js', import.meta.url)` of
// src/vcpu/thread.ts (and './board-worker.js', './supervisor-main.js') finds the bundled thread
// from the bundled CLI (whose `import.meta.url` is its own file's URL, passed in by the loader),
// and the tsc output's own thread from the library (dist/index.js and the package's other
// "exports", which stay tsc output). Paths that climb to the package root ('../../package.json',
// '../../build/Release/tskvm.node') work from dist/bundle/ as from dist/<folder>/. ffi-rs (native)
// and iced-x86 (WASM) stay outside: they are loaded with createRequire from node_modules, and only
// when used.
//
//   node scripts/bundle.mjs        by hand, after tsc (the cache is written by dist/cli/code-cache.cjs);
//                                  `npm run build:ts` and npm's lifecycle scripts bundle through
//                                  scripts/prepare.mjs, after tsc
//
// Exit status: 0 when built, 1 when esbuild failed or is not installed.

import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'dist', 'bundle');
const require = createRequire(join(ROOT, 'package.json'));

/** The threads' entry points (ES modules with shared chunks), by the file name each bundle gets: the name the code that starts it uses. */
const THREAD_ENTRIES = {
  worker: 'src/vcpu/worker.ts',
  'board-worker': 'src/board/board-worker.ts',
  'supervisor-main': 'src/domains/supervisor-main.ts',
};

/**
 * The command lines' entry points (CommonJS files, each with a code cache), by file name (.cjs):
 * cli, tskvm's and tskvm-qemu's every command; run, `tskvm run` alone, without what a run never
 * reaches (`omit`: the dynamic imports of src/cli/main.ts that only other commands make).
 */
const COMMAND_ENTRIES = {
  cli: { entry: 'scripts/cli-entry.mjs', omit: [] },
  run: { entry: 'scripts/run-entry.mjs', omit: ['src/cli/domains.ts', 'src/doctor.ts'] },
};

/** What import.meta.url becomes in a CommonJS bundle: a parameter the loader passes (src/cli/code-cache.cts's META_URL_NAME). */
const META_URL_NAME = '__tskvmImportMetaUrl';

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
    // mkdtemp makes it private (0700): every user who runs the CLI reads it.
    chmodSync(fresh, 0o755);
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
  await prepareCodeCaches();
}

async function build(esbuild, outdir) {
  const common = {
    absWorkingDir: ROOT,
    outdir,
    bundle: true,
    platform: 'node',
    target: 'node20',
    external: EXTERNAL,
    // No source maps: they would double the package; the bundle keeps every name and a
    // `// src/<file>.ts` line above each module, and the library's dist/ has its maps.
    // The third-party notices of what is bundled (commander, fast-xml-parser...) stay in the output.
    legalComments: 'inline',
    logLevel: 'warning',
  };
  const entries = (table) => Object.fromEntries(Object.entries(table).map(([name, file]) => [name, join(ROOT, file)]));
  await esbuild.build({
    ...common,
    entryPoints: entries(THREAD_ENTRIES),
    format: 'esm',
    // Code the threads share in shared chunks: each entry compiles only what it can run.
    splitting: true,
    chunkNames: '[name]-[hash]',
    banner: { js: BANNER },
  });
  const { bundleText } = codeCacheModule();
  for (const [name, { entry, omit }] of Object.entries(COMMAND_ENTRIES)) {
    const command = await esbuild.build({
      ...common,
      entryPoints: { [name]: join(ROOT, entry) },
      format: 'cjs',
      outExtension: { '.js': '.cjs' },
      define: { 'import.meta.url': META_URL_NAME },
      plugins: [omitModules(name, omit)],
      write: false,
    });
    for (const file of command.outputFiles) {
      writeFileSync(file.path, bundleText(await asciiOnly(esbuild, file.text, file.path)), 'latin1');
    }
  }
}

/**
 * An esbuild plugin that leaves the modules `omit` (paths from the root) out of the bundle `name`:
 * a dynamic import of one gets a module that throws, naming the bundle, should the code that
 * makes it ever run there.
 */
function omitModules(name, omit) {
  const omitted = new Set(omit.map((file) => join(ROOT, file)));
  return {
    name: 'tskvm-omit',
    setup(build) {
      if (omitted.size === 0) return;
      build.onResolve({ filter: /.*/ }, async (args) => {
        if (args.kind !== 'dynamic-import' || args.pluginData === 'tskvm-omit') return undefined;
        const resolved = await build.resolve(args.path, {
          kind: args.kind,
          importer: args.importer,
          resolveDir: args.resolveDir,
          pluginData: 'tskvm-omit',
        });
        return omitted.has(resolved.path) ? { path: resolved.path, namespace: 'tskvm-omit' } : undefined;
      });
      build.onLoad({ filter: /.*/, namespace: 'tskvm-omit' }, (args) => ({
        contents: `throw new Error(${JSON.stringify(`internal error: ${args.path.slice(ROOT.length + 1)} is not in dist/bundle/${name}.cjs`)});`,
        loader: 'js',
      }));
    },
  };
}

/**
 * The command lines' code caches, made once the bundles are in their place (a cache names the
 * file it was made for: src/cli/code-cache.cts): the top level, then a one-exit run's worth
 * where /dev/kvm can be used. A warm-up that fails leaves the top-level cache.
 */
async function prepareCodeCaches() {
  const { prepareCodeCache } = codeCacheModule();
  for (const name of Object.keys(COMMAND_ENTRIES)) {
    const why = await prepareCodeCache(join(OUT, `${name}.cjs`));
    if (why !== undefined) process.stderr.write(`tskvm: ${name}.cjs's code cache holds the top level only: ${why}\n`);
  }
}

/**
 * The bundle in ASCII, which the loader reads as Latin-1 (a copy, ~0.4 ms for 1 MB) instead of
 * decoding UTF-8 (~5-10 ms, and a two-byte string when one character is not ASCII). esbuild
 * escapes every non-ASCII character of strings, regular expressions and names (its default
 * charset) but prints the comments it keeps as they are: those become `\uXXXX` text, and the
 * code is checked to be unchanged (the same minified output without comments).
 */
async function asciiOnly(esbuild, text, where) {
  const ascii = text.replace(/[\u{80}-\u{10ffff}]/gu, (c) => `\\u{${c.codePointAt(0).toString(16)}}`);
  if (ascii === text) return text;
  const code = async (source) =>
    (await esbuild.transform(source, { minify: true, format: 'cjs', platform: 'node', charset: 'ascii' })).code;
  if ((await code(ascii)) !== (await code(text))) throw new Error(`${where}: a non-ASCII character outside a comment`);
  return ascii;
}

/** The loader the bins use (tsc's output), so that the cache is made exactly as it is read. */
function codeCacheModule() {
  const file = join(ROOT, 'dist', 'cli', 'code-cache.cjs');
  try {
    return require(file);
  } catch (err) {
    throw new Error(`cannot load ${file} (${err.message}): run tsc first (\`npm run build:ts\` does)`, { cause: err });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    await bundle();
  } catch (err) {
    process.stderr.write(`tskvm: the bundle build (scripts/bundle.mjs) failed: ${err.message}\n`);
    process.exit(1);
  }
}
