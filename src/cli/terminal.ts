/**
 * Serial input from an interactive terminal, as QEMU's `-serial stdio` treats it: the terminal
 * goes to raw mode so every key reaches the guest, except Ctrl-C (stops the guest, like SIGINT)
 * and the escape Ctrl-A: Ctrl-A X quits, Ctrl-A S saves a snapshot (to `--save FILE`; QEMU's
 * Ctrl-A s saves its disks), Ctrl-A Ctrl-A sends one Ctrl-A.
 */
import { Transform, type TransformCallback } from 'node:stream';

export const CTRL_A = 0x01;
export const CTRL_C = 0x03;
const KEY_X = [0x78, 0x58]; // 'x', 'X'
const KEY_S = [0x73, 0x53]; // 's', 'S'

export type TerminalCommand = 'interrupt' | 'quit' | 'save';

/** Removes the escape sequences from terminal input and reports the commands they carry. */
export class TerminalEscapes extends Transform {
  private escaped = false;

  constructor(private readonly onCommand: (command: TerminalCommand) => void) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const out: number[] = [];
    for (const byte of chunk) {
      if (this.escaped) {
        this.escaped = false;
        if (KEY_X.includes(byte)) this.onCommand('quit');
        else if (KEY_S.includes(byte)) this.onCommand('save');
        else if (byte === CTRL_A) out.push(CTRL_A);
        // Any other key after Ctrl-A is swallowed, as QEMU does with unknown escapes.
      } else if (byte === CTRL_A) {
        this.escaped = true;
      } else if (byte === CTRL_C) {
        this.onCommand('interrupt');
      } else {
        out.push(byte);
      }
    }
    done(null, out.length ? Buffer.from(out) : undefined);
  }
}
