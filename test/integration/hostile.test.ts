/**
 * tskvm under bad input, hostile guests and faults (issue 11's reproductions): every case ends
 * with its documented exit status or error code and a message that names the problem, nothing is
 * created or truncated before the checks pass, signals end a run whatever stdout's reader does,
 * memory stays bounded however much the guest writes, and nothing is left behind.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, truncateSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { KvmError, releaseIdleResources, runGuest, startGuest, UsageError } from '../../dist/index.js';
import { assertKvm, CLI, describeKvm, guest, liveThreads, ROOT, runCli } from './helpers.js';

const kernel = (name: string): string => path.join(ROOT, 'guests', 'build', name);
const openFds = (): number => readdirSync('/proc/self/fd').length;
const MiB = 2 ** 20;
const isRoot = process.getuid?.() === 0;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'tskvm-hostile-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** flood.elf with its burst count (4 KiB each) patched. */
function flood(bursts: number): string {
  const image = Buffer.from(readFileSync(kernel('flood.elf')));
  const at = image.indexOf('FLOODCNT') + 8;
  image.writeUInt32LE(bursts, at);
  const file = path.join(tmp, `flood-${bursts}.elf`);
  writeFileSync(file, image);
  return file;
}

function fifo(name: string): string {
  const file = path.join(tmp, name);
  execFileSync('mkfifo', [file]);
  return file;
}

describeKvm('bad files and paths: exit 2 before anything runs or is created', () => {
  it('refuses devices, FIFOs, directories, huge and unreadable files as images and modules', async () => {
    assertKvm();
    const huge = path.join(tmp, 'huge.img');
    writeFileSync(huge, '');
    truncateSync(huge, 5 * 2 ** 30); // sparse: 5 GiB that cost nothing
    const cases: [string[], RegExp][] = [
      [['run', '/dev/zero'], /image '\/dev\/zero' is a character device, not a regular file/],
      [['run', '--initrd', '/dev/zero', kernel('fwcfg.elf')], /module '\/dev\/zero' is a character device/],
      [
        ['run', '--initrd', huge, kernel('fwcfg.elf')],
        /module '.*huge\.img' is 5368709120 bytes, larger than guest RAM.*cannot fit in any guest/,
      ],
      [['run', '--initrd', tmp, kernel('fwcfg.elf')], /module '.*' is a directory/],
      [['run', fifo('image.fifo')], /image '.*image\.fifo' is a FIFO, not a regular file/],
      [['run', '--initrd', fifo('module.fifo'), kernel('fwcfg.elf')], /module '.*module\.fifo' is a FIFO/],
      [['run', '--serial-input', tmp, guest('hello')], /serial input '.*' is a directory/],
      [['run', '--memory', '1M', huge], /raise --memory|cannot fit in any guest/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(args);
      expect([r.status, r.stdout.length], args.join(' ')).toEqual([2, 0]);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/internal error|at .*\.js:\d+/);
    }
  });

  it('advises a --memory the machine can have', async () => {
    const big = path.join(tmp, 'big.bin');
    writeFileSync(big, Buffer.alloc(MiB + 512 * 1024)); // 1.5 MiB
    const r = await runCli(['run', '--memory', '1M', big]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/raise --memory to at least 2M/);
  });

  it.runIf(isRoot)('refuses an image the user cannot read (run as nobody)', async () => {
    const secret = path.join(tmp, 'secret.bin');
    writeFileSync(secret, readFileSync(guest('hello')));
    chmodSync(secret, 0o600);
    chmodSync(tmp, 0o755);
    const r = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'run', secret], { uid: 65534, gid: 65534, cwd: '/' });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('close', (status) => resolve({ status, stderr }));
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/image '.*secret\.bin' cannot be read \(permission denied\)/);
  });

  it('checks --result-json and serial files before the guest runs, and truncates nothing when the image is bad', async () => {
    const cases: [string[], RegExp][] = [
      [
        ['run', '--result-json', path.join(tmp, 'no-dir', 'r.json'), guest('hello')],
        /cannot open result file .*its directory does not exist/,
      ],
      [['run', '--result-json', tmp, guest('hello')], /cannot open result file .*is a directory/],
      [
        ['run', '--serial', `COM1=file:${path.join(tmp, 'no-dir', 'x')}`, guest('hello')],
        /cannot open serial file .*its directory does not exist/,
      ],
      [['run', '--trace-file', path.join(tmp, 'no-dir', 't'), guest('hello')], /cannot open trace file/],
      [['run', '--screenshot', path.join(tmp, 'no-dir', 's'), guest('bios-hello.boot')], /cannot open screenshot/],
      [['run', '--disk', fifo('disk.fifo')], /disk '.*disk\.fifo' is not a regular file/],
      [['run', '--disk-write', '--disk', tmp], /disk '.*' is a directory/],
      [['run', '--no-bios', '--screenshot', path.join(tmp, 's'), guest('bios-hello.boot')], /--screenshot need the BIOS/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(args);
      expect([r.status, r.stdout.toString()], args.join(' ')).toEqual([2, '']); // the guest never ran
      expect(r.stderr).toMatch(message);
    }
    const keep = path.join(tmp, 'keep.txt');
    writeFileSync(keep, 'precious');
    const r = await runCli([
      'run',
      ...['--serial', `COM2=file:${keep}`, '--result-json', keep, '--screenshot', keep],
      path.join(tmp, 'missing.bin'),
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/image '.*missing\.bin' not found/);
    expect(readFileSync(keep, 'utf8')).toBe('precious');
    const disk = await runCli(['run', '--result-json', keep, '--screenshot', keep, '--disk', path.join(tmp, 'missing.img')]);
    expect(disk.status).toBe(2);
    expect(disk.stderr).toMatch(/disk '.*missing\.img' not found/);
    expect(readFileSync(keep, 'utf8')).toBe('precious');
  });

  it('refuses --cpus beyond what the PC can address, and a /dev/kvm that is not KVM, with what to do', async () => {
    for (const cpus of ['255', '1024', '100000']) {
      const r = await runCli(['run', '--cpus', cpus, guest('hello')]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`invalid --cpus '${cpus}'.*from 1 to 254`));
    }
    const r = await runCli(['run', guest('hello')], { env: { TSKVM_KVM_DEVICE: '/dev/null' } });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/\/dev\/null is not a KVM device .*ENOTTY.*point TSKVM_KVM_DEVICE at \/dev\/kvm/);
  });
});

