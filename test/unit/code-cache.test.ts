/**
 * The loader of the command lines' CommonJS bundles (src/cli/code-cache.cts): a bundle runs with
 * its V8 code cache, and just as well without one (missing, or one V8 rejects); a cache is named
 * for its bundle's contents and place; a rejected or missing cache is rewritten at exit; the
 * built-ins it defers are loaded at their first use; the addon reads the files where it is built,
 * node:fs elsewhere. Small bundles written here, not the real ones (those the launch and package
 * tests run), and the loader as tsc builds it in dist/.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type CodeCache from '../../src/cli/code-cache.cjs';

// CommonJS (src/cli/code-cache.cts), as the bins load it: the tsc output in dist/ (npm run build:ts).
const codeCache = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'code-cache.cjs');
const { bundleIdLine, bundleText, cacheFileOf, fileUrl, loadBundle, writeCodeCache } = createRequire(import.meta.url)(
  codeCache,
) as typeof CodeCache;

/** A bundle as scripts/bundle.mjs writes one: its id line, then the CommonJS text, wrapped. */
function writeBundle(dir: string, body: string, name = 'b.cjs'): string {
  const file = path.join(dir, name);
  writeFileSync(file, bundleText(body), 'latin1');
  return file;
}

/** The cache file the loader looks for beside `file`. */
const cacheOf = (file: string): string => cacheFileOf(file, readFileSync(file, 'latin1'))!;

/**
 * A bundle's text, unique to each test: V8 keeps what it compiled for a source in the process
 * and would then not look at the cache given for the same text again.
 */
const body = (): string => `// test ${expect.getState().currentTestName}
function square(x) { return x * x; }
exports.answer = square(6) + 6;
exports.url = __tskvmImportMetaUrl;
exports.strict = (function () { return this === undefined; })();
`;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tskvm-code-cache-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('loadBundle', () => {
  it("runs a bundle with the cache the build wrote, as strict code that sees its own file's URL", async () => {
    const text = body();
    const file = writeBundle(dir, text);
    const cacheFile = await writeCodeCache(file);
    expect(cacheFile).toBe(cacheOf(file));
    const loaded = loadBundle(file, { rewrite: false });
    expect(loaded.cache).toBe('accepted');
    expect(loaded.cacheFile).toBe(cacheFile);
    expect(loaded.exports).toEqual({ answer: 42, url: pathToFileURL(file).href, strict: true });
  });

  it('runs a bundle whose cache is missing', () => {
    const file = writeBundle(dir, body());
    const loaded = loadBundle(file, { rewrite: false });
    expect(loaded.cache).toBe('missing');
    expect((loaded.exports as { answer: number }).answer).toBe(42);
    expect(readdirSync(dir)).toEqual(['b.cjs']);
  });

  it('runs a bundle whose cache V8 rejects (not a cache, or the cache of another text)', async () => {
    const other = readFileSync(await writeCodeCache(writeBundle(dir, `${body()}exports.more = 1;\n`, 'other.cjs')));
    for (const [i, bytes] of [Buffer.from('not a V8 code cache'), Buffer.alloc(4096, 0xff), other].entries()) {
      const file = writeBundle(dir, `${body()}// ${i}\n`);
      writeFileSync(cacheOf(file), bytes);
      const loaded = loadBundle(file, { rewrite: false });
      expect(loaded.cache).toBe('rejected');
      expect((loaded.exports as { answer: number }).answer).toBe(42);
    }
  });

  it('names the cache for the bundle text, so that a same-length edit does not use the old one', async () => {
    const one = body();
    const two = one.replace('+ 6', '+ 7');
    expect(two.length).toBe(one.length);
    const file = path.join(dir, 'b.cjs');
    expect(cacheFileOf(file, bundleText(one))).not.toBe(cacheFileOf(file, bundleText(two)));
    expect(cacheFileOf(path.join(dir, 'x.cjs'), 'no id line\n')).toBeUndefined();
  });

  it("names the cache for the bundle's place too: the same bundle elsewhere looks for a cache of its own", () => {
    const text = bundleText(body());
    const here = cacheFileOf(path.join(dir, 'a', 'b.cjs'), text)!;
    const there = cacheFileOf(path.join(dir, 'c', 'b.cjs'), text)!;
    expect(path.basename(here)).not.toBe(path.basename(there));
    expect(path.dirname(there)).toBe(path.join(dir, 'c'));
    expect(path.basename(there)).toMatch(/^b\.cjs\.[0-9a-f]{16}\.[0-9a-f]{8}\.cache$/);
  });

  it('runs a bundle of an older build (an id line, the text not wrapped) as before', () => {
    const text = body();
    const file = path.join(dir, 'old.cjs');
    writeFileSync(file, bundleIdLine(createHash('sha256').update(text).digest('hex').slice(0, 16)) + text, 'latin1');
    const loaded = loadBundle(file, { rewrite: false });
    expect(loaded.cache).toBe('missing');
    expect(loaded.exports).toMatchObject({ answer: 42, strict: true });
  });

  it('runs a bundle without an id line (UTF-8, no cache)', () => {
    const file = path.join(dir, 'plain.cjs');
    writeFileSync(file, "exports.text = 'caf\u00e9';\n", 'utf8');
    const loaded = loadBundle(file, { rewrite: false });
    expect(loaded.cache).toBe('missing');
    expect(loaded.exports).toEqual({ text: 'caf\u00e9' });
  });
});

