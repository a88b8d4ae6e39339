/**
 * Snapshots end to end, on /dev/kvm: a guest that counts PIT and LAPIC timer ticks and prints
 * through an interrupt-driven COM1 (guests/snapticks.mb.S) is saved mid-run and restored in a new
 * process; the two outputs together are the uninterrupted run's, so the timers, the interrupt
 * controllers, the UART and memory all came back — with 1, 2 and 4 vCPUs. Also: the library's
 * run.snapshot() and startGuest({ restore }) in one process, save on a debug-exit value, two
 * guests restored from one file, Ctrl-A s on a real pseudo-terminal (test/integration/fixtures/
 * pty-stdin.py gives the CLI one), a guest booted through tskvm's BIOS saved and restored (its
 * timer, screen, keyboard and COM1; its disk image checked), and bad files refused with exit
 * status 2. Imports the built library (dist/), as the other integration tests do.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runGuest, startGuest, UsageError } from '../../dist/index.js';
import { CLI, ROOT, assertKvm, describeKvm, guest, requireKvm, runCli, type CliResult } from './helpers.js';

const SNAPTICKS = path.join(ROOT, 'guests', 'build', 'snapticks.elf');
const TIMEOUT = '15s';
/** The guest asks to be saved with this debug-exit value (`--append save-request`). */
const SAVE_REQUEST = 0x5a5a;
let dir: string;

const PTY_STDIN = path.join(ROOT, 'test', 'integration', 'fixtures', 'pty-stdin.py');
const BIOS_SNAP = guest('bios-snap.boot');
/** What an uninterrupted run of bios-snap prints on COM1 (keyboard "k", COM1 input "hi."). */
const BIOS_SNAP_OUTPUT = `${[1, 2, 3, 4, 5, 6].map((n) => `tick ${n}\r\n`).join('')}key? k\r\nhi.`;

/**
 * The CLI with its stdin on a pseudo-terminal (stdout and stderr pipes); `onStdout` may type
 * keys with `type` as the output arrives.
 */
function runOnTerminal(args: string[], onStdout: (output: string, type: (keys: string) => void) => void): Promise<CliResult> {
  const child = spawn('python3', [PTY_STDIN, process.execPath, CLI, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out.push(chunk);
    onStdout(Buffer.concat(out).toString(), (keys) => child.stdin.write(keys));
  });
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  child.stdin.on('error', () => {});
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout: Buffer.concat(out), stderr: err }));
  });
}

/** What an uninterrupted run of snapticks prints with `cpus` vCPUs. */
function expectedOutput(cpus: number): string {
  const rounds = Array.from({ length: 8 }, (_, i) => `round ${i + 1}: pit ${50 * (i + 1)} lapic ${50 * (i + 1)} x ${cpus}\n`);
  return `snapticks: ${cpus} cpus\n${rounds.join('')}`;
}

