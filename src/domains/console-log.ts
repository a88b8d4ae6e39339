/**
 * A domain's console output, also kept on disk — bounded, as a long-running guest must not fill
 * the disk: the current file grows to `maxBytes`, then becomes FILE.1 (FILE.1 becomes FILE.2 ...,
 * the oldest beyond `files` is dropped) and a new FILE starts, as logrotate does. Writes are
 * synchronous appends of whole chunks: the supervisor has nothing better to do meanwhile, and
 * the log stays in order with the console stream.
 */
import { closeSync, existsSync, fstatSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import type { ConsoleLogConfig } from './xml.js';

const LOG_FILE_MODE = 0o600;

export class ConsoleLog {
  private fd: number;
  private size: number;

  constructor(
    readonly file: string,
    private readonly config: ConsoleLogConfig,
  ) {
    this.fd = openSync(file, 'a', LOG_FILE_MODE);
    this.size = fstatSync(this.fd).size;
  }

  write(chunk: Uint8Array): void {
    let data = chunk;
    while (data.length > 0) {
      if (this.size >= this.config.maxBytes) this.rotate();
      const room = this.config.maxBytes - this.size;
      const part = data.subarray(0, room);
      writeSync(this.fd, part);
      this.size += part.length;
      data = data.subarray(part.length);
    }
  }

  close(): void {
    closeSync(this.fd);
  }

  private rotate(): void {
    closeSync(this.fd);
    const { files } = this.config;
    if (files === 0) {
      rmSync(this.file, { force: true });
    } else {
      rmSync(`${this.file}.${files}`, { force: true });
      for (let n = files - 1; n >= 1; n--) {
        if (existsSync(`${this.file}.${n}`)) renameSync(`${this.file}.${n}`, `${this.file}.${n + 1}`);
      }
      renameSync(this.file, `${this.file}.1`);
    }
    this.fd = openSync(this.file, 'a', LOG_FILE_MODE);
    this.size = 0;
  }
}
