/**
 * The CLI side of the BIOS: the flags' checks and their mapping to the library's `bios` option,
 * the terminal display (when it takes over, what it draws, giving the terminal back), and the
 * --stats table of BIOS calls.
 */
import { describe, expect, it } from 'vitest';
import { TerminalDisplay } from '../../src/bios/display.js';
import { captureScreen } from '../../src/bios/screen.js';
import { UsageError } from '../../src/errors.js';
import { biosCliRun, formatBiosCalls, type BiosCliOptions } from '../../src/cli/bios-options.js';
import { makeBios } from './bios-helpers.js';

const flags = (extra: Partial<BiosCliOptions> = {}): BiosCliOptions => ({ disk: [], bios: true, ...extra });
const io = { writeStdout: () => {}, stdoutIsTerminal: false };

describe('biosCliRun', () => {
  it('needs an image or a disk, and refuses BIOS flags with --no-bios', () => {
    expect(() => biosCliRun(undefined, flags(), io)).toThrow(/missing required argument 'image'/);
    expect(() => biosCliRun('x.img', flags({ bios: false, disk: ['d.img'] }), io)).toThrow(UsageError);
    expect(() => biosCliRun('x.img', flags({ diskWrite: true }), io)).toThrow(/--disk-write needs a --disk/);
    expect(() => biosCliRun('x.img', flags({ keys: '/nonexistent/keys' }), io)).toThrow(/--keys file/);
    expect(() => biosCliRun('x.img', flags({ boot: 'q' }), io)).toThrow(/invalid --boot 'q'/);
    expect(biosCliRun('x.img', flags({ bios: false }), io).bios).toBe(false);
  });

  it('maps the flags to the library options, and queues teletype text to stdout in order', async () => {
    const written: string[] = [];
    const run = biosCliRun(undefined, flags({ disk: ['a.img', 'b.img'], diskWrite: true, boot: 'c' }), {
      writeStdout: async (text) => {
        await new Promise((resolve) => setTimeout(resolve, text === 'A' ? 20 : 0));
        written.push(text);
      },
      stdoutIsTerminal: false,
    });
    expect(run.bios).toMatchObject({ disks: ['a.img', 'b.img'], diskWrite: true, boot: 'c' });
    const bios = run.bios as Exclude<typeof run.bios, false>;
    expect(bios.onScreen).toBeUndefined(); // not a terminal: no display
    void bios.onConsole!(Buffer.from('A'));
    await bios.onConsole!(Buffer.from([0x42, 0xdb]));
    expect(written).toEqual(['A', 'B█']);
  });
});

describe('TerminalDisplay', () => {
  it('stays off for teletype-only output in auto mode, takes over once the guest uses the screen, and gives the terminal back', () => {
    const out: string[] = [];
    const display = new TerminalDisplay((text) => out.push(text), 'auto');
    const bios = makeBios();
    bios.call(0x10, { eax: 0x0e48 });
    display.offer(captureScreen(bios.memory, bios.vga.regs), { screenUsed: false, teletype: 1 });
    expect(display.active).toBe(false);
    bios.call(0x10, { eax: 0x0e69 });
    display.offer(captureScreen(bios.memory, bios.vga.regs), { screenUsed: false, teletype: 2 });
    expect(out).toEqual([]);
    bios.memory[0xb8000 + 160] = 0x5a; // a direct write, no teletype
    display.offer(captureScreen(bios.memory, bios.vga.regs), { screenUsed: false, teletype: 2 });
    expect(display.active).toBe(true);
    const frame = out.join('');
    expect(frame).toContain('\x1b[?1049h');
    expect(frame).toContain('\x1b[1;1H');
    expect(frame).toContain('Hi');
    expect(frame).toContain('\x1b[2;1H');
    out.length = 0;
    display.offer(captureScreen(bios.memory, bios.vga.regs), { screenUsed: true, teletype: 2 });
    expect(out.join('')).not.toContain('\x1b[1;1H'); // unchanged rows are not redrawn
    display.close();
    expect(out.at(-1)).toContain('\x1b[?1049l');
  });

  it('never draws with none', () => {
    const out: string[] = [];
    const display = new TerminalDisplay((text) => out.push(text), 'none');
    const bios = makeBios();
    display.offer(captureScreen(bios.memory, bios.vga.regs), { screenUsed: true, teletype: 0 });
    expect([display.active, out]).toEqual([false, []]);
  });
});

describe('formatBiosCalls', () => {
  it('lists the calls by count', () => {
    expect(formatBiosCalls({ int19: 1, 'int10 ah=0e': 22 })).toBe(
      'BIOS calls by service:\n  int10 ah=0e        22\n  int19               1\n',
    );
    expect(formatBiosCalls({})).toBe('BIOS calls: none\n');
  });
});