describeKvm('snapshots (CLI and library)', () => {
  beforeAll(() => {
    if (requireKvm) assertKvm();
    dir = mkdtempSync(path.join(os.tmpdir(), 'tskvm-snapshot-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([1, 2, 4])('saved mid-run and restored in a new process, %i vCPU(s): the outputs add up to the whole run', async (cpus) => {
    const file = path.join(dir, `ticks-${cpus}.snap`);
    const whole = await runCli(['run', '--timeout', TIMEOUT, '--cpus', String(cpus), SNAPTICKS]);
    expect(whole.status).toBe(cpus);
    expect(whole.stdout.toString()).toBe(expectedOutput(cpus));

    const saved = await runCli(['run', '--timeout', TIMEOUT, '--cpus', String(cpus), '--save', file, '--save-on', 'round 3:', SNAPTICKS]);
    expect(saved.stderr).toMatch(new RegExp(`tskvm: saved the guest to ${file} \\(\\d+ pages, \\d+ bytes, [\\d.]+ ms\\)`));
    expect(saved.status).toBe(0);
    const first = saved.stdout.toString();
    expect(first).toContain('round 3:');
    expect(first).not.toContain('round 8');

    const restored = await runCli(['run', '--timeout', TIMEOUT, '--restore', file]);
    expect(restored.status).toBe(cpus);
    const rest = restored.stdout.toString();
    // The timers kept firing after the restore: the rounds after the snapshot were counted.
    expect(rest).toContain('round 8: pit 400');
    expect(first + rest).toBe(expectedOutput(cpus));
  });

  it('a restored guest saved again (its pages partly in the first file) and restored once more', async () => {
    const first = path.join(dir, 'chain-1.snap');
    const second = path.join(dir, 'chain-2.snap');
    const a = await runCli(['run', '--timeout', TIMEOUT, '--save', first, '--save-on', 'round 2:', SNAPTICKS]);
    const b = await runCli(['run', '--timeout', TIMEOUT, '--restore', first, '--save', second, '--save-on', 'round 5:']);
    const c = await runCli(['run', '--timeout', TIMEOUT, '--restore', second]);
    expect([a.status, b.status, c.status]).toEqual([0, 0, 1]);
    expect(a.stdout.toString() + b.stdout.toString() + c.stdout.toString()).toBe(expectedOutput(1));
    const same = await runCli(['run', '--restore', first, '--save', first, '--save-on', 'x']);
    expect(same.status).toBe(2);
    expect(same.stderr).toMatch(/--save and --restore name the same file/);
  });

  it('in one process: save on a debug-exit value, restore, and the serial output adds up', async () => {
    const file = path.join(dir, 'request.snap');
    const a = await runGuest({
      image: SNAPTICKS,
      cpus: 2,
      cmdline: 'save-request',
      timeoutMs: 60_000,
      save: { path: file, onDebugExit: SAVE_REQUEST },
    });
    expect(a.reason).toBe('saved');
    expect(a.saved).toMatchObject({ path: file });
    expect(a.saved!.pages).toBeGreaterThan(0);
    const b = await runGuest({ restore: file, timeoutMs: 60_000 });
    expect(b.reason).toBe('debug-exit');
    expect(b.exitCode).toBe(2);
    expect(b.format).toBe('multiboot');
    expect(a.serial + b.serial).toBe(expectedOutput(2));
  });

  it('run.snapshot() on a running guest, resumed; two guests restored from the one file at once', async () => {
    const file = path.join(dir, 'api.snap');
    let seen = '';
    let reached: () => void = () => {};
    const atRound2 = new Promise<void>((resolve) => (reached = resolve));
    const run = await startGuest({
      image: SNAPTICKS,
      timeoutMs: 60_000,
      onSerial: (chunk) => {
        seen += chunk.toString();
        if (seen.includes('round 2:')) reached();
      },
    });
    await atRound2;
    const info = await run.snapshot(file, { resume: true });
    expect(info).toMatchObject({ path: file });
    expect(info.bytes).toBe(readFileSync(file).length);
    expect(run.state).toBe('running');
    const original = await run.result;
    expect(original.reason).toBe('debug-exit');
    expect(original.serial).toBe(expectedOutput(1));

    const [x, y] = await Promise.all([runGuest({ restore: file, timeoutMs: 60_000 }), runGuest({ restore: file, timeoutMs: 60_000 })]);
    for (const r of [x, y]) {
      expect(r.reason).toBe('debug-exit');
      expect(r.exitCode).toBe(1);
      // What the original printed after the snapshot, the restored ones print too.
      expect(original.serial.endsWith(r.serial)).toBe(true);
      expect(r.serial).toContain('round 8: pit 400');
    }
  });

  it('a snapshot left paused can be resumed, and saving a run that has ended is a UsageError', async () => {
    const file = path.join(dir, 'paused.snap');
    const run = await startGuest({ image: SNAPTICKS, timeoutMs: 60_000 });
    await run.snapshot(file);
    expect(run.state).toBe('paused');
    run.resume();
    const result = await run.result;
    expect(result.serial).toBe(expectedOutput(1));
    await expect(run.snapshot(path.join(dir, 'late.snap'))).rejects.toThrow(UsageError);
    // The one saved right at the start restores into a complete run.
    const again = await runGuest({ restore: file, timeoutMs: 60_000 });
    expect(again.serial.endsWith('round 8: pit 400 lapic 400 x 1\n')).toBe(true);
  });

  it('Ctrl-A s on a terminal saves the guest to --save FILE (no --save-on needed), and the restore goes on', async () => {
    const file = path.join(dir, 'ctrl-a-s.snap');
    let typed = false;
    const saved = await runOnTerminal(['run', '--timeout', TIMEOUT, '--save', file, SNAPTICKS], (output, type) => {
      if (!typed && output.includes('round 2:')) {
        typed = true;
        type('\x01s');
      }
    });
    expect(saved.stderr).toMatch(new RegExp(`tskvm: saved the guest to ${file} `));
    expect(saved.status).toBe(0);
    const first = saved.stdout.toString();
    expect(first).toContain('round 2:');
    const restored = await runCli(['run', '--timeout', TIMEOUT, '--restore', file]);
    expect(restored.status).toBe(1);
    expect(first + restored.stdout.toString()).toBe(expectedOutput(1));

    // Without --save, Ctrl-A s says why nothing was saved and the guest runs on; Ctrl-A x quits.
    let step = 0;
    const unsaved = await runOnTerminal(['run', '--timeout', TIMEOUT, SNAPTICKS], (output, type) => {
      if (step === 0 && output.includes('round 1:')) {
        step = 1;
        type('\x01s');
      } else if (step === 1 && output.includes('round 3:')) {
        step = 2;
        type('\x01x');
      }
    });
    expect(unsaved.status).toBe(0);
    expect(unsaved.stderr).toContain('tskvm: Ctrl-A s: nothing saved: give --save FILE');
    expect(unsaved.stdout.toString()).toContain('round 3:');

    const piped = await runCli(['run', '--save', path.join(dir, 'never.snap'), SNAPTICKS]);
    expect(piped.status).toBe(2);
    expect(piped.stderr).toMatch(/--save needs --save-on PATTERN: .*Ctrl-A s saves it without one; stdin is not a terminal here/);
  });

  it('a guest booted through the BIOS, saved mid-count and restored in a new process: output, screen and both inputs go on', async () => {
    const keys = path.join(dir, 'keys.txt');
    writeFileSync(keys, 'k');
    const shot = (name: string): string[] => [
      '--screenshot',
      path.join(dir, `${name}.txt`),
      '--screenshot-ansi',
      path.join(dir, `${name}.ansi`),
    ];
    const whole = await runCli(['run', '--timeout', TIMEOUT, '--keys', keys, ...shot('whole'), BIOS_SNAP], { input: 'hi.' });
    expect([whole.status, whole.stdout.toString()]).toEqual([0x42, BIOS_SNAP_OUTPUT]);

    const file = path.join(dir, 'bios.snap');
    const saved = await runCli(['run', '--timeout', TIMEOUT, '--save', file, '--save-on', 'tick 3', BIOS_SNAP]);
    expect(saved.status).toBe(0);
    expect(saved.stderr).toMatch(/saved the guest to/);
    const first = saved.stdout.toString();
    expect(first).toContain('tick 3');
    expect(first).not.toContain('tick 6');
    // The keyboard (--keys) and COM1 (stdin) of this run, after the restore.
    const restored = await runCli(['run', '--timeout', TIMEOUT, '--restore', file, '--keys', keys, ...shot('restored')], { input: 'hi.' });
    expect(restored.stderr).not.toMatch(/warning/);
    expect(restored.status).toBe(0x42);
    expect(first + restored.stdout.toString()).toBe(BIOS_SNAP_OUTPUT);
    for (const ext of ['txt', 'ansi']) {
      expect(readFileSync(path.join(dir, `restored.${ext}`), 'utf8')).toBe(readFileSync(path.join(dir, `whole.${ext}`), 'utf8'));
    }
    expect(readFileSync(path.join(dir, 'restored.txt'), 'utf8').split('\n')[0]).toBe('1 2 3 4 5 6     k');

    // The library: the console's endpoints are this run's; the BIOS's machine options are not.
    const again = await runGuest({ restore: file, bios: { keys: 'k' }, serialInput: 'hi.', timeoutMs: 60_000 });
    expect([again.reason, again.exitCode, first + again.serial]).toEqual(['debug-exit', 0x42, BIOS_SNAP_OUTPUT]);
    expect(again.bios?.screen.cursor).toMatchObject({ row: 1, column: 0 });
    await expect(runGuest({ restore: file, bios: { disks: [BIOS_SNAP] } })).rejects.toThrow(
      /options\.restore cannot be combined with options\.bios\.disks/,
    );
    const mixed = await runCli(['run', '--restore', file, '--disk', BIOS_SNAP]);
    expect([mixed.status, mixed.stderr]).toEqual([2, expect.stringMatching(/--restore cannot be combined with --disk/)]);
  });

  it("a BIOS guest's disk image must be the one it was saved with: touched is fine, changed or gone is refused", async () => {
    const disk = path.join(dir, 'boot-disk.img');
    copyFileSync(BIOS_SNAP, disk);
    const file = path.join(dir, 'disk.snap');
    const saved = await runCli(['run', '--timeout', TIMEOUT, '--save', file, '--save-on', 'tick 2', '--disk', disk]);
    expect(saved.status).toBe(0);
    const later = new Date(Date.now() + 60_000);
    utimesSync(disk, later, later); // a copy elsewhere has another time: the contents decide
    const touched = await runCli(['run', '--timeout', TIMEOUT, '--restore', file, '--keys', path.join(dir, 'keys.txt')], { input: 'hi.' });
    expect(touched.status).toBe(0x42);
    expect(saved.stdout.toString() + touched.stdout.toString()).toBe(BIOS_SNAP_OUTPUT);

    const bytes = readFileSync(disk);
    bytes[400] = bytes[400]! ^ 0xff;
    writeFileSync(disk, bytes);
    const changed = await runCli(['run', '--restore', file]);
    expect(changed.status).toBe(2);
    expect(changed.stderr).toMatch(/disk '.*boot-disk\.img' \(drive 80h\) changed \(its SHA-256 differs\) since the guest was saved/);
    rmSync(disk);
    const gone = await runCli(['run', '--restore', file]);
    expect(gone.status).toBe(2);
    expect(gone.stderr).toMatch(/disk '.*boot-disk\.img' \(drive 80h\) is not there/);
  });

  it('bad snapshot files: exit status 2 with the reason, never a crash', async () => {
    const good = path.join(dir, 'good.snap');
    const saved = await runGuest({
      image: SNAPTICKS,
      cmdline: 'save-request',
      timeoutMs: 60_000,
      save: { path: good, onDebugExit: SAVE_REQUEST },
    });
    expect(saved.reason).toBe('saved');
    const bytes = readFileSync(good);
    const variant = (name: string, change: (b: Buffer) => Buffer): string => {
      const file = path.join(dir, name);
      writeFileSync(file, change(Buffer.from(bytes)));
      return file;
    };
    const header = JSON.parse(bytes.subarray(32, 32 + bytes.readUInt32LE(12)).toString()) as { memory: { runs: { offset: number }[] } };
    const cases: [string, RegExp][] = [
      [variant('truncated.snap', (b) => b.subarray(0, b.length - 4096)), /is truncated: \d+ bytes of the \d+ it was written with/],
      [variant('header-flip.snap', (b) => ((b[40]! ^= 0x04), b)), /its header fails its CRC-32 check/],
      [variant('memory-flip.snap', (b) => ((b[header.memory.runs[0]!.offset + 17]! ^= 0x80), b)), /memory run 0 .* fails its CRC-32 check/],
      [variant('version.snap', (b) => (b.writeUInt32LE(99, 8), b)), /snapshot format 99; this tskvm reads format 1 only/],
      [variant('not-a-snapshot.snap', () => Buffer.from('\x7fELF not a snapshot')), /is not a tskvm snapshot/],
      [path.join(dir, 'missing.snap'), /cannot read snapshot .*missing\.snap: no such file/],
    ];
    for (const [file, reason] of cases) {
      const r = await runCli(['run', '--restore', file]);
      expect(r.status, file).toBe(2);
      expect(r.stderr, file).toMatch(reason);
      expect(r.stderr, file).not.toMatch(/internal error|at .*\.js:\d+/);
      await expect(runGuest({ restore: file })).rejects.toThrow(reason);
    }
    const mixed = await runCli(['run', '--restore', good, '--cpus', '2']);
    expect(mixed.status).toBe(2);
    expect(mixed.stderr).toMatch(/--restore cannot be combined with --cpus: the machine comes from the snapshot/);
    await expect(runGuest({ restore: good, memory: '32M' })).rejects.toThrow(/options\.restore cannot be combined with options\.memory/);
  });
});
