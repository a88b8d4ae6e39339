/**
 * Loads a CommonJS bundle of scripts/bundle.mjs (dist/bundle/cli.cjs, dist/bundle/qemu.cjs) with
 * V8's code cache: `vm.Script` with the `cachedData` the build produced beside it, so that Node
 * deserialises the compiled code instead of parsing and compiling ~1 MB of JavaScript at every
 * launch (Node 20 caches no ES module, and has no module.enableCompileCache). A cache V8 rejects
 * (another Node, other V8 flags) or a missing one only costs the compile: the bundle still runs.
 *
 * Such a cache is rewritten when the process exits (then with the functions the run compiled),
 * atomically, by a plain `node` (no V8 flags of its own, which would make the cache another's),
 * where the package's dist/ is writable; any failure to write is ignored. V8 checks a cache
 * against its source by length only, so each bundle starts with a line naming a hash of its
 * contents (`// tskvm-bundle <hash>`) and its cache is named for that hash: a process still
 * running an older bundle never leaves a cache that a same-length newer bundle would accept.
 */
import type * as Fs from 'node:fs';
import type * as Module from 'node:module';
import type * as Path from 'node:path';
import type * as Url from 'node:url';
import type * as Vm from 'node:vm';

// CommonJS, as bin/tskvm.js and bin/tskvm-qemu.js are: an entry that needs no ES module loads
// without Node's ES module loader (its modules, and fs/promises and readline behind them).
const { readFileSync, renameSync, rmSync, writeFileSync } = require('node:fs') as typeof Fs;
const { createRequire } = require('node:module') as typeof Module;
const path = require('node:path') as typeof Path;
const { pathToFileURL } = require('node:url') as typeof Url;
const { Script } = require('node:vm') as typeof Vm;

/** The name that `import.meta.url` is replaced with in a bundle (esbuild's `define`): the bundle's own file URL. */
const META_URL_NAME = '__tskvmImportMetaUrl';

/** The first line of a bundle: its contents' hash, which names its code cache. */
const BUNDLE_ID_LINE = /^\/\/ tskvm-bundle ([0-9a-f]{16,64})\n/;

/**
 * The bundle's text as one function of what a CommonJS module gets, plus its file URL. Strict, as
 * the ES modules it was bundled from (and the ESM bundle before it) are.
 */
function wrap(source: string): string {
  return `(function (exports, require, module, __filename, __dirname, ${META_URL_NAME}) {'use strict';${source}\n})`;
}

/** How a bundle's code cache was used: V8 took it, refused it, or there was none. */
type CacheUse = 'accepted' | 'rejected' | 'missing';

interface LoadedBundle {
  /** The bundle's `module.exports`. */
  exports: unknown;
  cache: CacheUse;
  /** Where its cache is (or would be) kept. */
  cacheFile: string;
}

interface LoadOptions {
  /** Rewrite a rejected or missing cache at exit (default: only from a plain `node`, see the header). */
  rewrite?: boolean;
  /**
   * Rewrite it at exit even when V8 took it: the build's warm-up run (scripts/bundle.mjs), whose
   * cache then holds the functions a run of a guest compiles, not only the modules' top levels.
   */
  refresh?: boolean;
}

/** The cache file of the bundle `file` whose text is `source`: `<file>.<hash>.cache`, or undefined for a bundle without an id line. */
function cacheFileOf(file: string, source: string): string | undefined {
  const id = BUNDLE_ID_LINE.exec(source)?.[1];
  return id === undefined ? undefined : `${file}.${id}.cache`;
}

/** The id line a bundle's text gets at build time (scripts/bundle.mjs): `hash` of the text after it. */
function bundleIdLine(hash: string): string {
  return `// tskvm-bundle ${hash}\n`;
}

/** Runs the CommonJS bundle `file` (its top level), with its code cache when V8 accepts it. */
function loadBundle(bundle: string, options: LoadOptions = {}): LoadedBundle {
  const file = path.resolve(bundle);
  const source = readSource(file);
  const cacheFile = cacheFileOf(file, source);
  let cachedData: Buffer | undefined;
  if (cacheFile !== undefined) {
    try {
      cachedData = readFileSync(cacheFile);
    } catch {
      cachedData = undefined;
    }
  }
  const script = new Script(wrap(source), { filename: file, ...(cachedData ? { cachedData } : {}) });
  const cache: CacheUse = cachedData === undefined ? 'missing' : script.cachedDataRejected === true ? 'rejected' : 'accepted';
  const bundleExports = runTopLevel(script, file);
  const rewrite = options.rewrite ?? (process.execArgv.length === 0 && !process.env.NODE_OPTIONS);
  if ((options.refresh === true || (cache !== 'accepted' && rewrite)) && cacheFile !== undefined) {
    // At exit, the cache holds what this run compiled too, not only the top level.
    process.once('exit', () => {
      try {
        writeAtomically(cacheFile, script.createCachedData());
      } catch {
        // A read-only install, a full disk: the next run compiles again, that is all.
      }
    });
  }
  return { exports: bundleExports, cache, cacheFile: cacheFile ?? `${file}.cache` };
}

