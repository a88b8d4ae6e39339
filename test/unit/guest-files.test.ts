/**
 * Reading a guest's files (src/machine/guest-files.ts): small files are read synchronously, files
 * over one chunk through the thread pool; both must return the file's bytes exactly, and every
 * check (missing, directory, FIFO, too large) must hold on both paths. No KVM needed.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkGuestFiles, readGuestFile, readGuestFiles } from '../../src/machine/guest-files.js';
import { validateRunOptions } from '../../src/machine/options.js';

const MIB = 1024 * 1024;
const tmp = mkdtempSync(path.join(tmpdir(), 'tskvm-guest-files-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A file of `size` pseudo-random bytes (so a misplaced chunk shows). */
function file(name: string, size: number): { path: string; bytes: Buffer } {
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 2654435761) >>> 24;
  const p = path.join(tmp, name);
  writeFileSync(p, bytes);
  return { path: p, bytes };
}

describe('readGuestFile', () => {
  for (const [what, size] of [
    ['a small file (read synchronously)', 4096 + 7],
    ['exactly one chunk', MIB],
    ['over one chunk (read through the thread pool)', 3 * MIB + 11],
  ] as const) {
    it(`${what}: the bytes, exactly`, async () => {
      const f = file(`f${size}`, size);
      const bytes = await readGuestFile(f.path, 'image', 16 * MIB);
      expect(bytes.length).toBe(size);
      expect(Buffer.compare(Buffer.from(bytes), f.bytes)).toBe(0);
    });
  }

  it('a file exactly as large as the bound is read whole (no extra byte is looked for)', async () => {
    const f = file('bound', MIB + 4096);
    expect((await readGuestFile(f.path, 'image', MIB + 4096)).length).toBe(MIB + 4096);
  });

  it('refuses what is not a readable regular file no larger than the bound, as UsageError EIMAGE', async () => {
    const small = file('small', 100);
    const big = file('big', 2 * MIB);
    const fifo = path.join(tmp, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const cases: [string, number, RegExp][] = [
      [path.join(tmp, 'nope.bin'), MIB, /image not found: check the path/],
      [tmp, MIB, /is a directory/],
      [fifo, MIB, /is a FIFO, not a regular file/], // O_NONBLOCK: no writer, and still no hang
      ['/dev/null', MIB, /is a character device/],
      [small.path, 99, /is 100 bytes, larger than guest RAM/],
      [big.path, MIB, /is 2097152 bytes, larger than guest RAM/],
    ];
    for (const [p, max, message] of cases) {
      await expect(readGuestFile(p, 'image', max)).rejects.toMatchObject({ code: 'EIMAGE', message: expect.stringMatching(message) });
    }
  });
});

describe('readGuestFiles and checkGuestFiles', () => {
  it('read the image and modules; check the same files without reading them', async () => {
    const image = file('image', 5000);
    const module = file('module', MIB + 1);
    const config = validateRunOptions({ image: image.path, modules: [{ path: module.path, cmdline: 'x=1' }] });
    await expect(checkGuestFiles(config)).resolves.toBeUndefined();
    const files = await readGuestFiles(config);
    expect(Buffer.compare(Buffer.from(files.image!.bytes), image.bytes)).toBe(0);
    expect(files.modules).toHaveLength(1);
    expect(files.modules[0]!.cmdline).toBe('x=1');
    expect(Buffer.compare(Buffer.from(files.modules[0]!.bytes), module.bytes)).toBe(0);
  });

  it('checkGuestFiles refuses a directory module', async () => {
    const image = file('image2', 10);
    const config = validateRunOptions({ image: image.path, modules: [tmp] });
    await expect(checkGuestFiles(config)).rejects.toMatchObject({
      code: 'EIMAGE',
      message: expect.stringMatching(/module .* is a directory/),
    });
  });
});
