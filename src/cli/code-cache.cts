/**
 * Loads a CommonJS bundle of scripts/bundle.mjs (dist/bundle/cli.cjs, dist/bundle/qemu.cjs) with
 * V8's code cache: `vm.Script` with the `cachedData` made beside it, so that Node deserialises the
 * compiled code instead of parsing and compiling ~1 MB of JavaScript at every launch (Node 20
 * caches no ES module, and has no module.enableCompileCache). A cache V8 rejects (another Node,
 * other V8 flags) or a missing one only costs the compile: the bundle still runs.
 *
 * Such a cache is rewritten when the process exits (then with the functions the run compiled),
 * atomically, by a plain `node` (no V8 flags of its own, which would make the cache another's),
 * where the package's dist/ is writable; any failure to write is ignored. V8 checks a cache
 * against its source by length only, so each bundle starts with a line naming a hash of its
 * contents (`// tskvm-bundle <hash>`) and its cache is named for that hash: a process still
 * running an older bundle never leaves a cache that a same-length newer bundle would accept.
 * The cache's name also carries a hash of the bundle's path: V8 keeps the file name a cache was
 * made under and gives it to every function it holds (stack traces, profiles), so a cache made
 * in another place (the build's staging folder, the machine that packed the package) is not used.
 * The package therefore ships none: its install script makes one in place (`node
 * dist/cli/code-cache.cjs dist/bundle/cli.cjs`, prepareCodeCache), as the build does.
 *
 * Where the addon is built, the bundle and its cache are read by it (native/file_read.c): into
 * memory faulted in at once, the bundle as a string over that memory, which V8 compiles in place.
 */
import type * as ChildProcess from 'node:child_process';
import type * as Crypto from 'node:crypto';
import type * as Fs from 'node:fs';
import type * as Os from 'node:os';
import type * as Module from 'node:module';
import type * as Path from 'node:path';
import type * as Url from 'node:url';
import type * as Vm from 'node:vm';

// CommonJS, as bin/tskvm.js and bin/tskvm-qemu.js are: an entry that needs no ES module loads
// without Node's ES module loader (its modules, and fs/promises and readline behind them).
const { readFileSync, renameSync, rmSync, writeFileSync } = require('node:fs') as typeof Fs;
// node:module's export is the CommonJS loader's Module class, this module's own constructor, plus
// what lib/module.js adds to it when first required (findSourceMap, SourceMap, register: ~0.6 ms
// of loading, the ES module loader's among it): the class alone has createRequire.
const loaderModule = module.constructor as unknown as typeof Module;
const { createRequire } = loaderModule;
const path = require('node:path') as typeof Path;
const { pathToFileURL } = require('node:url') as typeof Url;
const { Script } = require('node:vm') as typeof Vm;

/** The name that `import.meta.url` is replaced with in a bundle (esbuild's `define`): the bundle's own file URL. */
const META_URL_NAME = '__tskvmImportMetaUrl';

/** The first line of a bundle: its contents' hash, which names its code cache. */
const BUNDLE_ID_LINE = /^\/\/ tskvm-bundle ([0-9a-f]{16,64})\n/;

/**
 * What a bundle's CommonJS text is wrapped in: one function of what a CommonJS module gets, plus
 * its file URL. Strict, as the ES modules it was bundled from are. The build writes the bundle
 * wrapped (bundleText), so that the source V8 compiles is the file's text itself, with no copy.
 */
const WRAPPER_HEAD = `(function (exports, require, module, __filename, __dirname, ${META_URL_NAME}) {'use strict';`;
const WRAPPER_TAIL = '\n})';

/** A bound on what the loader reads: far above any bundle or cache the build makes (1.2 and 0.7 MB today). */
const MAX_BUNDLE_BYTES = 64 << 20;

/** A source the build did not wrap (a bundle without an id line, an older build's), wrapped here. */
function wrap(source: string): string {
  const id = BUNDLE_ID_LINE.exec(source)?.[0] ?? '';
  return source.startsWith(WRAPPER_HEAD, id.length) ? source : `${WRAPPER_HEAD}${source}${WRAPPER_TAIL}`;
}

/** A bundle as the build writes it, from esbuild's CommonJS output (ASCII): the id line, then the text, wrapped. */
function bundleText(cjs: string): string {
  const { createHash } = require('node:crypto') as typeof Crypto;
  const wrapped = `${WRAPPER_HEAD}${cjs}${WRAPPER_TAIL}`;
  return bundleIdLine(createHash('sha256').update(wrapped).digest('hex').slice(0, 16)) + wrapped;
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
   * Rewrite it at exit even when V8 took it: the warm-up run of prepareCodeCache, whose cache
   * then holds the functions a run of a guest compiles, not only the modules' top levels.
   */
  refresh?: boolean;
}

/**
 * The cache file of the bundle `file` whose text is `source`, `<file>.<hash>.<place>.cache` (the
 * place: a hash of the bundle's absolute path), or undefined for a bundle without an id line.
 */
