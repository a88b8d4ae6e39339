/**
 * What a snapshot records of a BIOS machine (src/bios/snapshot-config.ts), without KVM: the
 * disks described (files by path, size, time and SHA-256; bytes whole), the description checked
 * when it comes back, and a disk image that changed since the snapshot refused by name while
 * one only touched (or copied) is taken.
 */
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkSavedDisk, describeBios, hashFile, parseSavedBios } from '../../src/bios/snapshot-config.js';
import { UsageError } from '../../src/errors.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'tskvm-bios-snapshot-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function diskFile(name: string, bytes: Buffer): { file: string; fd: number } {
  const file = path.join(dir, name);
  writeFileSync(file, bytes);
  return { file, fd: openSync(file, 'r') };
}

describe('a BIOS machine in a snapshot', () => {
  it('describes file disks by absolute path, size, time and SHA-256, and byte disks whole', async () => {
    const content = Buffer.alloc(5 * 1024 * 1024 + 3, 0x5a); // more than one hashing chunk
    const { file, fd } = diskFile('hd.img', content);
    try {
      const boot = new Uint8Array(512).fill(7);
      const saved = await describeBios(
        [
          { drive: 0x80, writeThrough: true, source: { fd, path: path.relative(process.cwd(), file) } },
          { drive: 0x81, writeThrough: false, source: { name: 'boot.img', bytes: boot } },
        ],
        [0x81, 0x80],
        [{ base: 0, length: 0x9fc00, type: 1 }],
      );
      expect(saved.disks[0]!.file).toMatchObject({
        path: file,
        size: content.length,
        sha256: createHash('sha256').update(content).digest('hex'),
      });
      expect(saved.disks[1]).toEqual({
        drive: 0x81,
        writeThrough: false,
        bytes: { name: 'boot.img', base64: Buffer.from(boot).toString('base64') },
      });
      // Through JSON, as the snapshot file keeps it.
      expect(parseSavedBios(JSON.parse(JSON.stringify(saved)), 'x.snap')).toEqual(saved);
      expect(await hashFile(fd, content.length)).toBe(saved.disks[0]!.file!.sha256);
    } finally {
      closeSync(fd);
    }
  });

  it('refuses a description that is not one, naming the field', () => {
    const good = { disks: [{ drive: 0x80, writeThrough: false, bytes: { name: 'b', base64: '' } }], bootOrder: [0x80], e820: [] };
    const bad: [unknown, RegExp][] = [
      [null, /machine\.board\.bios\.is not an object/],
      [{ ...good, disks: [] }, /disks is not a list of disks/],
      [{ ...good, disks: [{ drive: 0x100, writeThrough: false }] }, /disks\[0\]\.drive is 256/],
      [{ ...good, disks: [{ drive: 0x80, writeThrough: false }] }, /disks\[0\] has neither a file nor bytes/],
      [
        { ...good, disks: [{ drive: 0x80, writeThrough: false, file: { path: 'rel.img', size: 1, mtimeMs: 1, sha256: '0'.repeat(64) } }] },
        /not an absolute path/,
      ],
      [{ ...good, bootOrder: 'c' }, /bootOrder is not a list/],
      [{ ...good, e820: [{ base: -1, length: 1, type: 1 }] }, /e820\[0\]\.base is -1/],
    ];
    for (const [value, why] of bad) {
      expect(() => parseSavedBios(value, 'x.snap')).toThrow(UsageError);
      expect(() => parseSavedBios(value, 'x.snap')).toThrow(why);
    }
  });

  it('takes a disk that is the same (even touched or copied), and refuses one that changed, naming it', async () => {
    const { file, fd } = diskFile('floppy.img', Buffer.alloc(1474560, 1));
    try {
      const [saved] = (await describeBios([{ drive: 0, writeThrough: false, source: { fd, path: file } }], [0], [])).disks;
      const record = saved!.file!;
      await expect(checkSavedDisk(fd, record, 0, 'x.snap')).resolves.toBeUndefined();
      const later = new Date(Date.now() + 60_000);
      utimesSync(file, later, later);
      await expect(checkSavedDisk(fd, record, 0, 'x.snap')).resolves.toBeUndefined(); // another time, same bytes
      writeFileSync(file, Buffer.alloc(1474560, 2));
      await expect(checkSavedDisk(fd, record, 0, 'x.snap')).rejects.toThrow(
        /disk '.*floppy\.img' \(drive 00h\) changed \(its SHA-256 differs\)/,
      );
      writeFileSync(file, Buffer.alloc(1024));
      await expect(checkSavedDisk(fd, record, 0, 'x.snap')).rejects.toThrow(/changed size \(1474560 bytes then, 1024 now\)/);
    } finally {
      closeSync(fd);
    }
  });
});