describeKvm('output that cannot be written: exit 3, with the guest status named', () => {
  it('reports stdout, a serial file, the trace and the result file on /dev/full', async () => {
    const sh = (command: string): Promise<{ status: number | null; stderr: string }> =>
      new Promise((resolve) => {
        const child = spawn('sh', ['-c', command], { cwd: ROOT });
        let stderr = '';
        child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        child.on('close', (status) => resolve({ status, stderr }));
      });
    const hello = guest('hello');
    const cases: [string, RegExp][] = [
      [`node ${CLI} run ${hello} > /dev/full`, /cannot write stdout: ENOSPC/],
      [`node ${CLI} run --serial COM1=file:/dev/full ${hello}`, /cannot write serial file '\/dev\/full': ENOSPC/],
      [`node ${CLI} run --trace-file /dev/full ${hello} > /dev/null`, /cannot write the trace .*ENOSPC/],
      [`node ${CLI} run --result-json /dev/full ${hello} > /dev/null`, /cannot write result file '\/dev\/full': ENOSPC/],
    ];
    for (const [command, message] of cases) {
      const r = await sh(command);
      expect(r.status, command).toBe(3);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(/the guest's own status was 42; exiting 3/);
      expect(r.stderr).not.toMatch(/internal error/);
    }
  });
});

describeKvm('signals and slow readers', () => {
  it('ends on SIGINT and SIGTERM while stdout is backed up (130/143)', async () => {
    const image = flood(64);
    for (const [signal, status] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
    ] as const) {
      const child = spawn(process.execPath, [CLI, 'run', image], { stdio: ['ignore', 'pipe', 'pipe'] });
      // Read nothing: the pipe fills and stays full. First wait for the guest's first output (the
      // run is on: a signal before that meets Node's default action), then for it to fill the pipe.
      // 'readable' without read() buffers one high-water mark and then stops reading.
      await new Promise((resolve) => child.stdout.once('readable', resolve));
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000); // a hang fails the test below, not the suite
      const code = await exited;
      clearTimeout(timer);
      expect(code, signal).toBe(status);
    }
  });

  it('ends a guest that spins on a port no device decodes (exits the addon takes natively) on --timeout, SIGINT and stop()', async () => {
    const image = guest('portspin');
    const resultFile = path.join(tmp, 'portspin.json');
    const timedOut = await runCli(['run', '--timeout', '2s', '--result-json', resultFile, image]);
    expect([timedOut.status, timedOut.stdout.toString()]).toEqual([124, 'spinning\n']);
    expect(JSON.parse(readFileSync(resultFile, 'utf8')).reason).toBe('timeout');
    const child = spawn(process.execPath, [CLI, 'run', image], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // Its output means the guest runs (the CLI's signal handlers are in place before it starts),
    // in the loop right after it.
    await new Promise((resolve) => child.stdout.once('data', resolve));
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000); // a hang fails the test below, not the suite
    expect(await exited).toBe(130);
    clearTimeout(timer);
    for (const vcpuThread of ['worker', 'caller'] as const) {
      // The whole line: output arrives in chunks, and the guest is in its loop once it has printed it.
      let printed!: () => void;
      const running = new Promise<void>((resolve) => (printed = resolve));
      let text = '';
      const onSerial = (chunk: Buffer): void => {
        text += chunk.toString('latin1');
        if (text.endsWith('\n')) printed();
      };
      const run = await startGuest({ image, vcpuThread, onSerial });
      await running;
      run.stop();
      const result = await run.result;
      expect([result.reason, result.serial, vcpuThread]).toEqual(['stopped', 'spinning\n', vcpuThread]);
    }
  });

  it('a FIFO with no writer as serial input does not hang the run', async () => {
    const r = await runCli(['run', '--timeout', '500ms', '--serial-input', fifo('input.fifo'), guest('echo')]);
    expect(r.status).toBe(124);
  });

  it('keeps memory bounded for a guest flooding a reader that pauses, and delivers every byte', async () => {
    const bursts = 320; // 1.25 MiB: past the 1 MiB host backlog at which LSR.THRE clears
    const child = spawn(process.execPath, [CLI, 'run', flood(bursts)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let peakKiB = 0;
    const sample = setInterval(() => {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peakKiB = Math.max(peakKiB, Number(m[1]));
      } catch {
        // exited
      }
    }, 50);
    child.stdout.pause();
    await new Promise((resolve) => setTimeout(resolve, 3000)); // the reader pauses
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stdout.resume();
    const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearInterval(sample);
    const out = Buffer.concat(chunks);
    expect(status).toBe(0);
    expect(out.length).toBe(bursts * 4096);
    for (let i = 0; i < out.length; i += 4093) expect(out[i], `byte ${i}`).toBe(i & 0xff);
    // The README's bound for the CLI process, whatever the guest writes. The ffi-rs backend
    // allocates on every call and V8 collects that garbage lazily, so its bound is higher.
    expect(peakKiB).toBeGreaterThan(0);
    expect(peakKiB / 1024).toBeLessThan(process.env.TSKVM_BACKEND === 'ffi' ? 256 : 150);
  }, 180_000);
});

