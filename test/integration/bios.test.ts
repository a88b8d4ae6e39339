/**
 * Guests booting through tskvm's BIOS on /dev/kvm: a boot sector and disks (floppy and hard disk)
 * through POST and INT 19h, each service group's test guest, scripted keys, screenshots, the
 * console and COM1 sharing stdin, --trace and --stats per BIOS call, and --no-bios.
 * Imports the built library (dist/), as a user of the package would.
 */
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { runGuest } from '../../dist/index.js';
import { screenText } from '../../dist/bios/screen.js';
import { assertKvm, describeKvm, guest, ROOT, runCli } from './helpers.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'tskvm-bios-'));
const image = (name: string): string => path.join(ROOT, 'guests', 'build', `${name}.img`);
/** Screen rows, trailing blank rows dropped. */
const rows = (text: string): string[] => text.replace(/\n+$/, '').split('\n');
/** Generous: guests wait for keys and ticks, and the machine may be busy with other tests. */
const TIMEOUT_MS = 20_000;

describeKvm('tskvm BIOS: booting', () => {
  it('boots a boot sector through POST and INT 19h: teletype reaches the screen and the console', async () => {
    assertKvm();
    const r = await runGuest({ image: guest('bios-hello.boot'), timeoutMs: TIMEOUT_MS });
    expect(r.reason).toBe('halt');
    expect(r.format).toBe('bootsector');
    expect(r.bios?.console).toBe('Hello from the BIOS!\r\n');
    expect(rows(screenText(r.bios!.screen))).toEqual(['Hello from the BIOS!']);
    expect(r.bios?.calls).toMatchObject({ 'int10 ah=0e': 22, int19: 1 });
  });

  it('prints teletype text on stdout for pipes, and --screenshot writes the screen', async () => {
    const shot = path.join(tmp, 'hello.txt');
    const ansi = path.join(tmp, 'hello.ansi');
    const r = await runCli(['run', '--timeout', '20s', '--screenshot', shot, '--screenshot-ansi', ansi, guest('bios-hello.boot')]);
    expect(r.status).toBe(0);
    expect(r.stdout.toString()).toBe('Hello from the BIOS!\r\n');
    expect(readFileSync(shot, 'utf8')).toBe(`Hello from the BIOS!\n${'\n'.repeat(24)}`);
    // Light grey on black (attribute 07h) through the DAC, one SGR per run of one attribute.
    expect(readFileSync(ansi, 'utf8').split('\n')[0]).toBe(`\x1b[38;2;170;170;170;48;2;0;0;0mHello from the BIOS!${' '.repeat(60)}\x1b[0m`);
  });

  it('keeps the old bare start with --no-bios, and the bare boot-sector guest runs either way', async () => {
    const bare = await runCli(['run', '--no-bios', guest('bootsector.boot')]);
    expect([bare.status, bare.stdout.toString()]).toEqual([0x55, 'Hello from the boot sector\ndl ok\n']);
    const viaBios = await runCli(['run', guest('bootsector.boot')]);
    expect([viaBios.status, viaBios.stdout.toString()]).toEqual([0x55, 'Hello from the boot sector\ndl ok\n']);
    const noBios = await runGuest({ image: guest('bootsector.boot'), bios: false });
    expect([noBios.exitCode, noBios.serial, noBios.bios]).toEqual([0x55, 'Hello from the boot sector\ndl ok\n', undefined]);
  });

  it('says so when there is nothing bootable, and halts', async () => {
    const blank = path.join(tmp, 'blank.img');
    writeFileSync(blank, Buffer.alloc(4096));
    const r = await runGuest({ bios: { disks: [blank] }, timeoutMs: TIMEOUT_MS });
    expect(r.reason).toBe('halt');
    expect(rows(screenText(r.bios!.screen))).toEqual(['Boot failed: not a bootable disk (drive 80h)', 'No bootable device.']);
  });

  it('refuses --disk with a flat binary, an unknown --boot drive, and --no-bios with disks', async () => {
    expect((await runCli(['run', '--disk', image('bios-edd.disk'), guest('hello')])).stderr).toMatch(/--disk boots through the BIOS/);
    const r = await runCli(['run', '--disk', image('bios-edd.disk'), '--boot', 'a']);
    expect([r.status, r.stderr]).toEqual([2, expect.stringMatching(/--boot a: there is no such drive \(the drives are 0x80\)/)]);
    expect((await runCli(['run', '--no-bios', '--disk', image('bios-edd.disk'), guest('bootsector.boot')])).stderr).toMatch(/--no-bios/);
  });
});

