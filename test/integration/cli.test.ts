/**
 * The tskvm CLI as a user runs it: stdout carries guest output only, and every row of
 * DESIGN.md's exit-status table comes out of a real guest (or real bad input).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { assertKvm, CLI, describeKvm, guest, runCli } from './helpers.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'tskvm-cli-'));
const MiB = 1 << 20;

describeKvm('tskvm run: exit statuses', () => {
  it('debug-exit: status is the value written to 0xF4, stdout the guest output only', async () => {
    assertKvm();
    const r = await runCli(['run', guest('hello')]);
    expect(r.status).toBe(42);
    expect(r.stdout.toString()).toBe('Hello from a tskvm guest!\n');
    expect(r.stderr).toBe('');
  });

  it('debug-exit with a 2-byte value: status is its low byte', async () => {
    const r = await runCli(['run', guest('exitword')]);
    expect(r.status).toBe(0x34);
  });

  it('halt: 0', async () => {
    const r = await runCli(['run', guest('halt')]);
    expect([r.status, r.stdout.toString(), r.stderr]).toEqual([0, 'halting\n', '']);
  });

  it('reset: 0', async () => {
    const r = await runCli(['run', guest('reset')]);
    expect([r.status, r.stdout.toString(), r.stderr]).toEqual([0, 'resetting\n', '']);
  });

  it('timeout: 124, with a note on stderr', async () => {
    const r = await runCli(['run', '--timeout', '300ms', guest('spin')]);
    expect(r.status).toBe(124);
    expect(r.stdout.toString()).toBe('spinning\n');
    expect(r.stderr).toBe('tskvm: guest timed out after 300 ms\n');
  });

  it('crash: 125, naming the triple fault and dumping the registers on stderr', async () => {
    const r = await runCli(['run', '--timeout', '20s', guest('triple')]);
    expect(r.status).toBe(125);
    expect(r.stdout.toString()).toBe('faulting\n');
    expect(r.stderr).toMatch(/^guest crashed: triple fault \(KVM_EXIT_SHUTDOWN\)\n/);
    expect(r.stderr).toMatch(/RIP=[0-9a-f]{16} RFL=/);
    expect(r.stderr).toMatch(/CR0=/);
  });

  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('%s stops the guest cleanly: %i', async (signal, status) => {
    let seen = '';
    const r = await runCli(['run', guest('spin')], {
      onStdout: (chunk, child) => {
        seen += chunk.toString();
        if (seen.endsWith('\n')) child.kill(signal); // the guest is now spinning in KVM_RUN
      },
    });
    expect(r.status).toBe(status);
    expect(r.signal).toBeNull();
    expect(r.stdout.toString()).toBe('spinning\n');
  });

  it('--result-json writes the reason, exit code, duration and exit counts', async () => {
    const file = path.join(tmp, 'result.json');
    const r = await runCli(['run', '--result-json', file, guest('hello')]);
    expect(r.status).toBe(42);
    const json = JSON.parse(readFileSync(file, 'utf8'));
    expect(json).toMatchObject({ reason: 'debug-exit', exitCode: 42, exits: { io: expect.any(Number), hlt: 0 } });
    expect(json.durationMs).toBeGreaterThan(0);
  });

  it('boots a boot sector, auto-detected', async () => {
    const r = await runCli(['run', guest('bootsector.boot')]);
    expect([r.status, r.stdout.toString()]).toEqual([0x55, 'Hello from the boot sector\ndl ok\n']);
  });
});

describeKvm('tskvm run: serial I/O', () => {
  it('reads COM1 input from stdin (a pipe)', async () => {
    const r = await runCli(['run', guest('echo')], { input: 'hello\0' });
    expect([r.status, r.stdout.toString()]).toEqual([5, 'hello']);
  });

  it('reads COM1 input from --serial-input FILE', async () => {
    const file = path.join(tmp, 'input.bin');
    writeFileSync(file, 'from a file\0');
    const r = await runCli(['run', '--serial-input', file, guest('echo')]);
    expect([r.status, r.stdout.toString()]).toEqual([11, 'from a file']);
  });

  it('gets every byte of a 100 KiB stdin in order', async () => {
    const input = Buffer.alloc(100 * 1024);
    for (let i = 0; i < input.length; i++) input[i] = 1 + ((i * 13) % 255);
    const r = await runCli(['run', guest('echo')], { input: Buffer.concat([input, Buffer.from([0])]) });
    expect(r.status).toBe(input.length & 0xff);
    expect(r.stdout.equals(input)).toBe(true);
  });

  it('writes a megabyte into `sleep 2; cat` without losing a byte', async () => {
    const expected = Buffer.alloc(MiB);
    for (let i = 0; i < MiB; i++) expected[i] = i & 0xff;
    const digest = createHash('sha256').update(expected).digest('hex');
    const resultFile = path.join(tmp, 'bigout.json');
    const script = `"${process.execPath}" "${CLI}" run --result-json "${resultFile}" "${guest('bigout')}" | (sleep 2; cat) | sha256sum; echo "status=\${PIPESTATUS[0]}"`;
    const { stdout } = await promisify(execFile)('bash', ['-c', script], { maxBuffer: 4 * MiB });
    expect(stdout).toBe(`${digest}  -\nstatus=0\n`);
    const json = JSON.parse(readFileSync(resultFile, 'utf8'));
    expect(json).toMatchObject({ reason: 'debug-exit', exitCode: 0 });
  }, 300_000); // ~12 s alone; far longer while other test files load both CPUs
});

describe('tskvm run: bad usage and bad input exit 2', () => {
  const usage = async (args: string[], message: RegExp): Promise<void> => {
    const r = await runCli(args);
    expect(r.status).toBe(2);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toMatch(message);
  };

  it('rejects a missing image argument and unknown options', async () => {
    await usage(['run'], /missing required argument 'image'/);
    await usage(['run', '--frobnicate', guest('hello')], /unknown option '--frobnicate'/);
    await usage(['launch'], /unknown command 'launch'/);
  });

  it('rejects malformed sizes, durations and formats', async () => {
    await usage(['run', '--memory', '12Q', guest('hello')], /invalid memory size '12Q'/);
    await usage(['run', '--memory', '1000B', guest('hello')], /whole number of 4K pages/);
    await usage(['run', '--timeout', 'soon', guest('hello')], /invalid timeout 'soon'/);
    await usage(['run', '--timeout', '0', guest('hello')], /longer than 0/);
    await usage(['run', '--format', 'coff', guest('hello')], /argument 'coff' is invalid.*auto, flat, bootsector, elf, multiboot/);
  });

  it('rejects missing, empty, directory and oversized images', async () => {
    await usage(['run', path.join(tmp, 'missing.bin')], /image '.*missing\.bin' not found/);
    const empty = path.join(tmp, 'empty.bin');
    writeFileSync(empty, '');
    await usage(['run', empty], /is empty/);
    await usage(['run', tmp], /is a directory/);
    const big = path.join(tmp, 'big.bin');
    writeFileSync(big, Buffer.alloc(2 * MiB));
    await usage(['run', '--memory', '1M', big], /larger than guest RAM.*raise --memory/);
    await usage(
      ['run', '--serial-input', path.join(tmp, 'nope'), guest('hello')],
      /cannot open serial input '.*nope': not found: check the path/,
    );
  });

  it('--help teaches the exit statuses and --version prints the version and the backend', async () => {
    const help = await runCli(['run', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout.toString()).toMatch(/--memory <size>/);
    expect(help.stdout.toString()).toMatch(/124 +--timeout passed/);
    const version = await runCli(['--version']);
    const pkg = JSON.parse(readFileSync(path.join(path.dirname(CLI), '..', 'package.json'), 'utf8')) as { version: string };
    expect(version.status).toBe(0);
    const backendName = process.env.TSKVM_BACKEND === 'ffi' ? 'ffi: TSKVM_BACKEND=ffi' : 'addon';
    expect(version.stdout.toString()).toBe(`tskvm ${pkg.version} (backend: ${backendName}; Node ${process.version})\n`);
  });

  it('help and version survive a reader that closes the pipe early', async () => {
    const { execFileSync } = await import('node:child_process');
    for (const args of ['run --help', '--help', 'doctor']) {
      // stderr to a file, stdout into a reader that leaves after 10 bytes; `; echo $?` would be head's status
      const err = path.join(tmp, 'stderr.txt');
      execFileSync('bash', ['-c', `node ${CLI} ${args} 2>${err} | head -c 10 >/dev/null; exit \${PIPESTATUS[0]}`], { encoding: 'utf8' });
      expect(readFileSync(err, 'utf8'), args).not.toMatch(/EPIPE|Error|at .*\.js/);
    }
    const r = await runCli(['run', '--help']);
    expect(r.stdout.toString()).toMatch(/IMAGE|image/);
    expect(r.stdout.toString()).not.toMatch(/flat binary or 512-byte boot sector'?\s*$/m);
  });
});

describe('tskvm run: a host that cannot run VMs exits 1', () => {
  it('names the missing device and what to do', async () => {
    const r = await runCli(['run', guest('hello')], { env: { TSKVM_KVM_DEVICE: path.join(tmp, 'no-kvm') } });
    expect(r.status).toBe(1);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toMatch(/is not available \(ENOENT.*modprobe kvm_intel/);
  });

  it('reports a device that is not KVM', async () => {
    const r = await runCli(['run', guest('hello')], { env: { TSKVM_KVM_DEVICE: '/dev/null' } });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/KVM_GET_API_VERSION failed/);
  });
});