describe("a bundle's file URL (its import.meta.url)", () => {
  it('is what pathToFileURL gives, for any absolute path path.resolve makes', () => {
    const segment = fc.stringMatching(/^[A-Za-z0-9._~ %#?\\\n\t'"@:;,=+&$!()*\u00e9\u4e2d-]{1,8}$/);
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 5 }), (segments) => {
        const file = path.resolve('/', ...segments);
        expect(fileUrl(file)).toBe(pathToFileURL(file).href);
      }),
      { numRuns: 2000 },
    );
    for (const file of ['/work/main/dist/bundle/run.cjs', '/a b/c#d?e', '/100%/x', '/tmp/\u00e9t\u00e9/x.cjs', '/x\\y', '/'])
      expect(fileUrl(file)).toBe(pathToFileURL(file).href);
  });
});

describe("the addon's whole-file reads (native/file_read.c), which the loader uses", () => {
  const addon = createRequire(import.meta.url)(path.resolve(path.dirname(codeCache), '..', '..', 'build', 'Release', 'tskvm.node')) as {
    readFileLatin1(file: string, max: number): string | number;
    readFile(file: string, max: number): Buffer | number;
  };
  const ERRNO = { ENOENT: 2, EINVAL: 22, EFBIG: 27, ENODATA: 61 };

  it('reads a whole file as Latin-1 text or as bytes', () => {
    const file = path.join(dir, 'f.bin');
    const bytes = Buffer.from([0x41, 0x00, 0xe9, 0xff, 0x7f]);
    writeFileSync(file, bytes);
    expect(addon.readFileLatin1(file, 1 << 20)).toBe(bytes.toString('latin1'));
    const read = addon.readFile(file, 1 << 20);
    expect(Buffer.isBuffer(read) && read.equals(bytes)).toBe(true);
  });

  it('refuses past its bound, and what is not a regular file with a size, with -errno', () => {
    const file = path.join(dir, 'big.bin');
    writeFileSync(file, Buffer.alloc(4097, 1));
    for (const read of [addon.readFile, addon.readFileLatin1]) {
      expect(read(file, 4096)).toBe(-ERRNO.EFBIG);
      expect(read(path.join(dir, 'none'), 4096)).toBe(-ERRNO.ENOENT);
      expect(read(dir, 4096)).toBe(-ERRNO.EINVAL);
      expect(read('/proc/self/status', 4096)).toBe(-ERRNO.ENODATA); // st_size 0: the loader reads it with node:fs
    }
  });
});