describeKvm('tskvm BIOS: service groups', () => {
  it('INT 10h: modes, cursor, writes, scrolls and strings, plus direct video memory', async () => {
    const r = await runGuest({ image: guest('bios-video.boot'), timeoutMs: TIMEOUT_MS });
    expect([r.reason, r.exitCode]).toEqual(['debug-exit', 0x42]);
    const screen = r.bios!.screen;
    const text = rows(screenText(screen));
    expect(text[2]).toBe('     abX');
    expect(text[3]).toBe('line 3');
    expect(text[10]).toBe('written by 13h');
    expect(text[11]).toBe('scroll me');
    expect(text[12]).toBe('');
    expect(text[24]).toBe('direct');
    expect(screen.cells[2]![7]).toEqual({ char: 0x58, attribute: 0x4e });
    expect(screen.cells[24]![0]!.attribute).toBe(0x2f);
    expect(screen.cells[0]![0]!.attribute).toBe(0x1f);
    expect(screen.cursor).toEqual({ row: 20, column: 3, visible: true });
  });

  it('INT 13h, 10h, 16h, 1Ah, 15h, 11h, 12h: a two-stage floppy that loads its second stage, reads keys and measures ticks', async () => {
    const r = await runGuest({ bios: { disks: [image('bios-stages.floppy')] }, serialInput: 'z\x1b[A', timeoutMs: TIMEOUT_MS });
    expect([r.reason, r.exitCode]).toEqual(['debug-exit', 0x42]);
    expect(rows(screenText(r.bios!.screen))).toEqual([
      'stage 2 loaded',
      'out-of-range read refused',
      'timer ticks ok',
      'press a key: z scan 2c',
      'arrow up ok',
    ]);
    expect(r.bios!.calls).toMatchObject({ 'int13 ah=08': 1, 'int13 ah=02': 2, 'int16 ah=00': 1, 'int1a ah=00': 2, 'int15 ah=86': 1 });
  });

  it('INT 13h extensions on a hard disk; writes stay in memory without --disk-write and reach the file with it', async () => {
    const disk = path.join(tmp, 'edd.img');
    copyFileSync(image('bios-edd.disk'), disk);
    const before = readFileSync(disk);
    const kept = await runCli(['run', '--timeout', '20s', '--disk', disk]);
    expect([kept.status, kept.stdout.toString()]).toEqual([0x42, 'edd ok\r\n']);
    expect(readFileSync(disk).equals(before)).toBe(true);
    const written = await runCli(['run', '--timeout', '20s', '--disk', disk, '--disk-write']);
    expect(written.status).toBe(0x42);
    expect([...readFileSync(disk).subarray(1024, 1028)]).toEqual([0x5a, 0x5a, 0x5a, 0x5a]);
  });

  it('a guest that polls LSR.DR (no BIOS call, no receive interrupt) gets stdin on COM1', async () => {
    const r = await runCli(['run', '--timeout', '20s', guest('bios-lsrpoll.boot')], { input: 'hi.' });
    expect([r.status, r.stdout.toString()]).toEqual([0x42, 'ready\r\nhi.']);
  });

  it('INT 14h: a guest that reads COM1 gets stdin there, not on the keyboard', async () => {
    const r = await runCli(['run', '--timeout', '20s', guest('bios-serial.boot')], { input: 'hi.' });
    expect([r.status, r.stdout.toString()]).toEqual([0x42, 'ready\r\nHI.']);
  });
});

describeKvm('tskvm BIOS: programs people share', () => {
  it('a boot-sector BASIC driven by scripted keys prints 42 for print 6*7', async () => {
    const r = await runGuest({ image: guest('bios-basic.boot'), serialInput: 'print 6*7\rprint (1+2)*-3\rbye\r', timeoutMs: TIMEOUT_MS });
    expect([r.reason, r.exitCode]).toEqual(['debug-exit', 0x42]);
    expect(rows(screenText(r.bios!.screen))).toEqual(['>print 6*7', '42', '>print (1+2)*-3', '-9', '>bye']);
  });

  it('the same from the CLI with --keys FILE and a screenshot', async () => {
    const keys = path.join(tmp, 'keys.txt');
    writeFileSync(keys, 'print 6*7\nbye\n');
    const shot = path.join(tmp, 'basic.txt');
    const r = await runCli(['run', '--timeout', '20s', '--keys', keys, '--screenshot', shot, guest('bios-basic.boot')]);
    expect(r.status).toBe(0x42);
    expect(rows(readFileSync(shot, 'utf8')).slice(0, 3)).toEqual(['>print 6*7', '42', '>bye']);
  });

  it('a game that writes 0xB8000 directly, paced by the timer and polling INT 16h, draws its first screen and takes keys', async () => {
    const r = await runGuest({ image: guest('bios-game.boot'), serialInput: '\x1b[D\x1b[Dq', timeoutMs: TIMEOUT_MS });
    expect([r.reason, r.exitCode]).toEqual(['debug-exit', 0x42]);
    const text = rows(screenText(r.bios!.screen));
    expect(text[0]).toBe(`${'#'.repeat(34)} BOOT GAME ${'#'.repeat(35)}`);
    expect(text[24]).toBe('#'.repeat(80));
    expect(text[23]!.indexOf('^')).toBe(38); // moved left twice
    expect(text[12]).toMatch(/^# *\* *#$/);
    expect(r.bios!.screen.cells[0]![0]).toEqual({ char: 0x23, attribute: 0x1e });
    expect(r.bios!.screen.cursor.visible).toBe(false);
  });
});

describeKvm('tskvm BIOS: trace, stats, SMP', () => {
  it('--trace shows each BIOS call with its registers; --stats counts calls per service', async () => {
    const r = await runCli(['run', '--timeout', '20s', '--trace', '--stats', guest('bios-hello.boot')]);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/ bios {2}int10 ah=0e al='H' {2}caller=0000:7c/);
    expect(r.stderr).toMatch(/ bios {2}int19 -> 0000:7c00 dl=80 {2}caller=f000:e0a3/);
    expect(r.stderr).toMatch(/BIOS calls by service:\n {2}int10 ah=0e +22\n {2}int19 +1\n/);
  });

  it('boots through the BIOS with several vCPUs (the board thread has the BIOS devices)', async () => {
    const r = await runGuest({ image: guest('bios-basic.boot'), cpus: 2, serialInput: 'print 6*7\rbye\r', timeoutMs: TIMEOUT_MS });
    expect([r.reason, r.exitCode]).toEqual(['debug-exit', 0x42]);
    expect(rows(screenText(r.bios!.screen)).slice(0, 2)).toEqual(['>print 6*7', '42']);
  });
});