/**
 * Build time: runs the bundle's top level without a cache, then its `warmCodeCache()` when it
 * exports one (which evaluates the modules its command loads lazily, so that they are compiled
 * too), and writes the code cache of what was compiled. Throws when the bundle has no id line or
 * its top level fails.
 */
async function writeCodeCache(bundle: string): Promise<string> {
  const file = path.resolve(bundle);
  const source = readSource(file);
  const cacheFile = cacheFileOf(file, source);
  if (cacheFile === undefined) throw new Error(`${file} has no \`// tskvm-bundle <hash>\` first line`);
  const script = new Script(wrap(source), { filename: file });
  const entry = runTopLevel(script, file) as { warmCodeCache?: () => Promise<void> };
  if (typeof entry.warmCodeCache === 'function') await entry.warmCodeCache();
  writeAtomically(cacheFile, script.createCachedData());
  return cacheFile;
}

/**
 * A bundle's text: Latin-1 (a plain copy) when its id line says the build made it, which writes
 * it in ASCII (scripts/bundle.mjs); UTF-8, decoded, otherwise.
 */
function readSource(file: string): string {
  const bytes = readFileSync(file);
  const text = bytes.toString('latin1');
  return cacheFileOf(file, text) === undefined ? bytes.toString('utf8') : text;
}

function runTopLevel(script: Vm.Script, file: string): unknown {
  const fn = script.runInThisContext() as (...args: unknown[]) => void;
  const bundleModule = { exports: {} as unknown };
  fn.call(
    bundleModule.exports,
    bundleModule.exports,
    lazyBuiltinRequire(createRequire(file)),
    bundleModule,
    file,
    path.dirname(file),
    pathToFileURL(file).href,
  );
  return bundleModule.exports;
}

/**
 * Node built-ins that modules load at their top level but a plain `tskvm run` never calls, and
 * that cost milliseconds to load (Node compiles each built-in module on first use):
 * child_process (commander's, for executable subcommands; the domain commands'), zlib (the
 * snapshot format), crypto (the BIOS's snapshot config, the domains' UUIDs), fs/promises (the
 * snapshot files; with it, Node's readline and file-watcher internals), worker_threads (a
 * one-vCPU run keeps its vCPU on the main thread, and reads isMainThread only at the end), net
 * (a FIFO or socket as --serial-input, the gdb stub; Node loads it itself for a stdio stream on a
 * pipe or terminal, which a plain run never makes: src/cli/stdio.ts).
 */
const LAZY_BUILTINS = new Set(
  ['child_process', 'zlib', 'crypto', 'fs/promises', 'worker_threads', 'net'].flatMap((name) => [name, `node:${name}`]),
);

/**
 * The bundle's `require`: a lazy built-in is a stand-in that loads the real module on first
 * use of any of its properties (esbuild reads a named import at the call, `(0, zlib.gzipSync)(...)`,
 * and a namespace or default import copies every property, which loads it at once: still correct).
 */
function lazyBuiltinRequire(real: NodeJS.Require): NodeJS.Require {
  const lazy = (id: string): unknown => (LAZY_BUILTINS.has(id) ? lazyModule(() => real(id) as object) : real(id));
  return Object.assign(lazy, real);
}

function lazyModule(load: () => object): object {
  let module: object | undefined;
  const target = (): object => (module ??= load());
  return new Proxy(
    {},
    {
      get: (_, key) => Reflect.get(target(), key) as unknown,
      has: (_, key) => Reflect.has(target(), key),
      ownKeys: () => Reflect.ownKeys(target()),
      // A stand-in's properties must be configurable (the proxy's own target has none).
      getOwnPropertyDescriptor: (_, key) => {
        const descriptor = Reflect.getOwnPropertyDescriptor(target(), key);
        return descriptor && { ...descriptor, configurable: true };
      },
      set: (_, key, value) => Reflect.set(target(), key, value),
    },
  );
}

/** Written beside, then renamed over: a reader sees the old cache or the new one, never part of one. */
function writeAtomically(file: string, data: Buffer): void {
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(temporary, data);
    renameSync(temporary, file);
  } catch (err) {
    rmSync(temporary, { force: true });
    throw err;
  }
}

export = { META_URL_NAME, bundleIdLine, cacheFileOf, loadBundle, writeCodeCache };
