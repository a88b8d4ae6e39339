/**
 * The CLI's output fd writer and its checks of fds 0-2 without Node's stdio streams
 * (src/cli/output.ts, src/cli/stdio.ts).
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FdWriter } from '../../src/cli/output.js';
import { isDevNull, isTerminal } from '../../src/cli/stdio.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'tskvm-stdio-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('FdWriter', () => {
  it('counts a write blocked on a full pipe as in flight even once abandoned (the process must not join the pool then)', async () => {
    const fifo = path.join(tmp, 'out.fifo');
    execFileSync('mkfifo', [fifo]);
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const writerFd = openSync(fifo, constants.O_WRONLY); // blocking, as an inherited stdout is
    try {
      const writer = new FdWriter(writerFd, 'stdout');
      const chunk = Buffer.alloc(1 << 20, 0x41); // far more than a pipe holds
      const written = writer.write(chunk);
      await expect.poll(() => writer.inFlight).toBe(true);
      writer.abandon();
      await written; // the caller is let go at once...
      expect(writer.inFlight).toBe(true); // ...but write(2) is still blocked in the pool
      const buf = Buffer.alloc(1 << 16);
      let drained = 0;
      await expect
        .poll(
          () => {
            try {
              drained += readSync(reader, buf);
            } catch {
              // EAGAIN: the writer has not refilled it yet
            }
            return writer.inFlight;
          },
          { timeout: 10_000, interval: 5 },
        )
        .toBe(false);
      expect(drained).toBeGreaterThan(0);
    } finally {
      closeSync(writerFd);
      closeSync(reader);
    }
  });

  it('writes a chunk whole to a file', async () => {
    const file = path.join(tmp, 'out.txt');
    writeFileSync(file, '');
    const fd = openSync(file, 'w');
    const writer = new FdWriter(fd, `file '${file}'`);
    await writer.write(Buffer.from('hello\n'));
    closeSync(fd);
    expect(writer.inFlight).toBe(false);
    expect(writer.error).toBeUndefined();
  });
});

describe('stdio checks without streams', () => {
  it('knows /dev/null from a file', () => {
    const devNull = openSync('/dev/null', 'r');
    const file = path.join(tmp, 'in.txt');
    writeFileSync(file, 'x');
    const regular = openSync(file, 'r');
    try {
      expect(isDevNull(devNull)).toBe(true);
      expect(isDevNull(regular)).toBe(false);
      expect(isDevNull(-1)).toBe(false);
    } finally {
      closeSync(devNull);
      closeSync(regular);
    }
  });

  it('calls no file or /dev/null a terminal', () => {
    const devNull = openSync('/dev/null', 'r');
    try {
      expect(isTerminal(devNull)).toBe(false);
    } finally {
      closeSync(devNull);
    }
  });
});
