/**
 * Guests written inside a test: a GNU as (or NASM) source string assembled with the host's
 * binutils into the image tskvm boots — a flat binary (kvmtool's convention: loaded at 0x10000,
 * entered in real mode at offset 0), a boot sector (512 bytes ending 0x55 0xAA, linked at 0x7C00)
 * or an ELF32/ELF64 kernel (linked at 1 MiB) — so a test file can keep its guest next to its
 * assertions. Results are cached by a hash of everything that goes in (source, options, tools,
 * include files, extra objects), so a suite assembles each guest once, not once per run. A source
 * that does not assemble is a UsageError (EIMAGE) showing the assembler's messages with the lines
 * they point at.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { UsageError } from '../errors.js';

/** What to build. */
export type AssembleFormat = 'flat' | 'bootsector' | 'elf32' | 'elf64';
/** Which assembler reads the source: GNU as (AT&T syntax, the default) or NASM. */
export type AssemblerSyntax = 'gas' | 'nasm';

export interface AssembleOptions {
  /** Default 'flat'. */
  format?: AssembleFormat;
  /** Default 'gas'. */
  syntax?: AssemblerSyntax;
  /**
   * The link address: default 0 for flat binaries (they run at CS=0x1000, IP=0), 0x7C00 for boot
   * sectors, 0x100000 (1 MiB) for ELF kernels. NASM's flat and boot-sector output has no link
   * step: such a source sets its own `org` (and `bits`).
   */
  origin?: number;
  /** An ELF's entry symbol (default `_start`; without it the entry is the start of .text). */
  entry?: string;
  /** The source's file name in messages (default guest.S, or guest.asm for NASM). */
  name?: string;
  /** Directories for `.include` (GNU as `-I`, NASM `-i`); their files are part of the cache key. */
  includeDirs?: string[];
  /** Object files (e.g. compiled C) to link with the source; not for NASM flat or boot-sector output. */
  objects?: string[];
  /** Where assembled images are kept (default: TSKVM_CACHE_DIR, else node_modules/.cache/tskvm, else the temp directory). */
  cacheDir?: string;
}

/** Default link addresses, as tskvm loads each kind (README, "How each kind of image starts"). */
const FLAT_ORIGIN = 0x0;
const BOOT_ORIGIN = 0x7c00;
const KERNEL_ORIGIN = 0x100000;
const BOOT_SECTOR_SIZE = 512;
const BOOT_SIGNATURE_OFFSET = 510;
const BOOT_SIGNATURE = [0x55, 0xaa] as const;
const PAGE_SIZE = 0x1000;
/** Part of the cache key: bump it when the way images are built changes. */
const BUILD_RECIPE = 'tskvm-assemble-1';
/** Assembler output kept for error messages. */
const TOOL_OUTPUT_MAX = 1 << 20;

/** Assembles `source` and returns the image's bytes. */
export async function assemble(source: string, options: AssembleOptions = {}): Promise<Buffer> {
  return readFile(await assembleFile(source, options));
}

/**
 * Assembles `source` and returns the path of the image in the cache (an ELF keeps its symbols,
 * for gdb). The file is never rewritten once there: treat it as read-only.
 */
export async function assembleFile(source: string, options: AssembleOptions = {}): Promise<string> {
  const job = assembleJob(source, options);
  const out = path.join(job.cacheDir, `${job.key}${job.extension}`);
  if (existsSync(out)) return out;
  // The same guest asked for twice at once (tests in parallel) is built once.
  let pending = inFlight.get(out);
  if (!pending) {
    pending = build(job, out).finally(() => inFlight.delete(out));
    inFlight.set(out, pending);
  }
  await pending;
  return out;
}

const inFlight = new Map<string, Promise<void>>();

interface Tools {
  as: string;
  ld: string;
  objcopy: string;
  nasm: string;
}