/** Runs `script` in a plain node (no V8 flags of its own: `node -` reads it from stdin), with the loader of dist/. */
function node(script: string, env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['-'], {
    input: `const { loadBundle } = require(${JSON.stringify(codeCache)});\n${script}`,
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '', ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('loadBundle, in a process of its own', () => {
  it('rewrites a missing cache at exit, which the next run accepts', () => {
    const file = writeBundle(dir, body());
    const script = `const r = loadBundle(${JSON.stringify(file)}, { rewrite: true }); console.log(r.cache, r.exports.answer);`;
    expect(node(script)).toMatchObject({ status: 0, stdout: 'missing 42\n' });
    expect(existsSync(loadBundle(file, { rewrite: false }).cacheFile)).toBe(true);
    expect(node(script)).toMatchObject({ status: 0, stdout: 'accepted 42\n' });
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it("rewrites an accepted cache at exit when asked to refresh it (the build's warm-up run), with what the run compiled", async () => {
    const text = `${body()}exports.later = function later() { return [1, 2, 3].map((x) => x * 2).join(','); };\n`;
    const file = writeBundle(dir, text);
    const cacheFile = await writeCodeCache(file);
    const before = readFileSync(cacheFile);
    const script = `const r = loadBundle(${JSON.stringify(file)}, { refresh: true }); console.log(r.cache, r.exports.later());`;
    expect(node(script)).toMatchObject({ status: 0, stdout: 'accepted 2,4,6\n' });
    const after = readFileSync(cacheFile);
    expect(after.equals(before)).toBe(false); // it now holds \`later\`, compiled by the run
    expect(node(script)).toMatchObject({ status: 0, stdout: 'accepted 2,4,6\n' });
  });

  it('gives a bundle moved elsewhere with its cache none (V8 would name the old place in every stack), and its stacks name its own file', async () => {
    const text = `${body()}exports.where = function where() { return new Error('here').stack.split('\\n')[1]; };\n`;
    mkdirSync(path.join(dir, 'made'));
    mkdirSync(path.join(dir, 'moved'));
    const made = writeBundle(path.join(dir, 'made'), text);
    const cacheFile = await writeCodeCache(made);
    const moved = path.join(dir, 'moved', 'b.cjs');
    copyFileSync(made, moved);
    copyFileSync(cacheFile, path.join(dir, 'moved', path.basename(cacheFile)));
    const script = `const r = loadBundle(${JSON.stringify(moved)}, { rewrite: false }); console.log(r.cache, r.exports.where());`;
    const r = node(script);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toMatch(/^missing +at (Object\.)?where \(.*\/moved\/b\.cjs:\d+:\d+\)$/);
  });

  it('reads the bundle and its cache with the addon (mapped into the process) where it is built, with node:fs without it, to the same effect', async () => {
    const file = writeBundle(dir, body());
    await writeCodeCache(file);
    const script = `const r = loadBundle(${JSON.stringify(file)}, { rewrite: false });
console.log(r.cache, r.exports.answer, require('node:fs').readFileSync('/proc/self/maps', 'utf8').includes('/tskvm.node'));`;
    expect(node(script)).toMatchObject({ status: 0, stdout: 'accepted 42 true\n' });
    expect(node(script, { TSKVM_ADDON_PATH: path.join(dir, 'none.node') })).toMatchObject({ status: 0, stdout: 'accepted 42 false\n' });
    expect(node(script, { TSKVM_BACKEND: 'ffi' })).toMatchObject({ status: 0, stdout: 'accepted 42 false\n' });
  });

  it('hands the addon it loaded to the KVM layer on the same thread, which loads its own in a worker', async () => {
    const file = writeBundle(dir, body());
    await writeCodeCache(file);
    const nativeJs = pathToFileURL(path.resolve(path.dirname(codeCache), '..', 'kvm', 'native.js')).href;
    const script = `loadBundle(${JSON.stringify(file)}, { rewrite: false });
const handed = process[Symbol.for('tskvm.addon')];
const { Worker } = require('node:worker_threads');
import(${JSON.stringify(nativeJs)}).then(({ native }) => {
  const worker = new Worker(\`import(\${JSON.stringify(${JSON.stringify(nativeJs)})}).then(({ native }) => require('node:worker_threads').parentPort.postMessage([process[Symbol.for('tskvm.addon')] === undefined, typeof native().run]))\`, { eval: true });
  worker.once('message', (inWorker) => { console.log(JSON.stringify([handed?.exports === native(), typeof native().run, ...inWorker])); worker.terminate(); });
});`;
    expect(node(script)).toMatchObject({ status: 0, stdout: '[true,"function",true,"function"]\n' });
  });

  it('loads a deferred built-in (zlib, crypto here) only when the bundle first uses it', () => {
    const file = writeBundle(
      dir,
      `const zlib = require('node:zlib'); const crypto = require('node:crypto');
exports.gzip = (text) => zlib.gunzipSync(zlib.gzipSync(text)).toString();
exports.uuid = () => crypto.randomUUID();`,
    );
    const script = `
const loaded = (name) => process.moduleLoadList.includes('NativeModule ' + name);
const { exports } = loadBundle(${JSON.stringify(file)}, { rewrite: false });
const before = [loaded('zlib'), loaded('crypto')];
const text = exports.gzip('round trip');
console.log(JSON.stringify({ before, text, after: [loaded('zlib'), loaded('crypto')], uuid: /^[0-9a-f-]{36}$/.test(exports.uuid()) }));`;
    const r = node(script);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ before: [false, false], text: 'round trip', after: [true, false], uuid: true });
  });

  it("gives the bundle node:module's createRequire without loading the rest of node:module, which its other properties load", () => {
    const file = writeBundle(
      dir,
      `const { createRequire } = require('node:module'); const m = require('node:module');
exports.fsByCreateRequire = () => createRequire(__filename)('node:fs') === require('node:fs');
exports.findSourceMap = () => typeof m.findSourceMap;`,
    );
    // A file, not `node -`: Node's own eval of a script loads node:module.
    const main = path.join(dir, 'main.cjs');
    writeFileSync(
      main,
      `const { loadBundle } = require(${JSON.stringify(codeCache)});
const loaded = () => process.moduleLoadList.includes('NativeModule module');
const bundle = loadBundle(${JSON.stringify(file)}, { rewrite: false }).exports;
const fs = bundle.fsByCreateRequire();
const before = loaded();
const findSourceMap = bundle.findSourceMap();
console.log(JSON.stringify({ fs, before, findSourceMap, after: loaded() }));`,
    );
    const r = spawnSync(process.execPath, [main], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ fs: true, before: false, findSourceMap: 'function', after: true });
  });
});