function cacheFileOf(file: string, source: string): string | undefined {
  const id = BUNDLE_ID_LINE.exec(source)?.[1];
  const absolute = path.resolve(file);
  return id === undefined ? undefined : `${absolute}.${id}.${placeHash(absolute)}.cache`;
}

/** FNV-1a (32 bits) of a path, in hex: names the place a cache was made for (no crypto to load at launch). */
function placeHash(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return (hash >>> 0).toString(16).padStart(8, '0');
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
  const cachedData = cacheFile === undefined ? undefined : readCache(cacheFile);
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
 * A guest of four instructions (mov al, 7; out 0xf4, al; cli; hlt): the debug-exit port ends the
 * run with status 7 after one exit.
 */
const ONE_EXIT_GUEST = [0xb0, 0x07, 0xe6, 0xf4, 0xfa, 0xf4, 0xeb, 0xfc];
const ONE_EXIT_STATUS = 7;
/** The warm-up run's bound (it takes ~0.2 s): an install waits no longer for a guest that hangs. */
const WARM_UP_TIMEOUT_MS = 20_000;

/**
 * Build and install time, with the bundle where it will be run from: writes its code cache
 * (writeCodeCache), then, where /dev/kvm can be used, runs a one-exit guest through it, which
 * rewrites the cache at exit with the run path compiled too (building the machine, the board, the
 * exit loop: ~20 ms of a launch's CPU here). Without KVM (a build host, a container) the first
 * cache stays, and a run compiles the rest as before. Returns why the warm-up run failed (the
 * first cache then stays), or undefined: it ran, or there is no /dev/kvm to run it on.
 */
async function prepareCodeCache(bundle: string): Promise<string | undefined> {
  const file = path.resolve(bundle);
  await writeCodeCache(file);
  const { accessSync, constants, mkdtempSync } = require('node:fs') as typeof Fs;
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return undefined;
  }
  const { spawnSync } = require('node:child_process') as typeof ChildProcess;
  const { tmpdir } = require('node:os') as typeof Os;
  const dir = mkdtempSync(path.join(tmpdir(), 'tskvm-warm-'));
  try {
    const image = path.join(dir, 'oneexit.bin');
    writeFileSync(image, Buffer.from(ONE_EXIT_GUEST));
    const script = `require(${JSON.stringify(__filename)}).loadBundle(${JSON.stringify(file)}, { refresh: true }).exports.launch(['run', ${JSON.stringify(image)}]);`;
    // A plain node, as the runs that will use the cache: V8 flags would make it another's.
    const env = { ...process.env, NODE_OPTIONS: '' };
    const r = spawnSync(process.execPath, ['-e', script], { stdio: 'ignore', timeout: WARM_UP_TIMEOUT_MS, env });
    return r.status === ONE_EXIT_STATUS ? undefined : `the warm-up run ended with ${r.status ?? r.signal}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A bundle's text: Latin-1 (no decoding: the addon's string over the file's bytes, or a plain
 * copy) when its id line says the build made it, which writes it in ASCII (scripts/bundle.mjs);
 * UTF-8, decoded, otherwise.
 */
function readSource(file: string): string {
  const mapped = fileReads()?.readFileLatin1(file, MAX_BUNDLE_BYTES);
  const text = typeof mapped === 'string' ? mapped : readFileSync(file).toString('latin1');
  return cacheFileOf(file, text) === undefined ? readFileSync(file, 'utf8') : text;
}

/** A bundle's code cache, or undefined when there is none (or it cannot be read). */
function readCache(cacheFile: string): Buffer | undefined {
  const mapped = fileReads()?.readFile(cacheFile, MAX_BUNDLE_BYTES);
  if (typeof mapped === 'object') return mapped;
  try {
    return readFileSync(cacheFile);
  } catch {
    return undefined;
  }
}

/** The addon's whole-file reads (native/file_read.c): a string or Buffer, or -errno. */
interface FileReads {
  readFileLatin1(file: string, max: number): string | number;
  readFile(file: string, max: number): Buffer | number;
}

let reads: FileReads | null | undefined;

/**
 * Where this thread's loaded addon is left for src/kvm/native.ts (ADDON_HANDOFF there): its file
 * and its exports. process.dlopen runs the addon's init again for every call (~0.15 ms), which
 * require() spared by keeping the module; `process` is the thread's own, as the exports must be.
 */
const ADDON_HANDOFF = Symbol.for('tskvm.addon');

/**
 * The addon's reads, where it is built and the run may use it (not under TSKVM_BACKEND=ffi): the
 * addon the bundle loads anyway (src/kvm/native.ts's addonPath, which this mirrors, and which
 * takes the exports loaded here), only sooner. Undefined elsewhere: then the files are read with
 * node:fs.
 */
function fileReads(): FileReads | undefined {
  if (reads !== undefined) return reads ?? undefined;
  reads = null;
  if (process.env.TSKVM_BACKEND === 'ffi') return undefined;
  const addon = process.env.TSKVM_ADDON_PATH || path.join(__dirname, '..', '..', 'build', 'Release', 'tskvm.node');
  try {
    // process.dlopen, as src/kvm/native.ts loads it: require() would resolve the path first.
    const file = path.resolve(addon);
    const addonModule = { exports: {} as Partial<FileReads> };
    process.dlopen(addonModule, file);
    (process as unknown as Record<symbol, unknown>)[ADDON_HANDOFF] = { file, exports: addonModule.exports };
    const loaded = addonModule.exports;
    if (typeof loaded.readFileLatin1 === 'function' && typeof loaded.readFile === 'function') reads = loaded as FileReads;
  } catch {
    // Not built (the ffi-rs backend's install), or not loadable: node:fs reads the files.
  }
  return reads ?? undefined;
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
    fileUrl(file),
  );
  return bundleModule.exports;
}

/** Characters that a file URL's path keeps as they are (letters, digits, `/._-`: pathToFileURL escapes even `~`). */
const URL_PLAIN_PATH = /^\/[A-Za-z0-9/._-]*$/;

/**
 * pathToFileURL(file).href, without node:url's conversion (~0.6 ms cold, and nothing else in
 * `tskvm run` needs it) for an absolute path of plain characters, the usual install path. `file`
 * comes from path.resolve: no `.` or `..` segments for the URL to fold.
 */
function fileUrl(file: string): string {
  return URL_PLAIN_PATH.test(file) ? `file://${file}` : pathToFileURL(file).href;
}

/**
 * Node built-ins that modules load at their top level but a plain `tskvm run` never calls, and
 * that cost milliseconds to load (Node compiles each built-in module on first use):
 * child_process (commander's, for executable subcommands; the domain commands'), zlib (the
 * snapshot format), crypto (the BIOS's snapshot config, the domains' UUIDs), fs/promises (the
 * snapshot files; with it, Node's readline and file-watcher internals), worker_threads (a
 * one-vCPU run keeps its vCPU on the main thread, and reads isMainThread only at the end), net
 * (a FIFO or socket as --serial-input, the gdb stub; Node loads it itself for a stdio stream on a
 * pipe or terminal, which a plain run never makes: src/cli/stdio.ts), os (an error's errno name,
 * a signal's exit status, the host's CPUs for an SMP guest, a snapshot's header).
 */
const LAZY_BUILTINS = new Set(
  ['child_process', 'zlib', 'crypto', 'fs/promises', 'worker_threads', 'net', 'os'].flatMap((name) => [name, `node:${name}`]),
);

/**
 * The bundle's `require`: a lazy built-in is a stand-in that loads the real module on first
 * use of any of its properties (esbuild reads a named import at the call, `(0, zlib.gzipSync)(...)`,
 * and a namespace or default import copies every property, which loads it at once: still correct).
 */
function lazyBuiltinRequire(real: NodeJS.Require): NodeJS.Require {
  const lazy = (id: string): unknown => {
    if (id === 'module' || id === 'node:module') return moduleBuiltin(() => real(id) as object);
    return LAZY_BUILTINS.has(id) ? lazyModule(() => real(id) as object) : real(id);
  };
  return Object.assign(lazy, real);
}

/**
 * node:module for the bundle (its createRequire calls): the loader's Module class, which is that
 * module's export; a property only lib/module.js adds (findSourceMap...) loads it first.
 */
function moduleBuiltin(load: () => object): object {
  return new Proxy(loaderModule, {
    get: (target, key) => (key in target ? Reflect.get(target, key) : Reflect.get(load(), key)) as unknown,
  });
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

// `node dist/cli/code-cache.cjs BUNDLE...`: the package's install script (package.json), which
// makes each bundle's cache in place, one after the other. Exit status 0 when every cache was
// written, 1 when one could not be.
if (require.main === module) {
  const bundles = process.argv.slice(2);
  const fail = (bundle: string | undefined, why: string): void => {
    process.stderr.write(`tskvm: no code cache for ${bundle ?? 'the bundle'} (${why}); each launch compiles the CLI instead (slower)\n`);
    process.exitCode = 1;
  };
  if (bundles.length === 0) fail(undefined, 'usage: node code-cache.cjs BUNDLE...');
  void (async () => {
    for (const bundle of bundles) {
      try {
        const why = await prepareCodeCache(bundle);
        if (why !== undefined) process.stderr.write(`tskvm: code cache of ${bundle}: top level only (${why})\n`);
      } catch (err) {
        fail(bundle, (err as Error).message);
      }
    }
  })();
}

export = { META_URL_NAME, bundleIdLine, bundleText, cacheFileOf, fileUrl, loadBundle, prepareCodeCache, writeCodeCache };