describeKvm('the library never throws past its promise', () => {
  const rejection = async (run: () => Promise<unknown>): Promise<unknown> =>
    run().then(
      () => undefined,
      (err: unknown) => err,
    );

  it('rejects bad options with UsageError before anything exists', async () => {
    await releaseIdleResources();
    const fds = openFds();
    const bad: [unknown, RegExp][] = [
      [undefined, /needs an options object/],
      [{ image: null }, /invalid options\.image/],
      [{ image: 42 }, /invalid options\.image/],
      [{}, /invalid options\.image/],
      [{ image: guest('hello'), modules: [42] }, /invalid options\.modules\[0\]/],
      [{ image: guest('hello'), serialInput: 42 }, /invalid options\.serialInput/],
      [{ image: guest('hello'), signal: 'x' }, /invalid options\.signal/],
      [{ image: guest('hello'), cpus: 1000 }, /invalid options\.cpus/],
    ];
    for (const [options, message] of bad) {
      const err = await rejection(() => runGuest(options as never));
      expect(err, JSON.stringify(options)).toBeInstanceOf(UsageError);
      expect((err as UsageError).code).toMatch(/^E(USAGE|IMAGE)$/);
      expect((err as Error).message).toMatch(message);
    }
    await releaseIdleResources();
    expect(openFds()).toBe(fds);
  });

  it('rejects the run, with the error as cause, when onSerial throws or rejects', async () => {
    for (const onSerial of [
      () => {
        throw new Error('sink exploded');
      },
      () => Promise.reject(new Error('sink rejected')),
    ]) {
      const err = await rejection(() => runGuest({ image: guest('hello'), onSerial, timeoutMs: 30_000 }));
      expect(err).toBeInstanceOf(UsageError);
      expect((err as UsageError).code).toBe('ECALLBACK');
      expect((err as Error).message).toMatch(/a serial output callback failed.*sink (exploded|rejected)/);
      expect(((err as Error).cause as Error).message).toMatch(/^sink (exploded|rejected)$/);
    }
  });

  it('ends an aborted run whose serial sink never settles, and releases its VM', async () => {
    await releaseIdleResources();
    const fds = openFds();
    let chunks = 0;
    const abort = new AbortController();
    const run = await startGuest({
      image: guest('bigout'),
      signal: abort.signal,
      onSerial: () => {
        chunks++;
        return new Promise<void>(() => {}); // a sink that stops reading, for good
      },
    });
    while (chunks === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    abort.abort();
    const r = await run.result;
    expect(r.reason).toBe('stopped');
    await releaseIdleResources();
    expect(openFds()).toBe(fds);
  });

  it('takes a timeout longer than setTimeout allows without firing it early', async () => {
    const run = await startGuest({ image: guest('spin'), timeoutMs: 2 ** 40 });
    const sleep = (ms: number): Promise<unknown> => new Promise((resolve) => setTimeout(resolve, ms));
    // A loaded machine may take a while to start the vCPU thread: wait for the state, not a time.
    for (let i = 0; i < 600 && run.state === 'starting'; i++) await sleep(50);
    await sleep(300); // a timer that overflowed setTimeout's range would have fired by now
    expect(run.state).toBe('running');
    run.stop();
    expect((await run.result).reason).toBe('stopped');
  });

  it('under a low fd limit (160), 120 concurrent runs fail with KvmError ERESOURCE and leave nothing behind', async () => {
    const script = path.join(tmp, 'many.mjs');
    writeFileSync(
      script,
      `
      import { readdirSync } from 'node:fs';
      import { runGuest, releaseIdleResources } from ${JSON.stringify(path.join(ROOT, 'dist', 'index.js'))};
      const fds = () => readdirSync('/proc/self/fd').length;
      const before = fds();
      const results = await Promise.allSettled(Array.from({ length: 120 }, () => runGuest({ image: ${JSON.stringify(guest('hello'))}, timeoutMs: 60000 })));
      await releaseIdleResources();
      const kinds = {};
      for (const r of results) {
        const key = r.status === 'fulfilled' ? 'ok:' + r.value.reason : r.reason.name + ':' + r.reason.code;
        kinds[key] = (kinds[key] ?? 0) + 1;
      }
      const sample = results.find((r) => r.status === 'rejected')?.reason?.message ?? '';
      console.log(JSON.stringify({ kinds, sample, before, after: fds() }));
      `,
    );
    const out = execFileSync('sh', ['-c', `ulimit -n 160 && exec ${process.execPath} ${script}`], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 170_000,
    });
    const report = JSON.parse(out.trim().split('\n').pop()!) as {
      kinds: Record<string, number>;
      sample: string;
      before: number;
      after: number;
    };
    for (const kind of Object.keys(report.kinds)) expect(kind).toMatch(/^(ok:debug-exit|KvmError:ERESOURCE)$/);
    expect(report.kinds['ok:debug-exit'] ?? 0).toBeGreaterThan(0);
    if (report.kinds['KvmError:ERESOURCE'])
      expect(report.sample).toMatch(/too many open files: raise its limit \(`ulimit -n`\) or run fewer guests/);
    // libuv may keep one reserve descriptor (/dev/null) once it has met EMFILE; nothing else stays.
    expect(report.after - report.before).toBeLessThanOrEqual(1);
  }, 180_000);

  it('leaves no thread or fd behind after refused and failed runs', async () => {
    await releaseIdleResources();
    const [fds, tasks] = [openFds(), liveThreads()];
    await rejection(() => runGuest({ image: guest('hello'), serialInput: 42 as never }));
    await rejection(() => runGuest({ image: path.join(tmp, 'nope.bin') }));
    await rejection(() => runGuest({ image: guest('hello'), onSerial: () => Promise.reject(new Error('x')) }));
    await releaseIdleResources();
    expect([openFds(), liveThreads()]).toEqual([fds, tasks]);
    expect(KvmError).toBeDefined();
    expect(existsSync(path.join(tmp, 'nope.bin'))).toBe(false);
  });
});