interface AssembleJob {
  source: string;
  format: AssembleFormat;
  syntax: AssemblerSyntax;
  origin: number;
  entry: string;
  name: string;
  includeDirs: string[];
  objects: string[];
  cacheDir: string;
  tools: Tools;
  key: string;
  extension: string;
}

/** The options checked and defaulted, and the cache key of what they build. */
function assembleJob(source: string, options: AssembleOptions): AssembleJob {
  if (typeof source !== 'string' || source.trim() === '') throw new UsageError('assemble: the source is empty; pass the assembly text');
  const format = options.format ?? 'flat';
  if (!['flat', 'bootsector', 'elf32', 'elf64'].includes(format)) {
    throw new UsageError(`assemble: options.format '${String(format)}' is not one of flat, bootsector, elf32, elf64`);
  }
  const syntax = options.syntax ?? 'gas';
  if (syntax !== 'gas' && syntax !== 'nasm') throw new UsageError(`assemble: options.syntax '${String(syntax)}' is not gas or nasm`);
  const origin = options.origin ?? (format === 'flat' ? FLAT_ORIGIN : format === 'bootsector' ? BOOT_ORIGIN : KERNEL_ORIGIN);
  if (!Number.isSafeInteger(origin) || origin < 0 || origin > 0xffffffff) {
    throw new UsageError(`assemble: options.origin ${origin} is not an address from 0 to 0xFFFFFFFF`);
  }
  const objects = (options.objects ?? []).map((file) => path.resolve(file));
  if (syntax === 'nasm' && !isElf(format) && objects.length > 0) {
    throw new UsageError('assemble: NASM flat and boot-sector output is not linked, so options.objects cannot be used with it');
  }
  const name = options.name ?? (syntax === 'nasm' ? 'guest.asm' : 'guest.S');
  if (name !== path.basename(name) || name === '' || name.startsWith('.')) {
    throw new UsageError(`assemble: options.name '${name}' must be a plain file name (it names the source in messages)`);
  }
  const includeDirs = (options.includeDirs ?? []).map((dir) => path.resolve(dir));
  const tools: Tools = {
    as: process.env.AS || 'as',
    ld: process.env.LD || 'ld',
    objcopy: process.env.OBJCOPY || 'objcopy',
    nasm: process.env.NASM || 'nasm',
  };
  const entry = options.entry ?? '_start';
  const hash = createHash('sha256');
  hash.update(JSON.stringify({ recipe: BUILD_RECIPE, format, syntax, origin, entry, tools, source }));
  for (const dir of includeDirs) for (const [file, digest] of directoryDigests(dir)) hash.update(`\0include ${file} ${digest}`);
  for (const file of objects) hash.update(`\0object ${fileDigest(file, 'options.objects')}`);
  return {
    source,
    format,
    syntax,
    origin,
    entry,
    name,
    includeDirs,
    objects,
    cacheDir: options.cacheDir ? path.resolve(options.cacheDir) : defaultCacheDir(),
    tools,
    key: hash.digest('hex').slice(0, 32),
    extension: format === 'bootsector' ? '.boot.bin' : isElf(format) ? '.elf' : '.bin',
  };
}

function isElf(format: AssembleFormat): boolean {
  return format === 'elf32' || format === 'elf64';
}

/** TSKVM_CACHE_DIR; else the project's node_modules/.cache/tskvm (where build tools keep caches); else a per-user temp directory. */
export function defaultCacheDir(): string {
  if (process.env.TSKVM_CACHE_DIR) return path.resolve(process.env.TSKVM_CACHE_DIR, 'assemble');
  const modules = path.join(process.cwd(), 'node_modules');
  if (existsSync(modules)) return path.join(modules, '.cache', 'tskvm', 'assemble');
  return path.join(tmpdir(), `tskvm-assemble-${userInfo().uid}`);
}

function fileDigest(file: string, what: string): string {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch (err) {
    throw new UsageError(`assemble: ${what}: cannot read ${file}: ${(err as Error).message}`, 'EIMAGE');
  }
}

/** The regular files directly in `dir` with their contents' digests (what `.include` can reach). */
function directoryDigests(dir: string): [string, string][] {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (err) {
    throw new UsageError(`assemble: options.includeDirs: cannot read ${dir}: ${(err as Error).message}`);
  }
  return names.flatMap((name): [string, string][] => {
    const file = path.join(dir, name);
    return statSync(file).isFile() ? [[name, fileDigest(file, 'options.includeDirs')]] : [];
  });
}

/** Builds the image in a private directory, then renames it into the cache (atomic: readers see all or nothing). */
async function build(job: AssembleJob, out: string): Promise<void> {
  await mkdir(job.cacheDir, { recursive: true, mode: 0o700 });
  const work = await mkdtemp(path.join(job.cacheDir, '.build-'));
  try {
    const image = await buildIn(job, work);
    const staged = path.join(work, `image${job.extension}`);
    await writeFile(staged, image);
    await rename(staged, out);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function buildIn(job: AssembleJob, work: string): Promise<Buffer> {
  const src = path.join(work, job.name);
  const object = path.join(work, 'guest.o');
  const linked = path.join(work, 'guest.elf');
  const elf = isElf(job.format);
  const bits64 = job.format === 'elf64';
  if (job.syntax === 'nasm') {
    await writeFile(src, job.source);
    const includes = job.includeDirs.flatMap((dir) => ['-i', `${dir}${path.sep}`]);
    if (!elf) {
      const flat = path.join(work, 'guest.bin');
      await runTool(job, 'nasm', ['-f', 'bin', ...includes, '-o', flat, job.name], work);
      return finish(job, await readFile(flat));
    }
    await runTool(job, 'nasm', ['-f', bits64 ? 'elf64' : 'elf32', ...includes, '-o', object, job.name], work);
  } else {
    // A flat binary or boot sector starts in real mode: `.code16` first, on the source's own first
    // line (`;` separates statements), so the assembler's line numbers stay the source's.
    await writeFile(src, elf ? job.source : `.code16; ${job.source}`);
    const includes = job.includeDirs.flatMap((dir) => ['-I', dir]);
    await runTool(job, 'as', [bits64 ? '--64' : '--32', ...includes, '-o', object, job.name], work);
  }
  const script = path.join(work, 'guest.ld');
  await writeFile(script, linkerScript(job));
  const emulation = bits64 ? 'elf_x86_64' : 'elf_i386';
  const ldArgs = ['-m', emulation, '-nostdlib', '-z', `max-page-size=${PAGE_SIZE}`, '-z', 'noexecstack', '-T', script, '-o', linked];
  await runTool(job, 'ld', [...ldArgs, object, ...job.objects], work);
  if (elf) return readFile(linked);
  const flat = path.join(work, 'guest.bin');
  await runTool(job, 'objcopy', ['-O', 'binary', linked, flat], work);
  return finish(job, await readFile(flat));
}

/**
 * Sections in one run from the origin. A flat image is exactly its bytes (objcopy keeps what has
 * contents, so a trailing .bss costs nothing); an ELF gets two PT_LOAD segments, code and data,
 * as guests/lib/kernel.ld lays out the project's own kernels.
 */
function linkerScript(job: AssembleJob): string {
  const origin = `0x${job.origin.toString(16)}`;
  const discard = '/DISCARD/ : { *(.note .note.*) *(.comment) *(.eh_frame) }';
  if (!isElf(job.format)) {
    return [
      'SECTIONS {',
      `  . = ${origin};`,
      '  .text : { *(.multiboot) *(.text .text.*) }',
      '  .rodata : { *(.rodata .rodata.*) }',
      '  .data : { *(.data .data.*) }',
      '  .bss : { *(.bss .bss.*) *(COMMON) }',
      `  ${discard}`,
      '}',
      '',
    ].join('\n');
  }
  return [
    `ENTRY(${job.entry})`,
    'PHDRS { text PT_LOAD FLAGS(5); data PT_LOAD FLAGS(6); }',
    'SECTIONS {',
    `  . = ${origin};`,
    '  .text : { KEEP(*(.multiboot)) *(.text .text.*) } :text',
    '  .rodata : { *(.rodata .rodata.*) } :text',
    `  . = ALIGN(${PAGE_SIZE});`,
    '  .data : { *(.data .data.*) } :data',
    '  .bss : { *(.bss .bss.*) *(COMMON) } :data',
    `  ${discard}`,
    '}',
    '',
  ].join('\n');
}

/** The last checks on a flat image: not empty; a boot sector padded and signed, or refused when too big. */
function finish(job: AssembleJob, image: Buffer): Buffer {
  if (image.length === 0) throw new UsageError(`assemble: ${job.name} assembled to an empty image (no code or data)`, 'EIMAGE');
  if (job.format !== 'bootsector') return image;
  const signed =
    image.length === BOOT_SECTOR_SIZE &&
    image[BOOT_SIGNATURE_OFFSET] === BOOT_SIGNATURE[0] &&
    image[BOOT_SIGNATURE_OFFSET + 1] === BOOT_SIGNATURE[1];
  if (signed) return image;
  if (image.length > BOOT_SIGNATURE_OFFSET) {
    throw new UsageError(
      `assemble: ${job.name}: a boot sector's code and data are ${image.length} bytes, but at most ${BOOT_SIGNATURE_OFFSET} fit ` +
        'before the 0x55 0xAA signature at offset 510: make it smaller, or load more sectors from a disk (options.bios.disks)',
      'EIMAGE',
    );
  }
  const sector = Buffer.alloc(BOOT_SECTOR_SIZE);
  image.copy(sector);
  sector[BOOT_SIGNATURE_OFFSET] = BOOT_SIGNATURE[0];
  sector[BOOT_SIGNATURE_OFFSET + 1] = BOOT_SIGNATURE[1];
  return sector;
}

const TOOL_PACKAGES: Record<keyof Tools, string> = { as: 'binutils', ld: 'binutils', objcopy: 'binutils', nasm: 'nasm' };

/** Runs one tool in `cwd`; a failure is a UsageError with its messages and the source lines they name. */
function runTool(job: AssembleJob, tool: keyof Tools, args: string[], cwd: string): Promise<void> {
  const command = job.tools[tool];
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, encoding: 'utf8', maxBuffer: TOOL_OUTPUT_MAX }, (err, stdout, stderr) => {
      if (!err) return resolve();
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        const pkg = TOOL_PACKAGES[tool];
        return reject(
          new UsageError(
            `assemble: cannot run ${command} (${tool === 'nasm' ? 'NASM' : `GNU ${tool}`}): it is not installed or not on PATH; ` +
              `install ${pkg} (e.g. apt-get install ${pkg})${tool === 'nasm' ? ', or write the guest for GNU as (syntax: gas)' : ''}`,
          ),
        );
      }
      const output = annotate(`${stderr}${stdout}`.trim(), job, cwd);
      const status = typeof code === 'number' ? `exit status ${code}` : (err.message.split('\n')[0] ?? 'failed');
      reject(new UsageError(`assemble: ${command} failed on ${job.name} (${status}):\n${output}`, 'EIMAGE'));
    });
  });
}

/** Each `name:LINE:` message followed by that line of the source; the work directory's paths shortened. */
function annotate(output: string, job: AssembleJob, cwd: string): string {
  const lines = job.source.split('\n');
  const prefix = `${job.name}:`;
  return output
    .split(cwd + path.sep)
    .join('')
    .split('\n')
    .flatMap((line) => {
      if (!line.startsWith(prefix)) return [line];
      const number = Number(/^(\d+):/.exec(line.slice(prefix.length))?.[1]);
      const text = Number.isInteger(number) ? lines[number - 1] : undefined;
      return text === undefined ? [line] : [line, `  ${String(number).padStart(4)} | ${text.replace(/\s+$/, '')}`];
    })
    .join('\n');
}
